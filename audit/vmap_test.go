package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/vmap"
)

// The auditor's map is checked against vmap's conformance vectors and
// against vmap.LogMap on random logs; the node's code is used only here.

// mapOf reads leaves into a logMap and returns it with their leaf hashes.
func mapOf(t *testing.T, leaves [][]byte) (*logMap, [][]byte) {
	t.Helper()
	m := &logMap{}
	var hashes [][]byte
	for i, b := range leaves {
		hashes = append(hashes, rfc6962.DefaultHasher.HashLeaf(b))
		l, err := ParseLeaf(b)
		if err != nil {
			m.add(uint64(i), nil, err.Error())
			continue
		}
		m.add(uint64(i), &l, "")
	}
	return m, hashes
}

func TestTheAuditorsMapReproducesTheConformanceVectors(t *testing.T) {
	b, err := os.ReadFile("../vmap/testdata/log.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Records []struct {
			Leaf string `json:"leaf"`
		} `json:"records"`
		Roots []struct {
			Size uint64 `json:"size"`
			Root string `json:"root"`
		} `json:"roots"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var leaves [][]byte
	for _, r := range v.Records {
		l, err := hex.DecodeString(r.Leaf)
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, l)
	}
	m, hashes := mapOf(t, leaves)
	if m.refused != "" {
		t.Fatalf("the vectors' log refused: %s", m.refused)
	}
	var sizes []uint64
	for _, r := range v.Roots {
		sizes = append(sizes, r.Size)
	}
	roots := m.rootsAt(hashes, sizes)
	if len(v.Roots) < 2 || len(roots) != len(v.Roots) {
		t.Fatalf("%d roots for %d sizes", len(roots), len(v.Roots))
	}
	for _, r := range v.Roots {
		got := roots[r.Size]
		if hex.EncodeToString(got[:]) != r.Root {
			t.Errorf("size %d: root %x, the vectors say %s", r.Size, got, r.Root)
		}
	}
}

func TestTheAuditorsMapAgreesWithTheNodesOnRandomLogs(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	kinds := []log.Kind{"Profile", "Account", "Escrow", "MasterHash", "Message", "account"}
	for trial := range 21 {
		n := 1 + rng.IntN(300)
		names := 1 + rng.IntN(40)
		if trial == 20 { // keys that share their first 16 bits (a bucket of the top)
			n, names = 4000, 3000
		}
		lm := vmap.NewLogMap()
		var leaves [][]byte
		want := map[uint64][32]byte{0: {}}
		for i := range n {
			r := log.Record{Seq: uint64(i), Time: time.Unix(int64(i), 0), Kind: kinds[rng.IntN(len(kinds))], Origin: "fed/node0", Payload: []byte("{}")}
			if rng.IntN(4) > 0 {
				r.Identifier = fmt.Sprintf("id-%d", rng.IntN(names))
			}
			if rng.IntN(2) > 0 {
				r.Account = fmt.Sprintf("acct-%d", rng.IntN(names))
			}
			leaf := r.MarshalLeaf()
			if err := lm.Append(leaf); err != nil {
				t.Fatal(err)
			}
			leaves = append(leaves, leaf)
			want[uint64(i+1)] = lm.Root()
		}
		m, hashes := mapOf(t, leaves)
		var sizes []uint64
		for s := range want {
			sizes = append(sizes, s)
		}
		roots := m.rootsAt(hashes, sizes)
		for s, w := range want {
			if roots[s] != w {
				t.Fatalf("trial %d, size %d of %d: root %x, vmap.LogMap %x", trial, s, n, roots[s], w)
			}
		}
	}
}

func TestTheMapOfALogWithABadLeafIsRefused(t *testing.T) {
	good := (&log.Record{Seq: 0, Kind: "Profile", Identifier: "a", Origin: "n", Payload: []byte("{}")}).MarshalLeaf()
	for name, bad := range map[string][]byte{
		"seq":     (&log.Record{Seq: 7, Kind: "Profile", Identifier: "b", Origin: "n", Payload: []byte("{}")}).MarshalLeaf(),
		"utf-8":   (&log.Record{Seq: 1, Kind: "Profile", Identifier: "b\xff", Origin: "n", Payload: []byte("{}")}).MarshalLeaf(),
		"garbage": {9, 9, 9},
	} {
		lm := vmap.NewLogMap()
		if err := lm.Append(good); err != nil {
			t.Fatal(err)
		}
		if lm.Append(bad) == nil {
			t.Errorf("%s: vmap.LogMap takes the leaf", name)
		}
		m, hashes := mapOf(t, [][]byte{good, bad})
		if m.refused == "" || m.refusedAt != 1 {
			t.Errorf("%s: refused %q at %d", name, m.refused, m.refusedAt)
		}
		if roots := m.rootsAt(hashes, []uint64{1, 2}); len(roots) != 1 || roots[1] != lm.Root() {
			t.Errorf("%s: roots %x, want only size 1's", name, roots)
		}
	}
}

// mapTestItems are the Transfer items of a log of 6 records that set
// profile and account keys, some of them again.
func mapTestItems() []portal.DataItem {
	var items []portal.DataItem
	for i := range uint64(6) {
		item := testItem(i, portal.KindAccount, `{}`)
		if i%2 == 1 {
			item = testItem(i, portal.KindProfile, `{}`)
			item.Account = ""
		}
		rec := log.Record{Seq: i, Time: *item.Time, Kind: log.Kind(item.Kind), Account: item.Account, Identifier: fmt.Sprintf("ID-%d", i%3), Payload: []byte(`{}`), Origin: item.Origin}
		item.Identifier, item.Leaf = rec.Identifier, rec.MarshalLeaf()
		items = append(items, item)
	}
	return items
}

// mapAudit is an auditor holding node0's own log of records, which sign
// the given checkpoints of node0's log (a map line of nil: none).
func mapAudit(t *testing.T, cps []merkle.Checkpoint) *auditor {
	return mapAuditOf(t, cps, false)
}

// mapAuditOf is mapAudit, or with replica an auditor that reached only
// node1, which serves its replica of node0's log.
func mapAuditOf(t *testing.T, cps []merkle.Checkpoint, replica bool) *auditor {
	t.Helper()
	fed, signers := testMembers(t, 2)
	keys := mustKeys(t, fed)
	n := &nodeAudit{rep: &NodeReport{Origin: "fed/node0", URL: "http://a"}, own: &logCopy{origin: "fed/node0", mapped: true}}
	for _, item := range mapTestItems() {
		if err := n.own.add(&item); err != nil {
			t.Fatal(err)
		}
	}
	if len(n.own.problems) != 0 {
		t.Fatal(n.own.problems)
	}
	for _, c := range cps {
		root, err := treeRoot(n.own.hashes[:c.Size])
		if err != nil {
			t.Fatal(err)
		}
		c.Origin, c.Root, c.Time = "fed/node0", root, int64(c.Round)
		b, err := merkle.SignCheckpoint(c, signers[0])
		if err != nil {
			t.Fatal(err)
		}
		cp, err := keys.OpenCheckpoint(string(b))
		if err != nil {
			t.Fatal(err)
		}
		n.observe(cp, "test")
	}
	a := &auditor{keys: keys, report: &Report{Failures: []Failure{}}, nodes: []*nodeAudit{n}}
	a.report.Nodes = []*NodeReport{n.rep}
	if replica {
		holder := &nodeAudit{rep: &NodeReport{Origin: "fed/node1", URL: "http://b"}, replicas: map[string]*logCopy{"fed/node0": n.own}, seen: n.seen}
		n.own.replica = true
		a.nodes = []*nodeAudit{holder}
		a.report.Nodes = []*NodeReport{holder.rep}
		a.mapReplicas = map[string]replicaCopy{"fed/node0": {node: holder, copy: n.own}}
	}
	if err := a.checkRoots(); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAMapLineIsCheckedAgainstTheRecords(t *testing.T) {
	// The node's map of the log at each size.
	want := map[uint64][]byte{}
	lm := vmap.NewLogMap()
	for i, item := range mapTestItems() {
		if err := lm.Append(item.Leaf); err != nil {
			t.Fatal(err)
		}
		root := lm.Root()
		want[uint64(i+1)] = root[:]
	}
	if bytes.Equal(want[2], want[4]) || bytes.Equal(want[4], want[6]) {
		t.Fatal("the test log's map does not change")
	}

	t.Run("right map lines pass", func(t *testing.T) {
		a := mapAudit(t, []merkle.Checkpoint{
			{Size: 2, Round: 1}, // before the member had a map: not checked
			{Size: 4, Round: 2, Map: want[4]},
			{Size: 6, Round: 3, Map: want[6]},
		})
		c := a.report.Nodes[0].Checks[CheckMap]
		if len(a.report.Failures) != 0 || c == nil || c.Passed != 2 || c.Failed != 0 || c.NotChecked != 1 {
			t.Fatalf("map check %+v, failures %v", c, a.report.Failures)
		}
		var out bytes.Buffer
		a.report.WriteText(&out)
		if !strings.Contains(out.String(), "map lines: 2 match the records' map, 0 do not, 1 checkpoints without one not checked") {
			t.Errorf("text report:\n%s", out.String())
		}
	})

	t.Run("a wrong map line fails, named", func(t *testing.T) {
		wrong := want[2]
		a := mapAudit(t, []merkle.Checkpoint{
			{Size: 4, Round: 2, Map: wrong},
			{Size: 6, Round: 3, Map: want[6]},
		})
		f := a.report.Failures
		if len(f) != 1 || f[0].Check != CheckMap || f[0].Origin != "fed/node0" ||
			f[0].Detail != fmt.Sprintf("map line of checkpoint round 2, size 4: %s, the records' map: %s", b64(wrong), b64(want[4])) {
			t.Fatalf("failures %v", f)
		}
		if c := a.report.Nodes[0].Checks[CheckMap]; c.Passed != 1 || c.Failed != 1 {
			t.Errorf("map check %+v", c)
		}
	})

	t.Run("a map line that disappears fails", func(t *testing.T) {
		a := mapAudit(t, []merkle.Checkpoint{
			{Size: 2, Round: 1, Map: want[2]},
			{Size: 4, Round: 2},
			{Size: 6, Round: 3, Map: want[6]},
		})
		f := a.report.Failures
		if len(f) != 1 || f[0].Check != CheckMap || !strings.Contains(f[0].Detail, "checkpoint round 2, size 4 has no map line, but the earlier checkpoint of round 1 has one") {
			t.Fatalf("failures %v", f)
		}
	})

	t.Run("without node0, its replica at node1 checks its map lines", func(t *testing.T) {
		a := mapAuditOf(t, []merkle.Checkpoint{
			{Size: 4, Round: 2, Map: want[4]},
			{Size: 6, Round: 3, Map: want[4]},
		}, true)
		f := a.report.Failures
		if len(f) != 1 || f[0].Check != CheckMap || f[0].Origin != "fed/node0" || f[0].URL != "" ||
			!strings.HasPrefix(f[0].Detail, "map line of checkpoint round 3, size 6: ") || !strings.HasSuffix(f[0].Detail, " (from the replica at fed/node1 (http://b))") {
			t.Fatalf("failures %v", f)
		}
		if c := a.report.node("fed/node0").Checks[CheckMap]; c.Passed != 1 || c.Failed != 1 {
			t.Errorf("map check %+v", c)
		}
	})
}

// BenchmarkMapRootsAt is the map of a log of 100,000 records over 50,000
// names at 100 checkpoint sizes.
func BenchmarkMapRootsAt(b *testing.B) {
	m := &logMap{}
	var hashes [][]byte
	for i := range uint64(100_000) {
		l := Leaf{Seq: i, Kind: "Profile", Identifier: fmt.Sprintf("id-%d", i*7919%50_000), Origin: "n"}
		m.add(i, &l, "")
		h := sha256.Sum256(binary.BigEndian.AppendUint64(nil, i))
		hashes = append(hashes, h[:])
	}
	var sizes []uint64
	for s := range uint64(100) {
		sizes = append(sizes, (s+1)*1000)
	}
	b.ResetTimer()
	for range b.N {
		m.rootsAt(hashes, sizes)
	}
}

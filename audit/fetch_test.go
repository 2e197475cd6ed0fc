package audit

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/intermesh"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal"
)

// testItem is the Transfer item of a record, as a portal serves it.
func testItem(seq uint64, kind log.Kind, payload string) portal.DataItem {
	rec := log.Record{Seq: seq, Time: time.Unix(1767225600, int64(seq)).UTC(), Kind: kind, Account: "alice", Payload: []byte(payload), Origin: "fed/node0"}
	item := portal.DataItem{Index: &rec.Seq, Time: &rec.Time, Kind: string(kind), Account: rec.Account, Origin: rec.Origin, Leaf: rec.MarshalLeaf()}
	if json.Valid(rec.Payload) {
		item.Entry = json.RawMessage(rec.Payload)
	} else {
		item.Payload = rec.Payload
	}
	return item
}

func TestLogCopyChecksEveryItemAgainstItsLeaf(t *testing.T) {
	l := &logCopy{origin: "fed/node0"}
	items := []portal.DataItem{
		testItem(0, portal.KindProfile, `{"ProfileMesh":{"a":"<b>"}}`),
		testItem(1, portal.KindEscrow, "not JSON"),
		testItem(2, intermesh.KindMasterHash, `{"round":1}`),
	}
	// The server's JSON encoder escapes "<" in Entry: still the same payload.
	items[0].Entry = json.RawMessage(`{"ProfileMesh":{"a":"\u003cb\u003e"}}`)
	for i := range items {
		if err := l.add(&items[i]); err != nil {
			t.Fatal(err)
		}
	}
	if len(l.problems) != 0 || l.size() != 3 || l.records[2].Kind != "MasterHash" {
		t.Fatalf("problems %v, size %d, records %v", l.problems, l.size(), l.records)
	}

	lying := testItem(3, portal.KindAccount, `{}`)
	lying.Account = "mallory"
	if err := l.add(&lying); err != nil || len(l.problems) != 1 || !strings.Contains(l.problems[0], "account") {
		t.Fatalf("an item whose account is not its leaf's: %v, problems %v", err, l.problems)
	}
	foreign := testItem(4, portal.KindAccount, `{}`)
	foreign.Origin = "fed/node1"
	foreign.Leaf = (&log.Record{Seq: 4, Time: *foreign.Time, Kind: portal.KindAccount, Account: "alice", Payload: []byte(`{}`), Origin: "fed/node1"}).MarshalLeaf()
	if err := l.add(&foreign); err != nil || len(l.problems) != 2 || !strings.Contains(l.problems[1], "in a log of fed/node0") {
		t.Fatalf("a record of another origin: %v, problems %v", err, l.problems)
	}

	skip := testItem(9, portal.KindAccount, `{}`)
	if err := l.add(&skip); !errors.Is(err, errGap) {
		t.Fatalf("an entry out of order: %v", err)
	}
	noLeaf := testItem(5, portal.KindAccount, `{}`)
	noLeaf.Leaf = nil
	if err := l.add(&noLeaf); err == nil {
		t.Fatal("an entry without leaf bytes accepted")
	}
	if l.size() != 5 {
		t.Fatalf("size %d after refused entries, want 5", l.size())
	}
}

func TestTheCacheResumesAfterALineCutShort(t *testing.T) {
	path := cachePath(t.TempDir(), "http://127.0.0.1:8080", "fed/node0")
	if err := mkdirFor(path); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := range uint64(3) {
		b, _ := json.Marshal(testItem(i, portal.KindAccount, `{}`))
		lines = append(lines, string(b))
	}
	whole := strings.Join(lines, "\n") + "\n"
	if err := os.WriteFile(path, []byte(whole+lines[0][:20]), 0o644); err != nil {
		t.Fatal(err)
	}
	l := &logCopy{origin: "fed/node0", cache: path}
	if err := l.loadCache(); err != nil {
		t.Fatal(err)
	}
	if l.size() != 3 || len(l.problems) != 0 {
		t.Fatalf("read back %d entries, problems %v", l.size(), l.problems)
	}
	b, _ := os.ReadFile(path)
	if string(b) != whole {
		t.Fatalf("the cut line was not dropped:\n%s", b)
	}
	if filepath.Base(filepath.Dir(path)) == "http://127.0.0.1:8080" || strings.ContainsAny(filepath.Base(path), "/:") {
		t.Fatalf("cache path %s is not made of safe names", path)
	}
}

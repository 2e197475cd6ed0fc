package intermesh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/vmap"
)

// TestAMapLineTheRecordsDoNotGiveIsNotCertified: four replicating members
// close a round; one signs a checkpoint whose tree root is right but whose
// map line is not the map of its records. The honest members count a
// member's checkpoint only once their replica reproduces both roots, so the
// round is certified over the three honest checkpoints, never over the
// lying one (before, every signed checkpoint counted at once and the
// certificate covered all four).
func TestAMapLineTheRecordsDoNotGiveIsNotCertified(t *testing.T) {
	liarNotCertified(t, wrongMapLine)
}

// TestACheckpointWithoutAMapLineIsNotCertified: the same with a member
// that leaves the map line out (its records verify, but what it says of
// names cannot be checked): never counted either.
func TestACheckpointWithoutAMapLineIsNotCertified(t *testing.T) {
	liarNotCertified(t, noMapLine)
}

// TestAMemberThatLogsAnOlderVersionAfterANewerIsNotCertified: a member
// logs alice's profile version of 20:00 after the one of 21:00 (what a
// portal replaying her superseded keys would log) and signs a checkpoint
// whose map line is right for those records. The honest members, checking
// the portal's rules as they recompute its map, refuse the checkpoint,
// hold evidence against it that anyone checks with the records alone, and
// certify the round over the three honest checkpoints.
func TestAMemberThatLogsAnOlderVersionAfterANewerIsNotCertified(t *testing.T) {
	liarNotCertified(t, olderVersion)
}

// TestAMemberThatLogsAVersionUnderAnotherIdentifierIsNotCertified: the
// same with a version of bob's profile logged under alice's identifier,
// which the UDF of its offline key is not.
func TestAMemberThatLogsAVersionUnderAnotherIdentifierIsNotCertified(t *testing.T) {
	liarNotCertified(t, otherIdentifier)
}

// How the liar of liarNotCertified lies.
const (
	wrongMapLine = iota + 1
	noMapLine
	olderVersion    // its records break the map's rules (portal.CheckMapRecord)
	otherIdentifier // the same, another way
)

// fillForLie appends to a member's log n records for the federation's
// lie: for lies on the map line, Profile records; for lies on the records,
// records that set no key, and for the liar two profile versions that
// break the map's rules at its end.
func fillForLie(t *testing.T, l *log.Log, n, lie int, liar bool) {
	t.Helper()
	switch {
	case lie < olderVersion:
		appendProfiles(t, l, n)
		return
	case !liar:
		appendNotes(t, l, n)
		return
	}
	appendNotes(t, l, n-2)
	alice, bob := newTestProfile(t), newTestProfile(t)
	t0 := time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)
	switch lie {
	case olderVersion:
		appendRecords(t, l, alice.record(t, t0.Add(time.Hour), alice.id()), alice.record(t, t0, alice.id()))
	case otherIdentifier:
		appendRecords(t, l, alice.record(t, t0, alice.id()), bob.record(t, t0.Add(time.Hour), alice.id()))
	}
}

// checkRuleEvidence checks that member i holds evidence against the liar
// that the portal's rules verify.
func checkRuleEvidence(t *testing.T, fed *config.Federation, i int, m *Mesh, liar string) {
	t.Helper()
	for _, e := range m.Evidence() {
		if e.Origin != liar {
			continue
		}
		why, err := VerifyEvidenceWith(e, fed, portal.CheckMapRecord)
		if err != nil || !strings.HasPrefix(why, reasonMapRule) {
			t.Errorf("member %d: evidence against %s: %q, %v", i, liar, why, err)
		}
		return
	}
	t.Errorf("member %d holds no evidence against %s", i, liar)
}

// liarNotCertified runs the federation of four where member 3 lies about
// its map in the given way, and checks the honest members certify the
// round over their three checkpoints only.
func liarNotCertified(t *testing.T, lie int) {
	const n, liar = 4, 3
	period := 10 * time.Second
	fed, keys := testFederationOf(t, n, period)
	clk := newClockOf(period)
	var mu sync.Mutex
	results := map[int]RoundResult{}
	logs, meshes, nodes := make([]*logAndTree, n), make([]*Mesh, n), make([]*node, n)
	for i := range n {
		l := openTestLog(t, fed.Members[i].Origin)
		logs[i] = &logAndTree{tree: merkle.NewTree(l.DB(), []byte("local"))}
		logs[i].log = l
		i := i
		meshes[i], _ = startReplicating(t, fed, keys, i, l, func(c *Config) {
			c.Now = clk.now
			if lie >= olderVersion {
				c.MapRule = portal.CheckMapRecord
			}
			c.Commit = func(_ context.Context, r RoundResult) error {
				mu.Lock()
				results[i] = r
				mu.Unlock()
				return nil
			}
		})
		nodes[i] = &node{Mesh: meshes[i]}
	}
	connect(t, nodes)
	for i := range n {
		fillForLie(t, logs[i].log.(*log.Log), 5+i, lie, i == liar) // gossiped to the replicas
	}
	waitFor(t, 10*time.Second, "every replica filled", func() bool {
		for i, m := range meshes {
			for j := range n {
				if j != i && m.Replicas()[fed.Members[j].Origin].Size != uint64(5+j) {
					return false
				}
			}
		}
		return true
	})
	r := clk.round.Add(1)
	notes := make([][]byte, n)
	for i, m := range meshes {
		mode := 0
		if i == liar && lie < olderVersion {
			mode = lie
		}
		notes[i] = logs[i].close(t, fed.Members[i].Origin, keys, i, r, mode)
		if err := m.PublishCheckpoint(t.Context(), r, notes[i]); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 15*time.Second, "the honest members' results", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(results) >= n-1 && results[0].Round == r && results[1].Round == r && results[2].Round == r
	})
	mu.Lock()
	defer mu.Unlock()
	for i := range n - 1 {
		res := results[i]
		if res.Outcome != OutcomeCertificate {
			t.Fatalf("member %d: round %d ended %s, want a certificate over the honest checkpoints", i, r, res.Outcome)
		}
		for _, c := range res.Checkpoints {
			if bytes.Equal(c, notes[liar]) {
				t.Errorf("member %d certified the checkpoint whose map line its records do not give", i)
			}
		}
		if len(res.Checkpoints) != n-1 {
			t.Errorf("member %d: certificate over %d checkpoints, want the %d honest ones", i, len(res.Checkpoints), n-1)
		}
		if lie >= olderVersion {
			checkRuleEvidence(t, fed, i, meshes[i], fed.Members[liar].Origin)
		}
	}
}

// logAndTree is a member's log with its tree, to close rounds.
type logAndTree struct {
	log  interface{ vmap.Ranger }
	tree *merkle.Tree
}

// close signs the checkpoint of round r over the whole log, with the map
// of its records, or (lie wrongMapLine) a map line one bit off, or (lie
// noMapLine) none.
func (lt *logAndTree) close(t *testing.T, origin string, keys []ed25519.PrivateKey, i int, r uint64, lie int) []byte {
	t.Helper()
	signer, err := merkle.NewSigner(origin, keys[i])
	if err != nil {
		t.Fatal(err)
	}
	mapRoot := func(size uint64) ([]byte, error) {
		lm := vmap.NewLogMap()
		if err := lm.Follow(t.Context(), lt.log, size); err != nil {
			return nil, err
		}
		root := lm.Root()
		if lie == wrongMapLine {
			root[31] ^= 1
		}
		return root[:], nil
	}
	if lie == noMapLine {
		mapRoot = nil
	}
	signed, _, err := lt.tree.CloseEpochWithMap(t.Context(), r, time.Unix(int64(r), 0), signer, origin, mapRoot)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

package intermesh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"maps"
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
	falseClaim      // it claims an honest member's map line wrong
)

// fillForLie appends to a member's log n records for the federation's
// lie: for lies on the map line, Profile records; for lies on the records,
// records that set no key, and for the liar two profile versions that
// break the map's rules at its end.
func fillForLie(t *testing.T, l *log.Log, n, lie int, liar bool) {
	t.Helper()
	switch {
	case lie == wrongMapLine || lie == noMapLine || lie == falseClaim:
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

// liarRound is a round of a federation of four in which member 3 lies.
type liarRound struct {
	fed     *config.Federation
	meshes  []*Mesh
	notes   [][]byte // the checkpoints of the round, by member
	results map[int]RoundResult
}

// liar is the member who lies in a liarRound.
const liar = 3

// runLiarRound runs one round of the federation of four where member 3
// lies in the given way, until the results of the members in want are in.
func runLiarRound(t *testing.T, lie int, want ...int) liarRound {
	const n = 4
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
			if lie == olderVersion || lie == otherIdentifier {
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
		if i == liar && (lie == wrongMapLine || lie == noMapLine) {
			mode = lie
		}
		notes[i] = logs[i].close(t, fed.Members[i].Origin, keys, i, r, mode)
		if err := m.PublishCheckpoint(t.Context(), r, notes[i]); err != nil {
			t.Fatal(err)
		}
	}
	if lie == falseClaim {
		// The liar claims member 0's map line wrong before anyone counted it.
		meshes[liar].publishClaim(heldNote(t, notes[0]), bytes.Repeat([]byte{7}, 32))
	}
	waitFor(t, 15*time.Second, "the results", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, i := range want {
			if results[i].Round != r {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	return liarRound{fed: fed, meshes: meshes, notes: notes, results: maps.Clone(results)}
}

// liarNotCertified runs the federation of four where member 3 lies about
// its map in the given way, and checks the honest members certify the
// round over their three checkpoints only.
func liarNotCertified(t *testing.T, lie int) {
	lr := runLiarRound(t, lie, 0, 1, 2)
	for i := range liar {
		res := lr.results[i]
		if res.Outcome != OutcomeCertificate {
			t.Fatalf("member %d: round %d ended %s, want a certificate over the honest checkpoints", i, res.Round, res.Outcome)
		}
		for _, c := range res.Checkpoints {
			if bytes.Equal(c, lr.notes[liar]) {
				t.Errorf("member %d certified the checkpoint whose map line its records do not give", i)
			}
		}
		if len(res.Checkpoints) != liar {
			t.Errorf("member %d: certificate over %d checkpoints, want the %d honest ones", i, len(res.Checkpoints), liar)
		}
		if lie == olderVersion || lie == otherIdentifier {
			checkRuleEvidence(t, lr.fed, i, lr.meshes[i], lr.fed.Members[liar].Origin)
		}
		if lie == wrongMapLine {
			if got := counterValue(t, lr.meshes[i].metrics.mapClaims.WithLabelValues(lr.fed.Members[i].Origin, "published")); got != 1 {
				t.Errorf("member %d published %v claims against the wrong map line, want 1", i, got)
			}
		}
	}
}

// TestAFalseClaimChangesNothing: a member claims that another member's
// map line is not its records' map when it is. Each member recomputes
// the map itself: the claim is refuted (or not yet judged) everywhere,
// never confirmed, and the round is certified over all four checkpoints,
// the accused one with them.
func TestAFalseClaimChangesNothing(t *testing.T) {
	lr := runLiarRound(t, falseClaim, 0, 1, 2, 3)
	claimant := lr.fed.Members[liar].Origin
	for i := range 4 {
		res := lr.results[i]
		if res.Outcome != OutcomeCertificate || len(res.Checkpoints) != 4 {
			t.Errorf("member %d: round ended %s over %d checkpoints, want a certificate over all 4", i, res.Outcome, len(res.Checkpoints))
		}
	}
	var judged float64
	for i := range liar {
		m := lr.meshes[i]
		if got := counterValue(t, m.metrics.mapClaims.WithLabelValues(claimant, "confirmed")); got != 0 {
			t.Errorf("member %d confirmed the false claim", i)
		}
		judged += counterValue(t, m.metrics.mapClaims.WithLabelValues(claimant, "refuted")) +
			counterValue(t, m.metrics.mapClaims.WithLabelValues(claimant, "pending"))
		if len(m.Evidence()) != 0 {
			t.Errorf("member %d holds evidence after a claim: %v", i, m.Evidence())
		}
	}
	if judged == 0 {
		t.Error("no member received the claim")
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

package intermesh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
)

// TestAPoisonedReplicaIsRepairedFromItsOrigin: B's replica of A holds A's
// first 6 records and 2 forged ones after them, as a lying relay could
// leave it before relayed records had to be proven by a checkpoint. When
// A's checkpoint of its 8 records arrives, B finds its replica does not
// reproduce it (untrusted), and, without a restart, repairs it from A: it
// cuts the 2 forged records (records and Merkle tree), rebuilds what was
// derived from the replica, fetches A's records 6 and 7, and verifies the
// checkpoint. A is not blamed.
func TestAPoisonedReplicaIsRepairedFromItsOrigin(t *testing.T) {
	t.Parallel()
	fed, keys := testFederation(t, 2)
	origin := fed.Members[0].Origin
	la, lb := openTestLog(t, origin), openTestLog(t, fed.Members[1].Origin)
	records := appendProfiles(t, la, 8)
	rep := plantInReplica(t, lb, origin, records, 6)

	var resets atomic.Int32
	a, _ := startReplicating(t, fed, keys, 0, la)
	b, _ := startReplicating(t, fed, keys, 1, lb, func(c *Config) {
		c.ReplicaReset = func(_ context.Context, o string) error {
			if o == origin {
				resets.Add(1)
			}
			return nil
		}
	})
	connect(t, []*node{{Mesh: a}, {Mesh: b}})
	signer, err := merkle.NewSigner(origin, keys[0])
	if err != nil {
		t.Fatal(err)
	}
	r := uint64(time.Now().Unix()) - 1
	signed, _, err := merkle.NewTree(la.DB(), []byte("local")).CloseEpoch(t.Context(), r, time.Now(), signer, origin)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.PublishCheckpoint(t.Context(), r, signed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "B's replica of A repaired and verified", func() bool {
		st := b.Replicas()[origin]
		return st.VerifiedSize == 8 && st.Untrusted == ""
	})
	if got := counterValue(t, b.metrics.inconsistent.WithLabelValues(origin)); got != 1 {
		t.Fatalf("the replica was found inconsistent %v times, want 1 (before the repair)", got)
	}
	if got := counterValue(t, b.metrics.repairs.WithLabelValues(origin, "repaired")); got != 1 {
		t.Fatalf("%v repairs, want 1", got)
	}
	if resets.Load() != 1 {
		t.Fatalf("ReplicaReset called %d times, want 1", resets.Load())
	}
	for i := range records {
		got, err := rep.Get(uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.MarshalLeaf(), records[i].MarshalLeaf()) {
			t.Fatalf("replica record %d is not A's after the repair", i)
		}
	}
	cp, _, err := merkle.OpenCheckpoint(signed, b.verifiers)
	if err != nil {
		t.Fatal(err)
	}
	if err := merkle.NewTree(lb.DB(), merkle.ReplicaPrefix(origin)).VerifyCheckpoint(cp); err != nil {
		t.Fatalf("the replica's tree after the repair: %v", err)
	}
	if ev := b.Evidence(); len(ev) != 0 {
		t.Fatalf("B blames A: %v", ev)
	}
}

// forkCase is how a member's fork, a smaller checkpoint on another history,
// is ordered against the checkpoint of it that the replica verified.
type forkCase struct {
	name string
	// forkAfter: the fork is signed in a later round than the verified
	// checkpoint (a tree that shrank), else in an earlier one (the replica's
	// tree proves that the verified checkpoint does not extend it).
	forkAfter bool
}

// TestARepairNeverRollsAReplicaBackToAForkOfItsOrigin: B's replica of A
// holds A's 8 records, verified against A's checkpoint. A then serves
// another history of 5 records and signs its checkpoint; B's replica does
// not reproduce it and is no longer trusted. A repair to that checkpoint
// would cut the replica back to the fork; instead B records evidence
// against A (both checkpoints are A's signed word) and keeps the 8 records
// it verified.
func TestARepairNeverRollsAReplicaBackToAForkOfItsOrigin(t *testing.T) {
	t.Parallel()
	for _, tc := range []forkCase{
		{name: "the fork signed after the verified checkpoint", forkAfter: true},
		{name: "the fork signed before the verified checkpoint", forkAfter: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testRepairToAFork(t, tc)
		})
	}
}

func testRepairToAFork(t *testing.T, tc forkCase) {
	fed, keys := testFederation(t, 2)
	origin := fed.Members[0].Origin
	la, lb := openTestLog(t, origin), openTestLog(t, fed.Members[1].Origin)
	signer := newTestLog(t, origin, keys[0]).signer
	honest := testRecords(origin, 0, 8, 3)
	rep, err := lb.Replica(origin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rep.Append(t.Context(), honest); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := la.Append(t.Context(), log.Record{Kind: "Profile", Identifier: fmt.Sprint("fork", i), Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	root, err := merkle.NewTree(la.DB(), []byte("local")).Root(5)
	if err != nil {
		t.Fatal(err)
	}

	wide := func(c *Config) { c.RoundWindow = 100 }
	a, _ := startReplicating(t, fed, keys, 0, la, wide)
	b, _ := startReplicating(t, fed, keys, 1, lb, wide)
	connect(t, []*node{{Mesh: a}, {Mesh: b}})
	r := uint64(time.Now().Unix()) - 50
	offerSigned(t, b, signedCheckpoint(t, signer, leafHashesOf(honest), r))
	waitFor(t, 5*time.Second, "B's replica of A verified", func() bool { return b.Replicas()[origin].VerifiedSize == 8 })

	forkRound := r - 10
	if tc.forkAfter {
		forkRound = r + 10
	}
	fork, err := merkle.SignCheckpoint(merkle.Checkpoint{Origin: origin, Size: 5, Root: root, Round: forkRound, Time: int64(forkRound)}, signer)
	if err != nil {
		t.Fatal(err)
	}
	offerSigned(t, b, fork)
	waitFor(t, 10*time.Second, "evidence against A, or a repair", func() bool {
		return len(b.Evidence()) > 0 || counterValue(t, b.metrics.repairs.WithLabelValues(origin, "repaired")) > 0
	})
	if st := b.Replicas()[origin]; st.Size < 8 || st.VerifiedSize < 8 {
		t.Fatalf("B's replica of A rolled back to %d records, %d verified; it had verified 8", st.Size, st.VerifiedSize)
	}
	for i := range honest {
		got, err := rep.Get(uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.MarshalLeaf(), honest[i].MarshalLeaf()) {
			t.Fatalf("replica record %d is not the one verified", i)
		}
	}
	ev := b.Evidence()
	if len(ev) != 1 || ev[0].Origin != origin {
		t.Fatalf("evidence %+v, want one piece against %s", ev, origin)
	}
	if _, err := VerifyEvidence(ev[0], fed); err != nil {
		t.Fatalf("VerifyEvidence: %v", err)
	}
	waitFor(t, 5*time.Second, "the Evidence record appended", func() bool {
		_, ok := b.EvidenceRecord(ev[0])
		return ok
	})
}

// TestAReplicaCorruptedPastItsVerifiedSizeIsRepairedFromItsHonestOrigin:
// B's replica of A holds A's first 6 records, verified against A's
// checkpoint, and 2 forged ones after them. A's checkpoint of its 8
// records makes the replica untrusted; the repair cuts the 2 forged
// records (not the 6 verified), fetches A's records 6 and 7, verifies the
// checkpoint, and keeps the checkpoint of 6 verified before: B still
// proves A's log consistent from it. A is not blamed.
func TestAReplicaCorruptedPastItsVerifiedSizeIsRepairedFromItsHonestOrigin(t *testing.T) {
	t.Parallel()
	fed, keys := testFederation(t, 2)
	origin := fed.Members[0].Origin
	la, lb := openTestLog(t, origin), openTestLog(t, fed.Members[1].Origin)
	signer := newTestLog(t, origin, keys[0]).signer
	records := appendProfiles(t, la, 8)
	rep := plantInReplica(t, lb, origin, records, 6)

	wide := func(c *Config) { c.RoundWindow = 100 }
	a, _ := startReplicating(t, fed, keys, 0, la, wide)
	b, _ := startReplicating(t, fed, keys, 1, lb, wide)
	connect(t, []*node{{Mesh: a}, {Mesh: b}})
	r := uint64(time.Now().Unix()) - 50
	c6 := signedCheckpoint(t, signer, leafHashesOf(records[:6]), r)
	offerSigned(t, b, c6)
	waitFor(t, 5*time.Second, "B's replica of A verified up to 6", func() bool { return b.Replicas()[origin].VerifiedSize == 6 })
	c8 := signedCheckpoint(t, signer, leafHashesOf(records), r+1)
	offerSigned(t, b, c8)
	waitFor(t, 10*time.Second, "B's replica of A repaired and verified", func() bool {
		st := b.Replicas()[origin]
		return st.VerifiedSize == 8 && st.Untrusted == ""
	})
	for i := range records {
		got, err := rep.Get(uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.MarshalLeaf(), records[i].MarshalLeaf()) {
			t.Fatalf("replica record %d is not A's after the repair", i)
		}
	}
	if prev, _, ok := b.ConsistencyProof(origin, c8); !ok || !bytes.Equal(prev, c6) {
		t.Fatalf("after the repair, B proves A's checkpoint of 8 consistent from %q (%v), want its checkpoint of 6", prev, ok)
	}
	if ev := b.Evidence(); len(ev) != 0 {
		t.Fatalf("B blames A: %v", ev)
	}
}

// leafTree is a provingTree over leaf hashes held in memory.
type leafTree [][]byte

func (l leafTree) Root(size uint64) ([]byte, error) { return merkle.LeafRoot(l, size) }

func (l leafTree) ConsistencyProof(size1, size2 uint64) ([][]byte, error) {
	return merkle.LeafConsistencyProof(l, size1, size2)
}

// heldNote parses a signed checkpoint note the test signed.
func heldNote(t *testing.T, n []byte) heldCheckpoint {
	t.Helper()
	cp, err := merkle.ParseCheckpoint(n[:bytes.LastIndex(n, []byte("\n\n"))+1])
	if err != nil {
		t.Fatal(err)
	}
	return heldCheckpoint{cp: cp, note: n, hash: sha256.Sum256(n)}
}

// TestARepairTellsAForkFromAnOlderCheckpoint: forkWith, against a replica
// that verified a checkpoint of 8 records of round 100, finds evidence
// exactly for the checkpoints that cannot be honest along with it, and
// the evidence verifies with the federation file alone.
func TestARepairTellsAForkFromAnOlderCheckpoint(t *testing.T) {
	t.Parallel()
	fed, keys := testFederation(t, 1)
	s := newTestLog(t, fed.Members[0].Origin, keys[0]).signer
	honest, rewritten := forkedLogs(8, 8)
	verified := heldNote(t, signedCheckpoint(t, s, honest, 100))
	for _, tc := range []struct {
		name     string
		c        []byte
		trusted  uint64
		evidence bool
	}{
		{"the verified checkpoint itself is no fork", signedCheckpoint(t, s, honest, 100), 8, false},
		{"an older checkpoint of a prefix is no fork", signedCheckpoint(t, s, honest[:5], 99), 8, false},
		{"a later checkpoint that extends it is no fork", signedCheckpoint(t, s, append(honest[:8:8], honest[0]), 101), 8, false},
		{"a later checkpoint of fewer records is a fork", signedCheckpoint(t, s, honest[:5], 101), 8, true},
		{"a checkpoint of the same size and another root is a fork", signedCheckpoint(t, s, rewritten, 98), 8, true},
		{"another checkpoint for the same round is a fork", signedCheckpoint(t, s, honest[:5], 100), 8, true},
		{"an older checkpoint of another history is a fork", signedCheckpoint(t, s, rewritten[:5], 99), 8, true},
		{"an older checkpoint of another history, past the trusted tree, is left alone", signedCheckpoint(t, s, rewritten[:5], 99), 7, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, forked, err := forkWith(heldNote(t, tc.c), []heldCheckpoint{verified}, leafTree(honest), tc.trusted)
			if err != nil {
				t.Fatal(err)
			}
			if forked != tc.evidence {
				t.Fatalf("evidence found: %v, want %v (%+v)", forked, tc.evidence, e)
			}
			if !forked {
				return
			}
			if _, err := VerifyEvidence(e, fed); err != nil {
				t.Fatalf("VerifyEvidence: %v", err)
			}
		})
	}
}

// appendProfiles appends n profile records to l and returns them as the
// log holds them.
func appendProfiles(t testing.TB, l *log.Log, n int) []log.Record {
	t.Helper()
	for i := range n {
		if _, err := l.Append(t.Context(), log.Record{Kind: "Profile", Identifier: fmt.Sprint("p", i), Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := l.Range(t.Context(), log.Constraints{From: 0, MaxEntries: n})
	if err != nil {
		t.Fatal(err)
	}
	return page.Records
}

// plantInReplica appends records to l's replica of origin, with forged
// payloads from index forgeFrom on (what a lying relay could leave there),
// and returns the replica.
func plantInReplica(t testing.TB, l *log.Log, origin string, records []log.Record, forgeFrom int) *log.Replica {
	t.Helper()
	planted := append([]log.Record(nil), records...)
	for i := forgeFrom; i < len(planted); i++ {
		planted[i].Payload = []byte(`{"forged":true}`)
	}
	rep, err := l.Replica(origin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rep.Append(t.Context(), planted); err != nil {
		t.Fatal(err)
	}
	return rep
}

package intermesh

import (
	"testing"
	"time"

	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/vmap"
)

// TestACheckpointWhoseMapLineIsNotItsRecordsMapIsNotVerified: a member
// recomputes the map of an origin from its replica. The origin's checkpoint
// with the right tree root but a map line its records do not give is not
// verified (and the replica, whose records the root vouches for, stays
// trusted); the next, with the records' map, is.
func TestACheckpointWhoseMapLineIsNotItsRecordsMapIsNotVerified(t *testing.T) {
	ctx := t.Context()
	fed, keys := testFederation(t, 2)
	origin := fed.Members[0].Origin
	lb := openTestLog(t, fed.Members[1].Origin)
	b, _ := startReplicating(t, fed, keys, 1, lb)
	rep, err := lb.Replica(origin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rep.Append(ctx, testRecords(origin, 0, 5, 3)); err != nil {
		t.Fatal(err)
	}
	root, err := merkle.NewTree(lb.DB(), merkle.ReplicaPrefix(origin)).Root(5)
	if err != nil {
		t.Fatal(err)
	}
	lm := vmap.NewLogMap()
	if err := lm.Follow(ctx, rep, 5); err != nil || lm.Tree().Len() == 0 {
		t.Fatalf("the records' map: %v, %d keys", err, lm.Tree().Len())
	}
	right := lm.Root()
	wrong := right
	wrong[0] ^= 1
	signer, err := newNoteSigner(origin, keys[0])
	if err != nil {
		t.Fatal(err)
	}
	r := uint64(time.Now().Unix()) - 1 // and r+1: both begun, in the window
	offer := func(round uint64, mapRoot vmap.Hash, prev []byte) []byte {
		t.Helper()
		n, err := merkle.SignCheckpoint(merkle.Checkpoint{Origin: origin, Size: 5, Root: root, Round: round, Time: int64(round),
			Prev: prev, Map: mapRoot[:]}, signer)
		if err != nil {
			t.Fatal(err)
		}
		hc, err := b.verifyCheckpoint(n)
		if err != nil {
			t.Fatal(err)
		}
		b.repl.offerCheckpoint(hc)
		return n
	}
	mismatches := func() float64 { return counterValue(t, b.metrics.mapMismatches.WithLabelValues(origin)) }

	bad := offer(r, wrong, nil)
	waitFor(t, 5*time.Second, "the wrong map line refused", func() bool { return mismatches() == 1 })
	if st := b.Replicas()[origin]; st.VerifiedSize != 0 || st.Untrusted != "" {
		t.Fatalf("after a wrong map line: verified size %d, untrusted %q; want 0 and trusted", st.VerifiedSize, st.Untrusted)
	}
	good := offer(r+1, right, merkle.NoteHash(bad))
	waitFor(t, 5*time.Second, "the checkpoint with the records' map verified", func() bool {
		return string(b.Replicas()[origin].Verified) == string(good)
	})
	if mismatches() != 1 {
		t.Fatalf("%v mismatches counted, want the one", mismatches())
	}
}

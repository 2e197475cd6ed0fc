package intermesh

import (
	"bytes"
	"testing"
	"time"

	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/vmap"
)

// TestReplicasShowTheRecomputedMapItsRootAndTheMismatches: the state of a
// replica says whether its map is open, how many records it covers, its
// root over them, and how many of the origin's checkpoints were refused
// for a map line that was not that root.
func TestReplicasShowTheRecomputedMapItsRootAndTheMismatches(t *testing.T) {
	ctx := t.Context()
	fed, keys := testFederation(t, 2)
	origin := fed.Members[0].Origin
	lb := openTestLog(t, fed.Members[1].Origin)
	b, _ := startReplicating(t, fed, keys, 1, lb)
	if st := b.Replicas()[origin].Map; st.Opened || st.Size != 0 || st.Root != nil || st.Mismatches != 0 {
		t.Fatalf("before any checkpoint: map %+v, want not opened and no mismatch", st)
	}
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
	if err := lm.Follow(ctx, rep, 5); err != nil {
		t.Fatal(err)
	}
	right := lm.Root()
	wrong := right
	wrong[0] ^= 1
	signer, err := newNoteSigner(origin, keys[0])
	if err != nil {
		t.Fatal(err)
	}
	r := uint64(time.Now().Unix()) - 1
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

	bad := offer(r, wrong, nil)
	waitFor(t, 5*time.Second, "the mismatch shown", func() bool { return b.Replicas()[origin].Map.Mismatches == 1 })
	good := offer(r+1, right, merkle.NoteHash(bad))
	waitFor(t, 5*time.Second, "the good checkpoint verified", func() bool {
		return bytes.Equal(b.Replicas()[origin].Verified, good)
	})
	for name, st := range map[string]ReplicaState{"Replicas": b.Replicas()[origin], "ReplicasNow": b.ReplicasNow()[origin]} {
		m := st.Map
		if st.Busy || !m.Opened || m.Size != 5 || !bytes.Equal(m.Root, right[:]) || m.Mismatches != 1 {
			t.Errorf("%s: busy %v, map %+v; want opened over 5 records, root %x, 1 mismatch", name, st.Busy, m, right)
		}
	}
}

// TestReplicasNowSaysBusyRatherThanWaitForAReplicaBeingWorkedOn: while a
// replica's lock is held (its map recomputed), ReplicasNow answers at once
// with the replica busy and its size and mismatches, and Replicas waits.
func TestReplicasNowSaysBusyRatherThanWaitForAReplicaBeingWorkedOn(t *testing.T) {
	fed, keys := testFederation(t, 2)
	origin := fed.Members[0].Origin
	b, _ := startReplicating(t, fed, keys, 1, openTestLog(t, fed.Members[1].Origin))
	rs := b.repl.origins[origin]

	rs.mu.Lock()
	start := time.Now()
	st := b.ReplicasNow()[origin]
	took := time.Since(start)
	waited := make(chan ReplicaState)
	go func() { waited <- b.Replicas()[origin] }()
	select {
	case <-waited:
		rs.mu.Unlock()
		t.Fatal("Replicas answered while the replica was locked")
	case <-time.After(50 * time.Millisecond):
	}
	rs.mu.Unlock()
	if got := <-waited; got.Busy {
		t.Errorf("Replicas, once the replica was unlocked: busy")
	}
	if !st.Busy || st.Origin != origin || st.Map.Opened {
		t.Errorf("ReplicasNow while locked: %+v, want busy", st)
	}
	if took > time.Second {
		t.Errorf("ReplicasNow took %v while the replica was locked, want about %v", took, statusWait)
	}
	if st := b.ReplicasNow()[origin]; st.Busy {
		t.Errorf("ReplicasNow, unlocked: busy")
	}
}

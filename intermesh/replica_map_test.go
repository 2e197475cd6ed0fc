package intermesh

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/intermesh/intermesh/internal/keyspace"
	"github.com/intermesh/intermesh/log"
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
	b, stop := startReplicating(t, fed, keys, 1, lb)
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

	// The map is in the node's database, committed at the checkpoint's
	// size, and a restarted member reopens it there.
	if c, err := vmap.NewBadgerStore(lb.DB(), vmap.StorePrefix(replicaMapName(origin))).Committed(); err != nil || c != 5 {
		t.Fatalf("the replica's map committed at %d (%v), want 5", c, err)
	}
	stop()
	b2, _ := startReplicating(t, fed, keys, 1, lb)
	if got := openedSize(t, b2.repl.origins[origin]); got != 5 {
		t.Fatalf("after a restart the replica's map covers %d records, want the 5 it was committed at", got)
	}
}

// openMapTestLog opens the log in dir as openTestLog does; the caller
// closes it.
func openMapTestLog(t *testing.T, dir, origin string) *log.Log {
	t.Helper()
	l, err := log.Open(context.Background(), log.Options{
		Dir:           dir,
		Origin:        origin,
		Logger:        slog.New(slog.DiscardHandler),
		Indexers:      []log.Indexer{EvidenceIndexer{}},
		BatchIndexers: []log.BatchIndexer{merkle.NewTree(nil, []byte("local"))},
		ReplicaIndexers: func(o string) log.ReplicaOptions {
			return log.ReplicaOptions{BatchIndexers: []log.BatchIndexer{merkle.NewTree(nil, merkle.ReplicaPrefix(o))}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// mapTestState returns the replicaState of origin's replica in l as
// newReplicator makes it, with its map not opened.
func mapTestState(t *testing.T, l *log.Log, origin string) *replicaState {
	t.Helper()
	rep, err := l.Replica(origin)
	if err != nil {
		t.Fatal(err)
	}
	rmap, err := newReplicaMap(l.DB(), origin, rep.Size())
	if err != nil {
		t.Fatal(err)
	}
	return &replicaState{origin: origin, rep: rep, rmap: rmap, tree: merkle.NewTree(l.DB(), merkle.ReplicaPrefix(origin))}
}

// appendNamed appends n Profile records from first to rs's replica, each
// naming prefix and its seq.
func appendNamed(t *testing.T, rs *replicaState, first, n uint64, prefix string) {
	t.Helper()
	recs := testRecords(rs.origin, first, n, 3)
	for i := range recs {
		recs[i].Identifier = fmt.Sprintf("%s%d", prefix, recs[i].Seq)
	}
	if _, err := rs.rep.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
}

// freshRoot returns the root of a map built in memory over the replica's
// first size records.
func freshRoot(t *testing.T, rs *replicaState, size uint64) vmap.Hash {
	t.Helper()
	lm := vmap.NewLogMap()
	if err := lm.Follow(context.Background(), rs.rep, size); err != nil {
		t.Fatal(err)
	}
	return lm.Root()
}

// checkRoot checks the replica map's root at size against a fresh map's.
func checkRoot(t *testing.T, rs *replicaState, size uint64) {
	t.Helper()
	rs.mu.Lock()
	got, err := rs.mapRootLocked(context.Background(), size, nil)
	rs.mu.Unlock()
	if err != nil {
		t.Fatalf("map root at %d: %v", size, err)
	}
	if want := freshRoot(t, rs, size); got != want {
		t.Fatalf("map root at %d is %x, the records' map is %x", size, got, want)
	}
}

// openedSize opens rs's map and returns how many records it covers.
func openedSize(t *testing.T, rs *replicaState) uint64 {
	t.Helper()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if err := rs.openMapLocked(); err != nil {
		t.Fatal(err)
	}
	return rs.rmap.lm.Size()
}

// restartMapTest closes l, as a node stopping, and opens the log in dir
// again with the state of origin's replica.
func restartMapTest(t *testing.T, l *log.Log, dir, origin string) (*log.Log, *replicaState) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openMapTestLog(t, dir, "testnet/node0")
	t.Cleanup(func() { l.Close() })
	return l, mapTestState(t, l, origin)
}

// cutBackTo cuts rs's replica back to keep records, its map with it.
func cutBackTo(t *testing.T, rs *replicaState, keep uint64) {
	t.Helper()
	if err := rs.cutBack(context.Background(), keep); err != nil {
		t.Fatal(err)
	}
}

// mapKeys counts the keys under the prefix of origin's replica map.
func mapKeys(t *testing.T, db *badger.DB, origin string) int {
	t.Helper()
	n := 0
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: vmap.StorePrefix(replicaMapName(origin))})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAReplicasMapIsKeptInTheDatabaseAndReopenedAfterARestart: the map of
// a replica is committed in the node's database under each size it is
// asked for, under keys of the vmap's, and a restarted member reopens it
// at the last of them rather than rebuilding it; a size below the
// versions it keeps is answered by rebuilding it, and it goes on from
// there.
func TestAReplicasMapIsKeptInTheDatabaseAndReopenedAfterARestart(t *testing.T) {
	dir := t.TempDir()
	const origin = "testnet/node1"
	l := openMapTestLog(t, dir, "testnet/node0")
	rs := mapTestState(t, l, origin)
	appendNamed(t, rs, 0, 30, "a")
	for _, size := range []uint64{5, 10, 20, 30} {
		checkRoot(t, rs, size)
	}
	checkRoot(t, rs, 10) // a kept version
	if err := keyspace.CheckOwner(l.DB(), keyspace.OwnerInterMesh, keyspace.OwnerLog, keyspace.OwnerMerkle, keyspace.OwnerMap); err != nil {
		t.Error(err)
	}
	if n, err := keyspace.Count(l.DB()); err != nil || n[keyspace.OwnerMap] == 0 || n[keyspace.OwnerMap] != mapKeys(t, l.DB(), origin) {
		t.Fatalf("map keys: %v, %v; want some, all under the replica map's prefix", n, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openMapTestLog(t, dir, "testnet/node0")
	t.Cleanup(func() { l.Close() })
	rs = mapTestState(t, l, origin)
	if got := openedSize(t, rs); got != 30 {
		t.Fatalf("the reopened map covers %d records, want the 30 it was committed at", got)
	}
	if got, want := rs.rmap.lm.Root(), freshRoot(t, rs, 30); got != want {
		t.Fatalf("the reopened map's root is %x, want %x", got, want)
	}
	appendNamed(t, rs, 30, 10, "a")
	checkRoot(t, rs, 40)
	checkRoot(t, rs, 30) // kept: reopened at it
	checkRoot(t, rs, 35) // between kept versions: lowered to 30, followed to 35
	if got := rs.rmap.lm.Size(); got != 35 {
		t.Fatalf("after a size between kept versions the map covers %d records, want 35", got)
	}
	checkRoot(t, rs, 40)
	checkRoot(t, rs, 7) // below every kept version: rebuilt
	if got := rs.rmap.lm.Size(); got != 7 {
		t.Fatalf("after a size below every kept version the map covers %d records, want 7", got)
	}
	checkRoot(t, rs, 40)
}

// TestAReplicasMapFollowsTheReplicaBackWhenItIsCutBack: a replica cut back
// below its map's committed version lowers the map to the newest version
// it keeps below the cut, or clears it, leaving no key behind (not even
// bucket versions an older Forget kept, which would show through a later
// version); the map of the records appended since is the right one, also
// after a restart; the cut-back's own transaction lowers the map's
// committed version, so a node stopped just after it reopens the map at
// the kept version, and a map found above the replica after a restart (a
// cut-back that did not lower it) is cleared.
func TestAReplicasMapFollowsTheReplicaBackWhenItIsCutBack(t *testing.T) {
	dir := t.TempDir()
	const origin = "testnet/node1"
	l := openMapTestLog(t, dir, "testnet/node0")
	rs := mapTestState(t, l, origin)
	appendNamed(t, rs, 0, 24, "a")
	for size := uint64(2); size <= 24; size += 2 { // past vmap.DefaultKeep: older versions forgotten
		checkRoot(t, rs, size)
	}
	// Kept: 18, 20, 22, 24. Cut back to 21: lowered to 20.
	cutBackTo(t, rs, 21)
	if got := openedSize(t, rs); got != 20 {
		t.Fatalf("cut back to 21, the map covers %d records, want the kept 20", got)
	}
	appendNamed(t, rs, 21, 9, "b")
	checkRoot(t, rs, 30)
	checkRoot(t, rs, 26)

	// Below every kept version: cleared, nothing left under its prefix.
	cutBackTo(t, rs, 3)
	if n := mapKeys(t, l.DB(), origin); n != 0 {
		t.Fatalf("%d keys left under the cleared map's prefix", n)
	}
	if got := openedSize(t, rs); got != 0 {
		t.Fatalf("cut back below every kept version, the map covers %d records, want 0", got)
	}
	appendNamed(t, rs, 3, 21, "c")
	for _, size := range []uint64{4, 24} {
		checkRoot(t, rs, size)
	}

	// The replica cut back and the node stopped before the map followed.
	if err := rs.rep.Truncate(context.Background(), 10, func(txn *badger.Txn) error { return rs.tree.TruncateTxn(txn, 10) }); err != nil {
		t.Fatal(err)
	}
	l, rs = restartMapTest(t, l, dir, origin)
	appendNamed(t, rs, 10, 20, "d") // before the map is first used
	if got := openedSize(t, rs); got != 0 {
		t.Fatalf("a map above the replica after a restart covers %d records once opened, want 0", got)
	}
	checkRoot(t, rs, 30)

	// The node stopped just after the cut-back's transaction: the map's
	// committed version went down with the records, to the newest version
	// it kept below the cut (24 of 24, 26, 28, 30), so it reopens there
	// rather than from nothing, and follows to the same roots.
	for size := uint64(24); size <= 30; size += 2 {
		checkRoot(t, rs, size)
	}
	rs.mu.Lock()
	err := rs.truncateLocked(context.Background(), 25)
	rs.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	l, rs = restartMapTest(t, l, dir, origin)
	if got := openedSize(t, rs); got != 24 {
		t.Fatalf("stopped after the cut-back to 25, the map reopens at %d records, want the kept 24", got)
	}
	appendNamed(t, rs, 25, 5, "e")
	checkRoot(t, rs, 30)

	// And once more after a clean restart, from the committed version.
	_, rs = restartMapTest(t, l, dir, origin)
	if got := openedSize(t, rs); got != 30 {
		t.Fatalf("reopened at %d records, want 30", got)
	}
	if got, want := rs.rmap.lm.Root(), freshRoot(t, rs, 30); got != want {
		t.Fatalf("the reopened map's root is %x, want %x", got, want)
	}
}

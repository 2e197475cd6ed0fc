package vmap

import (
	"maps"
	"math/rand/v2"
	"sync"
	"testing"
)

// TestBufferedStoreCommitsInMemoryAndFlushesLater: a Tree over a
// BufferedStore commits without writing to Badger, proves its kept versions
// whether flushed or not, as a MemStore's tree does, while Flush runs
// alongside; and a restart between a commit and its Flush reopens the map
// at the last version flushed, from which the same changes give the same
// roots.
func TestBufferedStoreCommitsInMemoryAndFlushesLater(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 7))
	db := openBadger(t, 1<<19)
	prefix := StorePrefix("local")
	s := NewBufferedStore(NewBadgerStore(db, prefix))
	tr, err := s.Open(3) // as checkKeptVersions expects
	if err != nil {
		t.Fatal(err)
	}
	values, at := map[Key]Value{}, map[uint64]map[Key]Value{0: {}}
	var keys []Key
	version, flushed := uint64(0), uint64(0)
	for step := range 10 {
		for range 1 + rng.IntN(600) {
			version++
			k := randomKey(rng, keys)
			if len(keys) > 0 && rng.IntN(3) == 0 {
				k = keys[rng.IntN(len(keys))]
			} else {
				keys = append(keys, k)
			}
			values[k] = values[k].Append(version, Hash{byte(version), byte(step)})
			if err := tr.Set(k, values[k]); err != nil {
				t.Fatal(err)
			}
		}
		if root, err := tr.CommitAt(version); err != nil || root != refRoot(values) {
			t.Fatalf("step %d: root %x, %v; want %x", step, root, err, refRoot(values))
		}
		at[version] = maps.Clone(values)
		if c, err := s.Committed(); err != nil || c != flushed {
			t.Fatalf("step %d: the commit of version %d wrote to Badger: committed %d (%v), want %d", step, version, c, err, flushed)
		}
		var wg sync.WaitGroup
		if step%3 == 2 { // the owner flushes while the tree proves
			wg.Go(func() {
				if err := s.Flush(); err != nil {
					t.Error(err)
				}
			})
			flushed = version
		}
		checkKeptVersions(t, tr, at, keys, rng)
		for _, v := range tr.Versions() {
			for range 8 {
				q := keys[rng.IntN(len(keys))]
				if p, err := tr.ProveAt(v, q); err != nil || !proofsEqual(p, refProve(at[v], q)) {
					t.Fatalf("step %d version %d: ProveAt(%x): %v", step, v, q, err)
				}
			}
		}
		wg.Wait()
	}
	// Killed with versions not flushed: the map reopens at the last one
	// flushed, and the same changes bring it to the same root.
	if s.Buffered() == 0 || flushed == version {
		t.Fatal("the test ends with every version flushed: it checks nothing")
	}
	s2 := NewBufferedStore(NewBadgerStore(db, prefix))
	re, err := s2.Open(DefaultKeep)
	if err != nil {
		t.Fatal(err)
	}
	if re.Version() != flushed || re.Root() != refRoot(at[flushed]) || re.Len() != len(at[flushed]) {
		t.Fatalf("reopened at version %d with %d keys, root %x; want %d, %d keys, %x", re.Version(), re.Len(), re.Root(), flushed, len(at[flushed]), refRoot(at[flushed]))
	}
	for k, v := range values {
		if old, ok := at[flushed][k]; !ok || old != v {
			if err := re.Set(k, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	if root, err := re.CommitAt(version); err != nil || root != refRoot(values) {
		t.Fatalf("followed again: root %x, %v; want %x", root, err, refRoot(values))
	}
	if err := s2.Flush(); err != nil {
		t.Fatal(err)
	}
	again, err := NewBufferedStore(NewBadgerStore(db, prefix)).Open(DefaultKeep)
	if err != nil || again.Version() != version || again.Root() != refRoot(values) {
		t.Fatalf("reopened after the Flush: %v", err)
	}
}

// TestBufferedStoreFlushFailureKeepsTheVersions: a Flush that cannot
// write reports it and keeps the versions in memory, where the tree still
// reads and proves them.
func TestBufferedStoreFlushFailureKeepsTheVersions(t *testing.T) {
	db := openBadger(t, 0)
	s := NewBufferedStore(NewBadgerStore(db, StorePrefix("local")))
	tr, err := s.Open(DefaultKeep)
	if err != nil {
		t.Fatal(err)
	}
	values := map[Key]Value{}
	for i := range 50 {
		k := Key{byte(i), byte(i * 7), 31: 1}
		values[k] = values[k].Append(uint64(i), Hash{byte(i)})
		if err := tr.Set(k, values[k]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tr.CommitAt(50); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err == nil {
		t.Fatal("Flush to a closed database reported no error")
	}
	if n := s.Buffered(); n != 1 {
		t.Fatalf("after the failed Flush %d operations wait, want the 1 not written", n)
	}
	for k := range values {
		if p, err := tr.ProveAt(50, k); err != nil || !proofsEqual(p, refProve(values, k)) {
			t.Fatalf("ProveAt(%x) after the failed Flush: %v", k, err)
		}
	}
}

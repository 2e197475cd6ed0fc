package vmap

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// toOldLists rewrites every list of saved buckets of s in the form stored
// before the lists kept each bucket's superseded version: the buckets
// alone.
func toOldLists(t *testing.T, s *BadgerStore) {
	t.Helper()
	err := s.db.Update(func(txn *badger.Txn) error {
		vs, err := s.savedVersionsIn(txn, 0, ^uint64(0))
		if err != nil {
			return err
		}
		for _, v := range vs {
			list, err := s.savedBuckets(txn, v)
			if err != nil {
				return err
			}
			var b []byte
			for _, e := range list {
				b = binary.BigEndian.AppendUint16(b, uint16(e.bucket))
			}
			if err := txn.Set(s.savedKey(v), b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// storedVersions returns the versions of each bucket that s holds.
func storedVersions(t *testing.T, s *BadgerStore) map[uint32][]uint64 {
	t.Helper()
	got := map[uint32][]uint64{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: s.key(bucketKind, 0, 0, false, false)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()[len(s.prefix)+1:]
			b := uint32(binary.BigEndian.Uint16(k))
			got[b] = append(got[b], binary.BigEndian.Uint64(k[2:]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestBadgerStoreForgetAgainstModel saves random buckets under growing
// versions, now and then again under a version not above the committed one
// or under the same one, with the lists of saved buckets now and then
// rewritten in the old form, and checks after each Forget that the store
// holds exactly, for each bucket, its newest version not above the
// cut-off and the versions above it, and that Loads of versions from the
// cut-off on return what was saved.
func TestBadgerStoreForgetAgainstModel(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 11))
			db := openBadger(t, 0)
			s := NewBadgerStore(db, StorePrefix("local"))
			saved := map[uint32]map[uint64]uint64{} // bucket, version: tag
			var c, cut uint64
			tag := uint64(0)
			for step := range 60 {
				v := c + 1 + uint64(rng.IntN(3))
				if c > cut+1 && rng.IntN(4) == 0 { // below or at the committed version, above the last cut-off
					v = cut + 1 + uint64(rng.IntN(int(c-cut)))
				}
				changed := map[uint32][]Entry{}
				for range 1 + rng.IntN(5) {
					b := uint32(rng.IntN(8)) * 4099 % buckets
					tag++
					changed[b] = []Entry{{keyIn(b, 1), Value{Count: tag}}}
					if saved[b] == nil {
						saved[b] = map[uint64]uint64{}
					}
					saved[b][v] = tag
				}
				if err := s.Save(v, changed); err != nil {
					t.Fatal(err)
				}
				c = max(c, v)
				if rng.IntN(10) == 0 {
					toOldLists(t, s)
				}
				if rng.IntN(3) != 0 {
					continue
				}
				cut = max(cut, c-uint64(rng.IntN(3)))
				if err := s.Forget(cut); err != nil {
					t.Fatal(err)
				}
				for _, vs := range saved {
					newest := uint64(0)
					for v := range vs {
						if v <= cut {
							newest = max(newest, v)
						}
					}
					maps.DeleteFunc(vs, func(v, _ uint64) bool { return v < newest })
				}
				got := storedVersions(t, s)
				for b, vs := range saved {
					if want := slices.Sorted(maps.Keys(vs)); !slices.Equal(got[b], want) {
						t.Fatalf("step %d, Forget(%d): bucket %d holds versions %v, want %v", step, cut, b, got[b], want)
					}
					for at := cut; at <= c; at++ {
						var want uint64
						for v := range vs {
							if v <= at {
								want = max(want, v)
							}
						}
						e, err := s.Load(b, at)
						if err != nil {
							t.Fatal(err)
						}
						if want == 0 {
							if e != nil {
								t.Fatalf("step %d: Load(%d, %d) = %v, want nothing", step, b, at, e)
							}
						} else if len(e) != 1 || e[0].Value.Count != vs[want] {
							t.Fatalf("step %d: Load(%d, %d) = %v, want tag %d", step, b, at, e, vs[want])
						}
					}
				}
				if len(got) != len(saved) {
					t.Fatalf("step %d: %d buckets stored, want %d", step, len(got), len(saved))
				}
			}
		})
	}
}

// TestBadgerStoreOldLists checks that a store whose lists of saved buckets
// are in the old form (the buckets alone) reads and forgets as before, and
// that Forget of a version saved in the new form deletes the version it
// supersedes without an iterator.
func TestBadgerStoreOldLists(t *testing.T) {
	db := openBadger(t, 0)
	s := NewBadgerStore(db, StorePrefix("local"))
	for v := uint64(1); v <= 3; v++ {
		if err := s.Save(v, map[uint32][]Entry{5: {{keyIn(5, 1), Value{Count: v}}}}); err != nil {
			t.Fatal(err)
		}
	}
	toOldLists(t, s)
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(s.savedKey(2))
		if err != nil {
			return err
		}
		if n := item.ValueSize(); n != 2 {
			t.Errorf("old list of version 2: %d bytes, want 2", n)
		}
		list, err := s.savedBuckets(txn, 2)
		if !slices.Equal(list, []listEntry{{5, unknownPrev}}) {
			t.Errorf("old list of version 2 reads as %v, %v", list, err)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	s = NewBadgerStore(db, StorePrefix("local")) // as after a restart
	tr, err := s.Open(2)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := s.Load(5, 2); err != nil || len(e) != 1 || e[0].Value.Count != 2 {
		t.Fatalf("Load(5, 2) = %v, %v", e, err)
	}
	if err := tr.Set(keyIn(5, 1), Value{Count: 4}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.CommitAt(4); err != nil {
		t.Fatal(err)
	}
	err = db.View(func(txn *badger.Txn) error {
		list, err := s.savedBuckets(txn, 4)
		if !slices.Equal(list, []listEntry{{5, 3}}) {
			t.Errorf("new list of version 4 reads as %v, %v; want bucket 5 superseding version 3", list, err)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Forget(3); err != nil {
		t.Fatal(err)
	}
	if got := storedVersions(t, s)[5]; !slices.Equal(got, []uint64{3, 4}) {
		t.Errorf("after Forget(3): versions %v, want [3 4]", got)
	}
	if err := s.Forget(4); err != nil {
		t.Fatal(err)
	}
	if got := storedVersions(t, s)[5]; !slices.Equal(got, []uint64{4}) {
		t.Errorf("after Forget(4): versions %v, want [4]", got)
	}
	if n := countKeys(t, db, s.prefix); n != 2 {
		t.Errorf("%d keys left, want the bucket and the committed version", n)
	}
	for _, bad := range [][]byte{{listFormat, 0, 5}, {7, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1}, {listFormat, 0, 5, 0, 0, 0, 0, 0, 0, 0, 9}} {
		if _, err := decodeBucketList(9, bad); err == nil {
			t.Errorf("decodeBucketList(%x): no error", bad)
		}
	}
}

// storeOnly hides a Store's methods other than Store's.
type storeOnly struct{ Store }

// TestBadgerStoreSaveForget checks that a Tree committing through
// SaveForget leaves its BadgerStore holding the same keys as one that
// Saves and Forgets apart, with the same roots.
func TestBadgerStoreSaveForget(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	db := openBadger(t, 0)
	s, apart := NewBadgerStore(db, StorePrefix("a")), NewBadgerStore(db, StorePrefix("b"))
	if _, ok := Store(s).(saveForgetter); !ok {
		t.Fatal("BadgerStore is not a saveForgetter")
	}
	tr, err := s.Open(3)
	if err != nil {
		t.Fatal(err)
	}
	ta, err := OpenTree(storeOnly{apart}, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	version := uint64(0)
	for range 12 {
		for range 1 + rng.IntN(40) {
			k := keyIn(uint32(rng.IntN(16))*4099%buckets, byte(rng.IntN(4)))
			v := Value{Count: rng.Uint64()}
			if err := tr.Set(k, v); err != nil {
				t.Fatal(err)
			}
			if err := ta.Set(k, v); err != nil {
				t.Fatal(err)
			}
		}
		version += 1 + uint64(rng.IntN(3))
		r, err := tr.CommitAt(version)
		if err != nil {
			t.Fatal(err)
		}
		if ra, err := ta.CommitAt(version); err != nil || ra != r {
			t.Fatalf("version %d: roots %x and %x, %v", version, r, ra, err)
		}
		if !slices.Equal(tr.Versions(), ta.Versions()) {
			t.Fatalf("version %d: kept %v and %v", version, tr.Versions(), ta.Versions())
		}
		if got, want := storedVersions(t, s), storedVersions(t, apart); !maps.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("version %d: stored %v, want %v", version, got, want)
		}
		if n, na := countKeys(t, db, s.prefix), countKeys(t, db, apart.prefix); n != na {
			t.Fatalf("version %d: %d keys, want %d", version, n, na)
		}
	}
}

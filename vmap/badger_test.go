package vmap

import (
	"encoding/binary"
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/intermesh/intermesh/internal/keyspace"
)

// openBadger opens a Badger database in a temporary directory, with a
// memtable of memtable bytes if not 0 (a Badger transaction holds 15% of
// it).
func openBadger(t testing.TB, memtable int64) *badger.DB {
	t.Helper()
	opts := badger.DefaultOptions(t.TempDir()).WithLogger(nil)
	if memtable > 0 {
		opts = opts.WithMemTableSize(memtable).WithValueThreshold(memtable / 100)
	}
	db, err := badger.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// keyIn returns a key of bucket b ending in i.
func keyIn(b uint32, i byte) Key {
	return Key{byte(b >> 8), byte(b), 31: i}
}

// countKeys returns how many keys of db start with prefix.
func countKeys(t *testing.T, db *badger.DB, prefix []byte) int {
	t.Helper()
	n := 0
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
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

// TestBadgerStoreRoundTrip checks that Load returns the newest version not
// above the one asked for nor above the committed one, as saved, that
// Save replaces a version, that stores under different prefixes do not
// meet, and that Forget keeps what Loads of later versions need.
func TestBadgerStoreRoundTrip(t *testing.T) {
	db := openBadger(t, 0)
	s, other := NewBadgerStore(db, StorePrefix("local")), NewBadgerStore(db, StorePrefix("loca"))
	entries := func(b uint32, n int, tag uint64) []Entry {
		var e []Entry
		for i := range n {
			e = append(e, Entry{keyIn(b, byte(i)), Value{}.Append(tag, Hash{byte(i)})})
		}
		return e
	}
	if e, err := s.Load(7, 10); err != nil || e != nil {
		t.Fatalf("Load of an empty store: %v, %v", e, err)
	}
	for _, v := range []uint64{5, 1, 3} {
		if err := s.Save(v, map[uint32][]Entry{7: entries(7, int(v), v), buckets - 1: entries(buckets-1, 1, v), 8: nil}); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Save(2, map[uint32][]Entry{7: entries(7, 9, 9)}); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Committed(); err != nil || c != 5 {
		t.Fatalf("Committed = %d, %v; want 5", c, err)
	}
	for _, tc := range []struct{ at, want uint64 }{{0, 0}, {1, 1}, {2, 1}, {3, 3}, {4, 3}, {5, 5}, {100, 5}} {
		e, err := s.Load(7, tc.at)
		if err != nil || !slices.Equal(e, entries(7, int(tc.want), tc.want)) {
			t.Errorf("Load(7, %d) = %d entries, %v; want version %d", tc.at, len(e), err, tc.want)
		}
		if e, err := s.Load(8, tc.at); err != nil || len(e) != 0 {
			t.Errorf("Load(8, %d) = %v, %v", tc.at, e, err)
		}
	}
	if e, err := s.Load(buckets-1, 4); err != nil || !slices.Equal(e, entries(buckets-1, 1, 3)) {
		t.Errorf("Load of the last bucket: %v, %v", e, err)
	}
	if _, err := s.Load(buckets, 4); err == nil {
		t.Error("Load of a bucket out of range: no error")
	}
	if err := s.Save(3, map[uint32][]Entry{7: entries(7, 2, 33)}); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.Load(7, 3); !slices.Equal(e, entries(7, 2, 33)) {
		t.Errorf("Load after replacing version 3: %v", e)
	}
	if e, _ := other.Load(7, 2); !slices.Equal(e, entries(7, 9, 9)) {
		t.Errorf("the other store: %v", e)
	}
	if err := s.Forget(4); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.Load(7, 4); !slices.Equal(e, entries(7, 2, 33)) {
		t.Errorf("Load(7, 4) after Forget(4): %v", e)
	}
	if e, _ := s.Load(7, 5); !slices.Equal(e, entries(7, 5, 5)) {
		t.Errorf("Load(7, 5) after Forget(4): %v", e)
	}
	// Left: three buckets at version 3 and 5, their lists of version 5,
	// and the committed version.
	if n := countKeys(t, db, s.prefix); n != 3*2+1+1 {
		t.Errorf("%d keys after Forget(4), want 8", n)
	}
	if err := s.Forget(5); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, db, s.prefix); n != 3+1 {
		t.Errorf("%d keys after Forget(5), want 4", n)
	}
	if e, _ := s.Load(7, 5); !slices.Equal(e, entries(7, 5, 5)) {
		t.Errorf("Load(7, 5) after Forget(5): %v", e)
	}
	if err := keyspace.CheckOwner(db, keyspace.OwnerMap); err != nil {
		t.Error(err)
	}
}

// TestBadgerStoreRefusesMalformed checks that Load refuses a stored bucket
// that does not decode.
func TestBadgerStoreRefusesMalformed(t *testing.T) {
	db := openBadger(t, 0)
	s := NewBadgerStore(db, StorePrefix("local"))
	good := []Entry{{keyIn(3, 1), Value{Count: 1}}, {keyIn(3, 2), Value{Count: 1}}}
	if err := s.Save(1, map[uint32][]Entry{3: good}); err != nil {
		t.Fatal(err)
	}
	enc := encodeBucket(good)
	for name, b := range map[string][]byte{
		"empty":         {},
		"short count":   {0, 0, 1},
		"too long":      append(slices.Clone(enc), 0),
		"too short":     enc[:len(enc)-1],
		"count too big": binary.BigEndian.AppendUint32(nil, 3),
		"out of order":  encodeBucket([]Entry{good[1], good[0]}),
		"repeated key":  encodeBucket([]Entry{good[0], good[0]}),
		"other bucket":  encodeBucket([]Entry{{keyIn(4, 1), Value{Count: 1}}}),
	} {
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set(s.bucketKey(3, 1), b) }); err != nil {
			t.Fatal(err)
		}
		if e, err := s.Load(3, 1); !errors.Is(err, ErrMalformedBucket) {
			t.Errorf("%s: Load = %v, %v; want ErrMalformedBucket", name, e, err)
		}
	}
}

// TestBadgerStorePartialSave checks that a Save cut short before the
// committed version is written is not seen by Load, and that Open
// discards it and opens the tree at the committed version.
func TestBadgerStorePartialSave(t *testing.T) {
	db := openBadger(t, 0)
	s := NewBadgerStore(db, StorePrefix("local"))
	tr, err := s.Open(3)
	if err != nil || tr.Version() != 0 || tr.Root() != (Hash{}) {
		t.Fatalf("Open of an empty store: %v", err)
	}
	values := map[Key]Value{}
	for i := range 50 {
		k := keyIn(uint32(i*977)%buckets, byte(i))
		values[k] = Value{}.Append(uint64(i), Hash{byte(i)})
		if err := tr.Set(k, values[k]); err != nil {
			t.Fatal(err)
		}
	}
	root, err := tr.CommitAt(50)
	if err != nil {
		t.Fatal(err)
	}
	before := countKeys(t, db, s.prefix)
	// A crash in the middle of saving version 60: buckets written, the
	// committed version not.
	cut := map[uint32][]Entry{5: {{keyIn(5, 9), Value{Count: 1}}}, 977: {{keyIn(977, 9), Value{Count: 1}}}}
	if err := s.save(60, cut, false, 0); err != nil {
		t.Fatal(err)
	}
	if e, err := s.Load(5, 60); err != nil || e != nil {
		t.Errorf("Load(5, 60) sees the cut save: %v, %v", e, err)
	}
	if e, err := s.Load(977, 1000); err != nil || len(e) != 1 || e[0].Key != keyIn(977, 1) {
		t.Errorf("Load(977, 1000) = %v, %v; want version 50's", e, err)
	}
	re, err := s.Open(3)
	if err != nil {
		t.Fatal(err)
	}
	if re.Version() != 50 || re.Root() != root || re.Len() != 50 {
		t.Fatalf("reopened: version %d, root %x, %d keys; want 50, %x, 50", re.Version(), re.Root(), re.Len(), root)
	}
	if n := countKeys(t, db, s.prefix); n != before {
		t.Errorf("%d keys after Open, want %d as before the cut save", n, before)
	}
	values[keyIn(5, 9)] = Value{Count: 2}
	if err := re.Set(keyIn(5, 9), values[keyIn(5, 9)]); err != nil {
		t.Fatal(err)
	}
	if root, err := re.CommitAt(70); err != nil || root != refRoot(values) {
		t.Errorf("CommitAt(70) after reopening = %x, %v; want %x", root, err, refRoot(values))
	}
	if e, _ := s.Load(977, 70); len(e) != 1 {
		t.Errorf("Load(977, 70) = %v; want version 50's", e)
	}
	// DiscardAbove below the committed version lowers it.
	if err := s.DiscardAbove(50); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Committed(); err != nil || c != 50 {
		t.Errorf("Committed after DiscardAbove(50) = %d, %v", c, err)
	}
	if re, err := s.Open(3); err != nil || re.Root() != root {
		t.Errorf("Open after DiscardAbove(50): %v", err)
	}
}

// TestBadgerStoreAgainstMemStore applies random inserts and updates to a
// tree over a BadgerStore whose transactions hold a few hundred buckets
// only, so that Saves and Forgets take several, and to one over a
// MemStore, committing both at the same growing versions; it checks the
// kept versions' roots and proofs against the reference and against each
// other, and that reopening the store gives the same map.
func TestBadgerStoreAgainstMemStore(t *testing.T) {
	for seed := range uint64(2) {
		rng := rand.New(rand.NewPCG(seed, 7))
		const keep = 3
		db := openBadger(t, 1<<19) // transactions of about 80 KB, 350 buckets
		s := NewBadgerStore(db, StorePrefix("replica/x"))
		tr, err := s.Open(keep)
		if err != nil {
			t.Fatal(err)
		}
		mt, err := OpenTree(&MemStore{}, 0, keep)
		if err != nil {
			t.Fatal(err)
		}
		values, at := map[Key]Value{}, map[uint64]map[Key]Value{0: {}}
		var keys []Key
		version := uint64(0)
		for step := range 8 {
			for range 1 + rng.IntN(800) {
				version++
				k := randomKey(rng, keys)
				if len(keys) > 0 && rng.IntN(3) == 0 {
					k = keys[rng.IntN(len(keys))]
				} else {
					keys = append(keys, k)
				}
				values[k] = values[k].Append(version, Hash{byte(version), byte(seed)})
				if err := tr.Set(k, values[k]); err != nil {
					t.Fatal(err)
				}
				if err := mt.Set(k, values[k]); err != nil {
					t.Fatal(err)
				}
			}
			root, err := tr.CommitAt(version)
			if err != nil {
				t.Fatal(err)
			}
			if mroot, err := mt.CommitAt(version); err != nil || mroot != root || root != refRoot(values) {
				t.Fatalf("seed %d step %d: root %x, MemStore %x (%v), reference %x", seed, step, root, mroot, err, refRoot(values))
			}
			at[version] = maps.Clone(values)
			checkKeptVersions(t, tr, at, keys, rng)
			for _, v := range tr.Versions() {
				for range 8 {
					q := keys[rng.IntN(len(keys))]
					p, err := tr.ProveAt(v, q)
					mp, merr := mt.ProveAt(v, q)
					if err != nil || merr != nil || !proofsEqual(p, mp) {
						t.Fatalf("seed %d version %d: ProveAt(%x) differs from the MemStore's: %v, %v", seed, v, q, err, merr)
					}
				}
			}
		}
		re, err := NewBadgerStore(db, StorePrefix("replica/x")).Open(keep)
		if err != nil {
			t.Fatal(err)
		}
		if re.Version() != version || re.Root() != refRoot(values) || re.Len() != len(values) {
			t.Fatalf("seed %d: reopened at %d with %d keys", seed, re.Version(), re.Len())
		}
		for _, q := range keys[:50] {
			p, err := re.ProveAt(version, q)
			if err != nil || !proofsEqual(p, refProve(values, q)) {
				t.Fatalf("seed %d: reopened: ProveAt(%x): %v", seed, q, err)
			}
		}
		if err := keyspace.CheckOwner(db, keyspace.OwnerMap); err != nil {
			t.Error(err)
		}
	}
}

// TestBadgerStoreBigSave checks that a Save too big for one Badger
// transaction is written in several, all seen once the last commits.
func TestBadgerStoreBigSave(t *testing.T) {
	db := openBadger(t, 1<<20) // transactions of about 150 KB
	s := NewBadgerStore(db, StorePrefix("local"))
	changed := map[uint32][]Entry{}
	for b := range uint32(buckets) {
		if b%4 == 0 { // 16,384 buckets of 2 entries: 3.7 MB
			changed[b] = []Entry{{keyIn(b, 1), Value{Count: 1}}, {keyIn(b, 2), Value{Count: 2}}}
		}
	}
	if err := db.Update(func(txn *badger.Txn) error {
		for b, e := range changed {
			if err := txn.Set(s.bucketKey(b, 1), encodeBucket(e)); err != nil {
				return err
			}
		}
		return nil
	}); !errors.Is(err, badger.ErrTxnTooBig) {
		t.Fatalf("one transaction for the save: %v, want ErrTxnTooBig", err)
	}
	if err := s.Save(1, changed); err != nil {
		t.Fatal(err)
	}
	for b := range uint32(buckets) {
		e, err := s.Load(b, 1)
		if err != nil || !slices.Equal(e, changed[b]) {
			t.Fatalf("Load(%d, 1) = %v, %v", b, e, err)
		}
	}
	if err := s.DiscardAbove(0); err != nil {
		t.Fatal(err)
	}
	if n := countKeys(t, db, s.prefix); n != 1 { // the committed version
		t.Errorf("%d keys after DiscardAbove(0), want 1", n)
	}
}

// TestBadgerStoreLeftoversDropped checks that what a Save cut short left
// above the committed version does not show through when later Saves,
// first of a lower version, pass it.
func TestBadgerStoreLeftoversDropped(t *testing.T) {
	db := openBadger(t, 0)
	s := NewBadgerStore(db, StorePrefix("local"))
	tr, err := s.Open(2)
	if err != nil {
		t.Fatal(err)
	}
	set := func(k Key, n uint64) {
		t.Helper()
		if err := tr.Set(k, Value{Count: n}); err != nil {
			t.Fatal(err)
		}
	}
	set(keyIn(1, 1), 1)
	if _, err := tr.CommitAt(10); err != nil {
		t.Fatal(err)
	}
	if err := s.save(60, map[uint32][]Entry{5: {{keyIn(5, 9), Value{Count: 9}}}}, false, 0); err != nil {
		t.Fatal(err)
	}
	set(keyIn(2, 1), 1)
	if _, err := tr.CommitAt(55); err != nil {
		t.Fatal(err)
	}
	set(keyIn(3, 1), 1)
	root, err := tr.CommitAt(70)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := s.Load(5, 70); err != nil || e != nil {
		t.Errorf("Load(5, 70) = %v, %v; the cut save of version 60 shows through", e, err)
	}
	if re, err := NewBadgerStore(db, StorePrefix("local")).Open(2); err != nil || re.Root() != root || re.Len() != 3 {
		t.Errorf("reopened: %v", err)
	}
}

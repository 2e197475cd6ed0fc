package vmap

import (
	"errors"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

func TestTreeRootsFromVectors(t *testing.T) {
	var v treeVectors
	loadVectors(t, "tree.json", &v)
	if got := NewTree().Root(); got != hash32(t, v.EmptyRoot) {
		t.Errorf("empty root %x, want %s", got, v.EmptyRoot)
	}
	n := 0
	for _, seq := range v.Sequences {
		tr := NewTree()
		for _, st := range seq.Steps {
			key, err := KeyOf(st.Namespace, st.Name)
			if err != nil {
				t.Fatal(err)
			}
			_, had := tr.Get(key)
			if had != (st.Op == "update") {
				t.Errorf("%s step %d: op %s but the key was present: %v", seq.Name, st.Step, st.Op, had)
			}
			val := st.Value.toValue(t)
			tr.Set(key, val)
			if got := leafHash(key, val.Hash()); got != hash32(t, st.Leaf) {
				t.Errorf("%s step %d: leaf %x, want %s", seq.Name, st.Step, got, st.Leaf)
			}
			if tr.Len() != st.Keys {
				t.Errorf("%s step %d: %d keys, want %d", seq.Name, st.Step, tr.Len(), st.Keys)
			}
			if got := tr.Root(); got != hash32(t, st.Root) {
				t.Errorf("%s step %d (%s): root %x, want %s", seq.Name, st.Step, st.Note, got, st.Root)
			}
			n++
		}
	}
	t.Logf("%d roots reproduced", n)
}

func TestTreeProofVectorsRoot(t *testing.T) {
	var v proofVectors
	loadVectors(t, "proofs.json", &v)
	tr := NewTree()
	for _, m := range v.Map {
		key, err := KeyOf(m.Namespace, m.Name)
		if err != nil {
			t.Fatal(err)
		}
		if key != Key(hash32(t, m.Key)) {
			t.Fatalf("%s %q: key %x, want %s", m.Namespace, m.Name, key, m.Key)
		}
		val, err := ParseValue(unhex(t, m.Value))
		if err != nil {
			t.Fatal(err)
		}
		tr.Set(key, val)
	}
	if tr.Len() != v.Size {
		t.Errorf("%d keys, want %d", tr.Len(), v.Size)
	}
	if got := tr.Root(); got != hash32(t, v.Root) {
		t.Errorf("root %x, want %s", got, v.Root)
	}
}

func TestTreeOrderDoesNotMatter(t *testing.T) {
	a, b := NewTree(), NewTree()
	const n = 200
	keys := make([]Key, n)
	for i := range keys {
		k, err := KeyOf(Profile, string(rune('a'+i%26))+string(rune('0'+i/26)))
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	for i := range keys {
		a.Set(keys[i], Value{LatestIndex: uint64(i), Count: 1})
		b.Set(keys[n-1-i], Value{LatestIndex: uint64(n - 1 - i), Count: 1})
	}
	if a.Root() != b.Root() {
		t.Error("the root depends on the order of insertion")
	}
	a.Set(keys[0], Value{LatestIndex: 999, Count: 2})
	if a.Root() == b.Root() {
		t.Error("an update did not change the root")
	}
}

// TestCommitsAgainstReference applies random inserts and updates, with
// Commits in between, and checks after each Commit (and now and then
// between them) the root of every kept version and proofs under it, of keys present then, set only later, and
// never set, against the sort-based reference over the map as it was at
// that version.
func TestCommitsAgainstReference(t *testing.T) {
	for seed := range uint64(4) {
		rng := rand.New(rand.NewPCG(seed, 99))
		const keep = 3
		tr, err := OpenTree(&MemStore{}, 0, keep)
		if err != nil {
			t.Fatal(err)
		}
		values, at := map[Key]Value{}, map[uint64]map[Key]Value{0: {}}
		var keys []Key
		for i := range 400 {
			k := randomKey(rng, keys)
			if len(keys) > 0 && rng.IntN(3) == 0 {
				k = keys[rng.IntN(len(keys))]
			} else {
				keys = append(keys, k)
			}
			values[k] = values[k].Append(uint64(i), Hash{byte(i), byte(seed)})
			if err := tr.Set(k, values[k]); err != nil {
				t.Fatal(err)
			}
			if rng.IntN(1+i/8) != 0 { // commit often while the map is small
				if rng.IntN(16) == 0 { // kept versions with changes since
					if got, want := tr.Root(), refRoot(values); got != want {
						t.Fatalf("seed %d step %d: root %x, reference %x", seed, i, got, want)
					}
					checkKeptVersions(t, tr, at, keys, rng)
				}
				continue
			}
			v, root, err := tr.Commit()
			if err != nil {
				t.Fatal(err)
			}
			at[v] = maps.Clone(values)
			if want := refRoot(values); root != want {
				t.Fatalf("seed %d step %d: version %d root %x, reference %x", seed, i, v, root, want)
			}
			checkKeptVersions(t, tr, at, keys, rng)
		}
	}
}

// checkKeptVersions checks that tr keeps the last versions of at, and the
// roots and proofs under each of them, and refuses the older ones.
func checkKeptVersions(t *testing.T, tr *Tree, at map[uint64]map[Key]Value, keys []Key, rng *rand.Rand) {
	t.Helper()
	kept := tr.Versions()
	if last := kept[len(kept)-1]; last != tr.Version() || len(kept) > 3 || len(kept) < min(3, len(at)) {
		t.Fatalf("kept versions %v after committing %d", kept, tr.Version())
	}
	for v, values := range at {
		if !slices.Contains(kept, v) {
			if _, err := tr.ProveAt(v, keys[0]); !errors.Is(err, ErrVersionNotKept) {
				t.Fatalf("version %d, not kept: ProveAt error %v", v, err)
			}
			continue
		}
		root, err := tr.RootAt(v)
		if err != nil || root != refRoot(values) {
			t.Fatalf("version %d: RootAt %x, %v; reference %x", v, root, err, refRoot(values))
		}
		if n, err := tr.LenAt(v); err != nil || n != len(values) {
			t.Fatalf("version %d: LenAt %d, %v; want %d", v, n, err, len(values))
		}
		probes := []Key{keys[rng.IntN(len(keys))], keys[len(keys)-1], randomKey(rng, keys), {}}
		for _, q := range probes {
			p, err := tr.ProveAt(v, q)
			if err != nil {
				t.Fatal(err)
			}
			if ref := refProve(values, q); !proofsEqual(p, ref) {
				t.Fatalf("version %d: ProveAt(%x) = %+v; reference %+v", v, q, p, ref)
			}
			got, ok, err := Verify(root, q, p)
			if want, wantOK := values[q]; err != nil || ok != wantOK || got != want {
				t.Fatalf("version %d: Verify(%x) = %+v, %v, %v; want %+v, %v", v, q, got, ok, err, want, wantOK)
			}
		}
	}
}

// TestForgetRefusesProofs checks that a forgotten version, dropped by
// Forget or by Commit beyond the versions kept, is refused by ProveAt and
// RootAt, and that the versions still kept are proved as before.
func TestForgetRefusesProofs(t *testing.T) {
	tr, err := OpenTree(&MemStore{}, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	k := Key{0x80}
	roots := map[uint64]Hash{}
	for i := range 4 {
		if err := tr.Set(k, Value{LatestIndex: uint64(i), Count: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
		if err := tr.Set(Key{byte(i)}, Value{Count: 1}); err != nil {
			t.Fatal(err)
		}
		v, root, err := tr.Commit()
		if err != nil {
			t.Fatal(err)
		}
		roots[v] = root
	}
	if got := tr.Versions(); !slices.Equal(got, []uint64{3, 4}) {
		t.Fatalf("kept %v, want [3 4]", got)
	}
	if err := tr.Forget(4); err != nil {
		t.Fatal(err)
	}
	for v := range uint64(5) {
		p, err := tr.ProveAt(v, k)
		_, rerr := tr.RootAt(v)
		if v < 4 {
			if !errors.Is(err, ErrVersionNotKept) || !errors.Is(rerr, ErrVersionNotKept) {
				t.Errorf("version %d, forgotten: ProveAt error %v, RootAt error %v", v, err, rerr)
			}
			continue
		}
		got, ok, err := Verify(roots[v], k, p)
		if err != nil || !ok || got.LatestIndex != 3 {
			t.Errorf("version %d: %+v, %v, %v", v, got, ok, err)
		}
	}
	if err := tr.Forget(100); err != nil || !slices.Equal(tr.Versions(), []uint64{4}) {
		t.Errorf("Forget beyond the last version: %v, kept %v", err, tr.Versions())
	}
}

// TestMemStore checks that Load returns the newest version not above the
// one asked for, that Save replaces a version and copies, and that Forget
// keeps what Loads of later versions need.
func TestMemStore(t *testing.T) {
	var s MemStore
	entries := func(i byte) []Entry { return []Entry{{Key: Key{i}, Value: Value{Count: uint64(i)}}} }
	for _, v := range []uint64{5, 1, 3} {
		e := entries(byte(v))
		if err := s.Save(v, map[uint32][]Entry{7: e, 8: nil}); err != nil {
			t.Fatal(err)
		}
		e[0].Key = Key{99} // Save keeps a copy
	}
	if err := s.Save(3, map[uint32][]Entry{7: entries(4)}); err != nil {
		t.Fatal(err)
	}
	check := func(version uint64, want byte) {
		t.Helper()
		e, err := s.Load(7, version)
		if err != nil || want == 0 && e != nil || want != 0 && (len(e) != 1 || e[0].Key != Key{want}) {
			t.Errorf("Load(7, %d) = %v, %v; want key %d", version, e, err, want)
		}
	}
	check(0, 0)
	check(2, 1)
	check(3, 4)
	check(4, 4)
	check(9, 5)
	if e, err := s.Load(9, 9); err != nil || e != nil {
		t.Errorf("Load of a bucket never saved: %v, %v", e, err)
	}
	if err := s.Forget(4); err != nil {
		t.Fatal(err)
	}
	check(4, 4)
	check(9, 5)
	if n := len(s.buckets[7]); n != 2 {
		t.Errorf("%d versions kept after Forget(4), want 2", n)
	}
}

// failingStore is a MemStore whose Loads and Saves fail while fail is set.
type failingStore struct {
	MemStore
	fail bool
}

var errStore = errors.New("store down")

func (s *failingStore) Load(b uint32, v uint64) ([]Entry, error) {
	if s.fail {
		return nil, errStore
	}
	return s.MemStore.Load(b, v)
}

func (s *failingStore) Save(v uint64, changed map[uint32][]Entry) error {
	if s.fail {
		return errStore
	}
	return s.MemStore.Save(v, changed)
}

// TestStoreErrors checks that the Store's errors reach the caller and
// leave the tree as it was: Set changes nothing, Commit commits nothing
// and can be retried, Lookup and ProveAt fail.
func TestStoreErrors(t *testing.T) {
	s := &failingStore{}
	tr, err := OpenTree(s, 0, 4)
	if err != nil {
		t.Fatal(err)
	}
	a, b := Key{1}, Key{2}
	if err := tr.Set(a, Value{Count: 1}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tr.Commit(); err != nil {
		t.Fatal(err)
	}
	root := tr.Root()
	s.fail = true
	if err := tr.Set(b, Value{Count: 1}); !errors.Is(err, errStore) || tr.Len() != 1 || tr.Root() != root {
		t.Errorf("Set with the store down: %v, %d keys", err, tr.Len())
	}
	if _, _, err := tr.Lookup(a); !errors.Is(err, errStore) {
		t.Errorf("Lookup with the store down: %v", err)
	}
	if _, err := tr.ProveAt(1, a); !errors.Is(err, errStore) {
		t.Errorf("ProveAt with the store down: %v", err)
	}
	s.fail = false
	if err := tr.Set(b, Value{Count: 1}); err != nil {
		t.Fatal(err)
	}
	s.fail = true
	if _, _, err := tr.Commit(); !errors.Is(err, errStore) || tr.Version() != 1 {
		t.Errorf("Commit with the store down: %v, version %d", err, tr.Version())
	}
	s.fail = false
	v, root, err := tr.Commit()
	if err != nil || v != 2 || root != refRoot(map[Key]Value{a: {Count: 1}, b: {Count: 1}}) {
		t.Errorf("Commit retried: %d, %x, %v", v, root, err)
	}
}

// TestOpenTree checks that a tree opened from a Store at a committed
// version has that version's keys, root and proofs, and goes on from it.
func TestOpenTree(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	s := &MemStore{}
	tr, err := OpenTree(s, 0, 4)
	if err != nil {
		t.Fatal(err)
	}
	var keys []Key
	for i := range 300 {
		keys = append(keys, randomKey(rng, keys))
		if err := tr.Set(keys[i], Value{LatestIndex: uint64(i), Count: 1}); err != nil {
			t.Fatal(err)
		}
	}
	v, root, err := tr.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Set(keys[0], Value{Count: 9}); err != nil { // not committed
		t.Fatal(err)
	}
	re, err := OpenTree(s, v, 4)
	if err != nil {
		t.Fatal(err)
	}
	if re.Root() != root || re.Len() != 300 || re.Version() != v {
		t.Fatalf("reopened: root %x, %d keys, version %d; want %x, 300, %d", re.Root(), re.Len(), re.Version(), root, v)
	}
	for _, q := range append(keys[:20:20], randomKey(rng, keys)) {
		p, err := re.ProveAt(v, q)
		want, werr := tr.ProveAt(v, q)
		if err != nil || werr != nil || !proofsEqual(p, want) {
			t.Fatalf("reopened: ProveAt(%x) differs: %v, %v", q, err, werr)
		}
	}
	if err := re.Set(keys[1], Value{Count: 2}); err != nil {
		t.Fatal(err)
	}
	if v2, _, err := re.Commit(); err != nil || v2 != v+1 {
		t.Errorf("reopened: Commit %d, %v; want %d", v2, err, v+1)
	}
}

// TestRootRecomputesStalePathsOnly checks that Root after Sets recomputes
// the touched buckets and their paths to the root, and nothing else of the
// top.
func TestRootRecomputesStalePathsOnly(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	tr := NewTree()
	var keys []Key
	for i := range 1000 {
		keys = append(keys, randomKey(rng, nil))
		if err := tr.Set(keys[i], Value{Count: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := tr.Commit(); err != nil {
		t.Fatal(err)
	}
	changed := func() int { return len(tr.kept[len(tr.kept)-1].undo) }
	for range 3 { // the same key thrice: one path
		if err := tr.Set(keys[0], Value{Count: 2}); err != nil {
			t.Fatal(err)
		}
	}
	tr.Root()
	if got := changed(); got != BucketBits+1 {
		t.Errorf("one key set: %d nodes recomputed, want %d", got, BucketBits+1)
	}
	// A key in the same bucket adds no node; one in the sibling bucket adds
	// that bucket only.
	k1, k2 := keys[0], keys[0]
	k1[31], k2[1] = k1[31]^1, k2[1]^1
	for _, k := range []Key{k1, k2} {
		if err := tr.Set(k, Value{Count: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if tr.Root() != refRoot(maps.Collect(tr.values)) || changed() != BucketBits+2 {
		t.Errorf("two more keys: %d nodes recomputed, want %d", changed(), BucketBits+2)
	}
}

// TestConcurrentProofs proves keys under a committed version from several
// goroutines while another sets keys and commits (run it with -race).
func TestConcurrentProofs(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 11))
	tr := NewTree()
	var keys []Key
	for i := range 200 {
		keys = append(keys, randomKey(rng, keys))
		if err := tr.Set(keys[i], Value{Count: 1}); err != nil {
			t.Fatal(err)
		}
	}
	v, root, err := tr.Commit()
	if err != nil {
		t.Fatal(err)
	}
	more := make([]Key, 300)
	for i := range more {
		more[i] = randomKey(rng, keys)
	}
	var wg sync.WaitGroup
	for r := range 3 {
		wg.Go(func() {
			for i := range 300 {
				q := keys[(i*7+r)%len(keys)]
				p, err := tr.ProveAt(v, q)
				if err != nil {
					t.Error(err)
					return
				}
				if _, ok, err := Verify(root, q, p); err != nil || !ok {
					t.Errorf("ProveAt(%d, %x): %v, %v", v, q, ok, err)
					return
				}
			}
		})
	}
	for i, k := range more {
		if err := tr.Set(k, Value{Count: 2}); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			if _, _, err := tr.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	wg.Wait()
}

// TestCommitAt checks that CommitAt commits the versions it is given, as
// the map of a log commits its sizes, refuses a version not above the last
// one without changing anything, and that Commit goes on from the last.
func TestCommitAt(t *testing.T) {
	tr, err := OpenTree(&MemStore{}, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	values, at := map[Key]Value{}, map[uint64]map[Key]Value{}
	set := func(k Key, i uint64) {
		t.Helper()
		values[k] = values[k].Append(i, Hash{byte(i)})
		if err := tr.Set(k, values[k]); err != nil {
			t.Fatal(err)
		}
	}
	commitAt := func(v uint64) {
		t.Helper()
		root, err := tr.CommitAt(v)
		if err != nil || root != refRoot(values) || tr.Version() != v {
			t.Fatalf("CommitAt(%d) = %x, %v, version %d; want %x", v, root, err, tr.Version(), refRoot(values))
		}
		at[v] = maps.Clone(values)
	}
	set(Key{0x10}, 0)
	set(Key{0x90}, 1)
	commitAt(2)
	set(Key{0x10}, 2)
	commitAt(3)
	set(Key{0x11}, 3)
	for _, v := range []uint64{0, 2, 3} {
		if _, err := tr.CommitAt(v); !errors.Is(err, ErrVersionNotAbove) {
			t.Errorf("CommitAt(%d) after 3: error %v", v, err)
		}
	}
	if tr.Version() != 3 || !slices.Equal(tr.Versions(), []uint64{0, 2, 3}) || tr.Len() != 3 {
		t.Fatalf("after refused CommitAts: version %d, kept %v, %d keys", tr.Version(), tr.Versions(), tr.Len())
	}
	commitAt(1000) // the pending Set is committed now
	set(Key{0x12}, 1000)
	v, root, err := tr.Commit()
	if err != nil || v != 1001 || root != refRoot(values) {
		t.Fatalf("Commit after CommitAt(1000) = %d, %x, %v", v, root, err)
	}
	at[v] = maps.Clone(values)
	if !slices.Equal(tr.Versions(), []uint64{3, 1000, 1001}) {
		t.Fatalf("kept %v, want [3 1000 1001]", tr.Versions())
	}
	for _, v := range []uint64{3, 1000, 1001} {
		if root, err := tr.RootAt(v); err != nil || root != refRoot(at[v]) {
			t.Errorf("RootAt(%d) = %x, %v; want %x", v, root, err, refRoot(at[v]))
		}
		for _, q := range []Key{{0x10}, {0x11}, {0x12}, {0x90}, {0x91}} {
			p, err := tr.ProveAt(v, q)
			if err != nil || !proofsEqual(p, refProve(at[v], q)) {
				t.Errorf("ProveAt(%d, %x): %+v, %v", v, q, p, err)
			}
		}
	}
	for _, v := range []uint64{2, 999, 1002} {
		if _, err := tr.RootAt(v); !errors.Is(err, ErrVersionNotKept) {
			t.Errorf("RootAt(%d): error %v", v, err)
		}
	}
}

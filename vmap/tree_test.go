package vmap

import (
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

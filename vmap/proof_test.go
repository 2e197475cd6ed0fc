package vmap

import (
	"bytes"
	"errors"
	"testing"
)

// toProof converts a vector's proof.
func (vp vecProof) toProof(t testing.TB) *Proof {
	t.Helper()
	p := &Proof{Depth: vp.Depth, Siblings: []Hash{}}
	switch vp.Result {
	case "inclusion":
		p.Result = Inclusion
	case "other-leaf":
		p.Result = OtherLeaf
	case "empty":
		p.Result = Empty
	default:
		t.Fatalf("unknown result %q", vp.Result)
	}
	for _, s := range vp.Siblings {
		p.Siblings = append(p.Siblings, hash32(t, s))
	}
	if vp.Value != "" {
		p.Value = unhex(t, vp.Value)
	}
	if vp.OtherKey != "" {
		k := Key(hash32(t, vp.OtherKey))
		p.OtherKey = &k
	}
	if vp.OtherValueHash != "" {
		h := hash32(t, vp.OtherValueHash)
		p.OtherValueHash = &h
	}
	return p
}

// proofVectorsTree loads proofs.json and builds its map.
func proofVectorsTree(t testing.TB) (proofVectors, *Tree) {
	var v proofVectors
	loadVectors(t, "proofs.json", &v)
	tr := NewTree()
	for _, m := range v.Map {
		val, err := ParseValue(unhex(t, m.Value))
		if err != nil {
			t.Fatal(err)
		}
		tr.Set(Key(hash32(t, m.Key)), val)
	}
	return v, tr
}

func TestVerifyProofVectors(t *testing.T) {
	v, _ := proofVectorsTree(t)
	for _, c := range v.Cases {
		key, err := KeyOf(c.Namespace, c.Name)
		if err != nil || key != Key(hash32(t, c.Key)) {
			t.Fatalf("%s: key %x (%v), want %s", c.About, key, err, c.Key)
		}
		val, present, err := Verify(hash32(t, c.Root), key, c.Proof.toProof(t))
		if err != nil {
			t.Errorf("%s: %v", c.About, err)
			continue
		}
		if present != (c.Expect == "present") {
			t.Errorf("%s: present %v, want %s", c.About, present, c.Expect)
		}
		if present && !bytes.Equal(val.Marshal(), unhex(t, c.Value)) {
			t.Errorf("%s: value %x, want %s", c.About, val.Marshal(), c.Value)
		}
	}
	t.Logf("%d cases verified", len(v.Cases))
}

func TestVerifyRefusesMustFailVectors(t *testing.T) {
	v, _ := proofVectorsTree(t)
	for _, c := range v.MustFail {
		key, err := KeyOf(c.Namespace, c.Name)
		if err != nil || key != Key(hash32(t, c.Key)) {
			t.Fatalf("%s: key %x (%v), want %s", c.About, key, err, c.Key)
		}
		_, _, err = Verify(hash32(t, c.Root), key, c.Proof.toProof(t))
		if !errors.Is(err, ErrBadProof) {
			t.Errorf("%s: Verify = %v, want a refusal (%s)", c.About, err, c.Why)
			continue
		}
		t.Logf("%s: %v", c.About, err)
	}
	t.Logf("%d must_fail cases refused", len(v.MustFail))
}

func TestProveMatchesProofVectors(t *testing.T) {
	v, tr := proofVectorsTree(t)
	root := tr.Root()
	for _, c := range v.Cases {
		if hash32(t, c.Root) != root {
			continue // the empty-map case is checked below
		}
		key := Key(hash32(t, c.Key))
		got, want := tr.Prove(key), c.Proof.toProof(t)
		if !proofsEqual(got, want) {
			t.Errorf("%s: Prove = %+v, want %+v", c.About, got, want)
		}
		if _, _, err := Verify(root, key, got); err != nil {
			t.Errorf("%s: own proof: %v", c.About, err)
		}
	}
	empty := NewTree()
	for _, c := range v.Cases[:3] {
		p := empty.Prove(Key(hash32(t, c.Key)))
		if p.Result != Empty || p.Depth != 0 {
			t.Errorf("empty map: Prove = %+v, want empty at depth 0", p)
		}
	}
}

// proofsEqual reports whether two proofs have the same fields.
func proofsEqual(a, b *Proof) bool {
	if a.Result != b.Result || a.Depth != b.Depth || len(a.Siblings) != len(b.Siblings) ||
		!bytes.Equal(a.Value, b.Value) || (a.OtherKey == nil) != (b.OtherKey == nil) ||
		(a.OtherValueHash == nil) != (b.OtherValueHash == nil) {
		return false
	}
	for i := range a.Siblings {
		if a.Siblings[i] != b.Siblings[i] {
			return false
		}
	}
	return (a.OtherKey == nil || *a.OtherKey == *b.OtherKey) &&
		(a.OtherValueHash == nil || *a.OtherValueHash == *b.OtherValueHash)
}

func TestProveEveryKey(t *testing.T) {
	_, tr := proofVectorsTree(t)
	root := tr.Root()
	for k, want := range tr.values {
		got, present, err := Verify(root, k, tr.Prove(k))
		if err != nil || !present || got != want {
			t.Fatalf("key %x: Verify = %+v, %v, %v; want %+v", k, got, present, err, want)
		}
	}
	for i := range 200 {
		k, _ := KeyOf(Account, string(rune('A'+i%26))+string(rune('0'+i/26)))
		_, present, err := Verify(root, k, tr.Prove(k))
		if err != nil || present {
			t.Fatalf("absent key %x: present %v, %v", k, present, err)
		}
	}
}

func TestVerifyRefusesMixedFields(t *testing.T) {
	v, _ := proofVectorsTree(t)
	root := hash32(t, v.Root)
	for _, c := range v.Cases {
		if hash32(t, c.Root) != root {
			continue
		}
		key := Key(hash32(t, c.Key))
		p := c.Proof.toProof(t)
		k, h := Key{1}, Hash{2}
		switch p.Result {
		case Inclusion:
			p.OtherKey = &k
		case OtherLeaf:
			p.Value = make([]byte, ValueSize)
		case Empty:
			p.OtherValueHash = &h
		}
		if _, _, err := Verify(root, key, p); !errors.Is(err, ErrBadProof) {
			t.Errorf("%s with a field of another result: Verify = %v", c.About, err)
		}
	}
	if _, _, err := Verify(root, Key{}, nil); !errors.Is(err, ErrBadProof) {
		t.Errorf("nil proof: Verify = %v", err)
	}
	if _, _, err := Verify(root, Key{}, &Proof{Result: 9}); !errors.Is(err, ErrBadProof) {
		t.Errorf("unknown result: Verify = %v", err)
	}
}

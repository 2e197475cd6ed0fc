package vmap

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// This file keeps the first, sort-based computation of the root and of
// lookup proofs, straight from the recursive definition, as a reference for
// the incremental trie of Tree.

// pair is a key with its value hash.
type pair struct {
	key       Key
	valueHash Hash
}

// sortedPairs returns the keys of values with their value hashes, sorted by
// key.
func sortedPairs(values map[Key]Value) []pair {
	ps := make([]pair, 0, len(values))
	for k, v := range values {
		ps = append(ps, pair{k, v.Hash()})
	}
	slices.SortFunc(ps, func(a, b pair) int { return bytes.Compare(a.key[:], b.key[:]) })
	return ps
}

// split divides ps, sorted and sharing their first depth bits, into the
// pairs whose bit at depth is 0 and those whose bit is 1.
func split(ps []pair, depth int) (zero, one []pair) {
	i := sort.Search(len(ps), func(i int) bool { return bit(ps[i].key, depth) == 1 })
	return ps[:i], ps[i:]
}

// subtreeHash returns h of ps, sorted distinct keys sharing their first
// depth bits.
func subtreeHash(ps []pair, depth int) Hash {
	switch len(ps) {
	case 0:
		return Hash{}
	case 1:
		return leafHash(ps[0].key, ps[0].valueHash)
	}
	zero, one := split(ps, depth)
	return innerHash(subtreeHash(zero, depth+1), subtreeHash(one, depth+1))
}

// refRoot is the root of values computed over the sorted keys.
func refRoot(values map[Key]Value) Hash {
	return subtreeHash(sortedPairs(values), 0)
}

// refProve is the lookup proof for key in values, computed over the sorted
// keys.
func refProve(values map[Key]Value, key Key) *Proof {
	ps := sortedPairs(values)
	p := &Proof{Siblings: []Hash{}}
	for depth := 0; ; depth++ {
		switch {
		case len(ps) == 0:
			p.Result = Empty
		case len(ps) == 1 && ps[0].key == key:
			p.Result = Inclusion
			p.Value = values[key].Marshal()
		case len(ps) == 1:
			p.Result = OtherLeaf
			other, vh := ps[0].key, ps[0].valueHash
			p.OtherKey, p.OtherValueHash = &other, &vh
		default:
			zero, one := split(ps, depth)
			if bit(key, depth) == 0 {
				ps = zero
				p.Siblings = append(p.Siblings, subtreeHash(one, depth+1))
			} else {
				ps = one
				p.Siblings = append(p.Siblings, subtreeHash(zero, depth+1))
			}
			continue
		}
		p.Depth = depth
		return p
	}
}

// TestTreeAgainstReference applies random inserts and updates, many of them
// on keys sharing long prefixes, to a Tree and to a plain map, and compares
// after every step the root, the length, Get, and the proofs of the key just
// set, of other present keys and of absent keys with the sort-based
// reference.
func TestTreeAgainstReference(t *testing.T) {
	for seed := range uint64(8) {
		rng := rand.New(rand.NewPCG(seed, 77))
		tr, values := NewTree(), map[Key]Value{}
		var keys []Key
		for i := range 250 {
			var k Key
			if len(keys) > 0 && rng.IntN(3) == 0 {
				k = keys[rng.IntN(len(keys))]
			} else {
				k = randomKey(rng, keys)
				keys = append(keys, k)
			}
			v := values[k].Append(uint64(i), Hash{byte(i), byte(seed)})
			tr.Set(k, v)
			values[k] = v
			if got, want := tr.Root(), refRoot(values); got != want {
				t.Fatalf("seed %d step %d: root %x, reference %x", seed, i, got, want)
			}
			if tr.Len() != len(values) {
				t.Fatalf("seed %d step %d: Len %d, want %d", seed, i, tr.Len(), len(values))
			}
			probes := []Key{k, keys[rng.IntN(len(keys))], randomKey(rng, keys), {}}
			for _, q := range probes {
				compareWithReference(t, tr, values, q)
			}
		}
	}
}

// compareWithReference checks Get and Prove for q against values.
func compareWithReference(t *testing.T, tr *Tree, values map[Key]Value, q Key) {
	t.Helper()
	got, ok := tr.Get(q)
	want, wantOK := values[q]
	if ok != wantOK || got != want {
		t.Fatalf("Get(%x) = %+v, %v; want %+v, %v", q, got, ok, want, wantOK)
	}
	if p, ref := tr.Prove(q), refProve(values, q); !proofsEqual(p, ref) {
		t.Fatalf("Prove(%x) = %+v; reference %+v", q, p, ref)
	}
}

// TestTreeValuesInKeyOrder checks that the trie holds exactly the keys set,
// in key order.
func TestTreeValuesInKeyOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	tr, values := NewTree(), map[Key]Value{}
	var keys []Key
	for i := range 500 {
		k := randomKey(rng, keys)
		keys = append(keys, k)
		values[k] = Value{LatestIndex: uint64(i), Count: 1}
		tr.Set(k, values[k])
	}
	ps, i := sortedPairs(values), 0
	for k, v := range tr.values {
		if i >= len(ps) || k != ps[i].key || v != values[k] {
			t.Fatalf("entry %d: key %x", i, k)
		}
		i++
	}
	if i != len(ps) {
		t.Fatalf("%d entries, want %d", i, len(ps))
	}
}

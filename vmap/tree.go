package vmap

import (
	"bytes"
	"crypto/sha256"
	"slices"
	"sort"
)

// Node bytes of the prefix tree: a leaf is SHA-256(leafPrefix || key ||
// value_hash), an interior node SHA-256(innerPrefix || left || right).
const (
	leafPrefix  = 0x02
	innerPrefix = 0x03
)

// Tree is a map from keys to values, held in memory, with the root of its
// prefix tree. The zero Tree is not usable; call NewTree.
type Tree struct {
	values map[Key]Value
}

// NewTree returns an empty map.
func NewTree() *Tree {
	return &Tree{values: map[Key]Value{}}
}

// Set gives key the value v, inserting the key or replacing its value.
func (t *Tree) Set(key Key, v Value) {
	t.values[key] = v
}

// Get returns key's value and whether the map holds the key.
func (t *Tree) Get(key Key) (Value, bool) {
	v, ok := t.values[key]
	return v, ok
}

// Len returns how many keys the map holds.
func (t *Tree) Len() int {
	return len(t.values)
}

// Root returns the root of the map's prefix tree: 32 zero bytes for an
// empty map.
func (t *Tree) Root() Hash {
	return subtreeHash(t.pairs(), 0)
}

// pair is a key with its value hash.
type pair struct {
	key       Key
	valueHash Hash
}

// pairs returns the map's keys with their value hashes, sorted by key.
func (t *Tree) pairs() []pair {
	ps := make([]pair, 0, len(t.values))
	for k, v := range t.values {
		ps = append(ps, pair{k, v.Hash()})
	}
	slices.SortFunc(ps, func(a, b pair) int { return bytes.Compare(a.key[:], b.key[:]) })
	return ps
}

// bit returns bit i of k, most significant first.
func bit(k Key, i int) int {
	return int(k[i/8]>>(7-i%8)) & 1
}

// split divides ps, sorted and sharing their first depth bits, into the
// pairs whose bit at depth is 0 and those whose bit is 1.
func split(ps []pair, depth int) (zero, one []pair) {
	i := sort.Search(len(ps), func(i int) bool { return bit(ps[i].key, depth) == 1 })
	return ps[:i], ps[i:]
}

// subtreeHash returns h of ps, sorted distinct keys sharing their first
// depth bits: 32 zero bytes if there are none, the leaf of a single pair,
// and otherwise the interior node over the two halves at the next bit.
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

// leafHash is SHA-256(0x02 || key || valueHash).
func leafHash(key Key, valueHash Hash) Hash {
	b := make([]byte, 0, 1+2*32)
	b = append(b, leafPrefix)
	b = append(b, key[:]...)
	return sha256.Sum256(append(b, valueHash[:]...))
}

// innerHash is SHA-256(0x03 || left || right).
func innerHash(left, right Hash) Hash {
	b := make([]byte, 0, 1+2*32)
	b = append(b, innerPrefix)
	b = append(b, left[:]...)
	return sha256.Sum256(append(b, right[:]...))
}

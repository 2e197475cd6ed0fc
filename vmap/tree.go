package vmap

import (
	"crypto/sha256"
)

// Node bytes of the prefix tree: a leaf is SHA-256(leafPrefix || key ||
// value_hash), an interior node SHA-256(innerPrefix || left || right).
const (
	leafPrefix  = 0x02
	innerPrefix = 0x03
)

// Tree is a map from keys to values, held in memory as a binary trie with
// the hash of every node cached, so that the root of its prefix tree is
// always at hand. The zero Tree is not usable; call NewTree.
//
// Set and Get take time proportional to the depth of the key's leaf (at
// most MaxDepth, about log2 of the number of keys for keys that are
// SHA-256 outputs), Root constant time, and Prove the depth of the search.
type Tree struct {
	root *node
	n    int
}

// node is a node of the trie. A leaf (entry non-nil) is the only key of its
// subtree and sits at the depth where that key first differs from every
// other key; an interior node has at least two keys below it, and a nil
// child is an empty subtree. hash is h of the subtree (see the package
// doc).
type node struct {
	hash  Hash
	child [2]*node
	entry *entry
}

// entry is a leaf's key and value.
type entry struct {
	key   Key
	value Value
}

// NewTree returns an empty map.
func NewTree() *Tree {
	return &Tree{}
}

// Set gives key the value v, inserting the key or replacing its value.
func (t *Tree) Set(key Key, v Value) {
	t.root = t.set(t.root, 0, key, v)
}

// set sets key to v in the subtree n at depth, whose keys share key's first
// depth bits, and returns the subtree's new root with its hashes updated.
func (t *Tree) set(n *node, depth int, key Key, v Value) *node {
	switch {
	case n == nil:
		t.n++
		return newLeaf(key, v)
	case n.entry == nil:
		b := bit(key, depth)
		n.child[b] = t.set(n.child[b], depth+1, key, v)
		n.hash = innerHash(hashOf(n.child[0]), hashOf(n.child[1]))
		return n
	case n.entry.key == key:
		n.entry.value = v
		n.hash = leafHash(key, v.Hash())
		return n
	}
	t.n++
	return fork(n, newLeaf(key, v), depth)
}

// newLeaf returns the leaf of key with value v.
func newLeaf(key Key, v Value) *node {
	return &node{hash: leafHash(key, v.Hash()), entry: &entry{key, v}}
}

// fork returns the subtree at depth holding the two leaves a and b, whose
// distinct keys share their first depth bits: an interior node where the
// keys part, under a chain of one-sided interior nodes for the bits they
// still share.
func fork(a, b *node, depth int) *node {
	d := depth
	for bit(a.entry.key, d) == bit(b.entry.key, d) {
		d++
	}
	n := &node{}
	n.child[bit(a.entry.key, d)], n.child[bit(b.entry.key, d)] = a, b
	n.hash = innerHash(hashOf(n.child[0]), hashOf(n.child[1]))
	for d--; d >= depth; d-- {
		up := &node{}
		up.child[bit(a.entry.key, d)] = n
		up.hash = innerHash(hashOf(up.child[0]), hashOf(up.child[1]))
		n = up
	}
	return n
}

// hashOf returns n's hash, 32 zero bytes for an empty subtree.
func hashOf(n *node) Hash {
	if n == nil {
		return Hash{}
	}
	return n.hash
}

// Get returns key's value and whether the map holds the key.
func (t *Tree) Get(key Key) (Value, bool) {
	n := t.root
	for depth := 0; n != nil && n.entry == nil; depth++ {
		n = n.child[bit(key, depth)]
	}
	if n == nil || n.entry.key != key {
		return Value{}, false
	}
	return n.entry.value, true
}

// Len returns how many keys the map holds.
func (t *Tree) Len() int {
	return t.n
}

// Root returns the root of the map's prefix tree: 32 zero bytes for an
// empty map.
func (t *Tree) Root() Hash {
	return hashOf(t.root)
}

// values yields every key of the map with its value, in key order.
func (t *Tree) values(yield func(Key, Value) bool) {
	var walk func(n *node) bool
	walk = func(n *node) bool {
		switch {
		case n == nil:
			return true
		case n.entry != nil:
			return yield(n.entry.key, n.entry.value)
		}
		return walk(n.child[0]) && walk(n.child[1])
	}
	walk(t.root)
}

// bit returns bit i of k, most significant first.
func bit(k Key, i int) int {
	return int(k[i/8]>>(7-i%8)) & 1
}

// leafHash is SHA-256(0x02 || key || valueHash).
func leafHash(key Key, valueHash Hash) Hash {
	var b [1 + 2*32]byte
	b[0] = leafPrefix
	copy(b[1:], key[:])
	copy(b[33:], valueHash[:])
	return sha256.Sum256(b[:])
}

// innerHash is SHA-256(0x03 || left || right).
func innerHash(left, right Hash) Hash {
	var b [1 + 2*32]byte
	b[0] = innerPrefix
	copy(b[1:], left[:])
	copy(b[33:], right[:])
	return sha256.Sum256(b[:])
}

package vmap

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"
	"sort"
	"sync"
)

// Node bytes of the prefix tree: a leaf is SHA-256(leafPrefix || key ||
// value_hash), an interior node SHA-256(innerPrefix || left || right).
const (
	leafPrefix  = 0x02
	innerPrefix = 0x03
)

// BucketBits is how many leading key bits pick a key's bucket: the tree's
// top BucketBits levels are held in memory as an array of hashes, and the
// keys below each of its 1<<BucketBits lowest nodes are one bucket of the
// Store.
const BucketBits = 16

// buckets is how many buckets there are.
const buckets = 1 << BucketBits

// DefaultKeep is how many committed versions NewTree keeps proofs for.
const DefaultKeep = 4

// Tree is a map from keys to values whose prefix tree's root and lookup
// proofs it computes, under its current contents and under each of the last
// few committed versions. The zero Tree is not usable; call NewTree or
// OpenTree.
//
// The keys sit in buckets, by their first BucketBits bits, kept in a Store;
// the hashes of the tree's top BucketBits levels, down to the buckets, are
// held in memory (the top), and for each kept version the nodes of the top
// that changed after it, as they were. Set changes a bucket in memory and
// marks it stale; Root and Prove recompute the stale buckets and their
// paths to the root only, and Commit or CommitAt saves the changed buckets
// under a new version.
//
// A Tree is safe for concurrent use: Set, Root, Prove, Commit and Forget
// exclude each other and the rest; Lookup, Get, Len, ProveAt, RootAt and
// the other methods may run together.
type Tree struct {
	mu      sync.RWMutex
	store   Store
	keep    int
	version uint64 // the last committed version, 0 before the first
	n       int
	cur     *top
	pending map[uint32][]Entry  // buckets changed since the last Commit
	stale   map[uint32]struct{} // pending buckets whose hashes cur lacks
	kept    []*snapshot         // the kept versions, oldest first
}

// top holds the nodes of the top BucketBits+1 levels of the prefix tree as
// a heap: node 1 is the root, nodes 2i and 2i+1 are node i's children, and
// node buckets+b is bucket b. A subtree with one key hashes as that key's
// leaf at any depth.
type top [2 * buckets]node

// node is a node of the top: its hash, and how many keys its subtree holds,
// capped at 2.
type node struct {
	hash  Hash
	state uint8
}

// TopBytes is the memory the tree's top levels take; each kept version
// adds the nodes that changed after it.
const TopBytes = 2 * buckets * (32 + 1)

// snapshot is a committed version: its number of keys, and undo, the nodes
// of the top that changed after it (in the next version, or since the last
// Commit for the last version) as they were in it; nil for an empty
// version, whose nodes are all empty.
type snapshot struct {
	version uint64
	n       int
	undo    map[uint32]node
}

// NewTree returns an empty map kept in a MemStore, keeping proofs for the
// last DefaultKeep committed versions.
func NewTree() *Tree {
	t, err := OpenTree(&MemStore{}, 0, DefaultKeep)
	if err != nil {
		panic(err) // an empty tree loads nothing
	}
	return t
}

// OpenTree returns the map that store holds as of version, 0 for an empty
// map, keeping proofs for the last keep (at least 1) committed versions.
// It loads every bucket of a non-zero version once to compute the top; the
// tree then keeps that version only, and commits versions above it (Commit
// the next, version+1), so store must hold nothing saved above version.
func OpenTree(store Store, version uint64, keep int) (*Tree, error) {
	t := &Tree{
		store:   store,
		keep:    max(keep, 1),
		version: version,
		cur:     new(top),
		pending: map[uint32][]Entry{},
		stale:   map[uint32]struct{}{},
	}
	if version > 0 {
		for b := range uint32(buckets) {
			e, err := store.Load(b, version)
			if err != nil {
				return nil, fmt.Errorf("vmap: opening version %d: %w", version, err)
			}
			t.n += len(e)
			t.cur[buckets+b] = bucketNode(e)
		}
		for i := uint32(buckets - 1); i >= 1; i-- {
			t.cur[i] = t.cur.parent(i)
		}
	}
	t.kept = []*snapshot{t.snapshot()}
	return t, nil
}

// bucketOf returns the bucket of key.
func bucketOf(key Key) uint32 {
	return uint32(key[0])<<8 | uint32(key[1])
}

// bucket returns the current entries of bucket b, which the caller does not
// change.
func (t *Tree) bucket(b uint32) ([]Entry, error) {
	if e, ok := t.pending[b]; ok {
		return e, nil
	}
	e, err := t.store.Load(b, t.version)
	if err != nil {
		return nil, fmt.Errorf("vmap: loading bucket %d: %w", b, err)
	}
	return e, nil
}

// Set gives key the value v, inserting the key or replacing its value. It
// fails, leaving the map as it was, if the Store cannot load the key's
// bucket.
func (t *Tree) Set(key Key, v Value) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := bucketOf(key)
	e, owned := t.pending[b]
	if !owned {
		loaded, err := t.bucket(b)
		if err != nil {
			return err
		}
		e = make([]Entry, len(loaded), len(loaded)+1)
		copy(e, loaded) // a loaded bucket is not ours to change
	}
	i, found := slices.BinarySearchFunc(e, key, compareEntry)
	if found {
		e[i].Value = v
	} else {
		e = slices.Insert(e, i, Entry{key, v})
		t.n++
	}
	t.pending[b] = e
	t.stale[b] = struct{}{}
	return nil
}

// compareEntry orders an entry against a key.
func compareEntry(e Entry, key Key) int {
	return bytes.Compare(e.Key[:], key[:])
}

// Lookup returns key's value and whether the map holds the key, or an error
// if the Store cannot load the key's bucket.
func (t *Tree) Lookup(key Key) (Value, bool, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e, err := t.bucket(bucketOf(key))
	if err != nil {
		return Value{}, false, err
	}
	i, found := slices.BinarySearchFunc(e, key, compareEntry)
	if !found {
		return Value{}, false, nil
	}
	return e[i].Value, true, nil
}

// Get returns key's value and whether the map holds the key. It is Lookup
// for a Tree whose Store never fails, such as a MemStore: it panics if the
// Store fails.
func (t *Tree) Get(key Key) (Value, bool) {
	v, ok, err := t.Lookup(key)
	if err != nil {
		panic(err)
	}
	return v, ok
}

// Len returns how many keys the map holds.
func (t *Tree) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.n
}

// Root returns the root of the map's prefix tree, 32 zero bytes for an
// empty map. It recomputes the buckets set since the last Root and their
// paths, each node once.
func (t *Tree) Root() Hash {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refresh()
	return t.cur[1].hash
}

// refresh recomputes the stale buckets of cur and their ancestors, level by
// level, each node once.
func (t *Tree) refresh() {
	if len(t.stale) == 0 {
		return
	}
	nodes := make([]uint32, 0, len(t.stale))
	for b := range t.stale {
		t.put(buckets+b, bucketNode(t.pending[b]))
		nodes = append(nodes, buckets+b)
	}
	clear(t.stale)
	slices.Sort(nodes)
	for len(nodes) > 0 && nodes[0] > 1 {
		up := nodes[:0]
		for _, i := range nodes {
			if p := i / 2; len(up) == 0 || up[len(up)-1] != p {
				up = append(up, p)
			}
		}
		for _, i := range up {
			t.put(i, t.cur.parent(i))
		}
		nodes = up
	}
}

// put sets node i of the top to nd, first keeping the node as it was in
// the last committed version if it had not changed since (unless that
// version is empty).
func (t *Tree) put(i uint32, nd node) {
	if undo := t.kept[len(t.kept)-1].undo; undo != nil {
		if _, ok := undo[i]; !ok {
			undo[i] = t.cur[i]
		}
	}
	t.cur[i] = nd
}

// bucketNode returns the node of a bucket with entries e.
func bucketNode(e []Entry) node {
	return node{entriesHash(e, BucketBits), uint8(min(len(e), 2))}
}

// parent returns node i computed from its children: 32 zero bytes if both
// are empty, the hash of the one key's leaf if they hold one key, and an
// interior node otherwise.
func (tp *top) parent(i uint32) node {
	l, r := tp[2*i], tp[2*i+1]
	switch state := min(l.state+r.state, 2); {
	case state == 0:
		return node{}
	case state == 1 && l.state == 1:
		return l
	case state == 1:
		return r
	}
	return node{innerHash(l.hash, r.hash), 2}
}

// entriesHash returns h of e, sorted entries with distinct keys sharing
// their first depth bits.
func entriesHash(e []Entry, depth int) Hash {
	switch len(e) {
	case 0:
		return Hash{}
	case 1:
		return leafHash(e[0].Key, e[0].Value.Hash())
	}
	zero, one := splitEntries(e, depth)
	return innerHash(entriesHash(zero, depth+1), entriesHash(one, depth+1))
}

// splitEntries divides e, sorted and sharing their first depth bits, into
// the entries whose bit at depth is 0 and those whose bit is 1.
func splitEntries(e []Entry, depth int) (zero, one []Entry) {
	i := sort.Search(len(e), func(i int) bool { return bit(e[i].Key, depth) == 1 })
	return e[:i], e[i:]
}

// values yields every key of the map with its value, in key order, while
// the map does not change. It panics if the Store fails.
func (t *Tree) values(yield func(Key, Value) bool) {
	for b := range uint32(buckets) {
		e, err := t.bucket(b)
		if err != nil {
			panic(err)
		}
		for _, x := range e {
			if !yield(x.Key, x.Value) {
				return
			}
		}
	}
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

package vmap

import (
	"bytes"
	"errors"
	"fmt"
)

// Result says how the search for a key ended.
type Result uint8

// The three ways a lookup ends.
const (
	// Inclusion: the search ended at the key's own leaf; the key is present
	// and the proof carries its value.
	Inclusion Result = 1
	// OtherLeaf: the search ended at the leaf of another key sharing the
	// key's first Depth bits; the key is absent.
	OtherLeaf Result = 2
	// Empty: the search ended at an empty subtree; the key is absent.
	Empty Result = 3
)

// String returns the result's name: "inclusion", "other-leaf" or "empty".
func (r Result) String() string {
	switch r {
	case Inclusion:
		return "inclusion"
	case OtherLeaf:
		return "other-leaf"
	case Empty:
		return "empty"
	}
	return fmt.Sprintf("Result(%d)", uint8(r))
}

// MaxDepth is the deepest a search can end: two distinct keys part at bit
// 255 at the latest, and their leaves then sit at depth 256.
const MaxDepth = 256

// Proof is a lookup proof for one key under one root: the depth at which
// the search along the key's bits ended, the sibling hashes on the way down,
// and how it ended. The key itself is not part of the proof: the verifier
// computes it from its own query.
type Proof struct {
	// Result says how the search ended.
	Result Result
	// Depth is how many key bits the search consumed; it equals
	// len(Siblings).
	Depth int
	// Siblings are the hashes of the subtrees on the other side of each bit,
	// root downward: Siblings[i] is the subtree at depth i+1 whose bit i is
	// not the key's. An empty subtree is 32 zero bytes.
	Siblings []Hash
	// Value is the key's 80-byte value encoding (Inclusion only).
	Value []byte
	// OtherKey and OtherValueHash are the key and value hash of the one key
	// in the subtree where the search ended (OtherLeaf only).
	OtherKey       *Key
	OtherValueHash *Hash
}

// Prove returns the lookup proof for key under t's current root (Root). It
// is for a Tree whose Store never fails, such as a MemStore: it panics if
// the Store fails. ProveAt proves under a committed version and returns
// the Store's errors.
func (t *Tree) Prove(key Key) *Proof {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refresh()
	p, err := prove(func(i uint32) node { return t.cur[i] }, key, t.bucket)
	if err != nil {
		panic(err)
	}
	return p
}

// prove returns the lookup proof for key under the root of a top whose
// nodes nodeAt returns, loading buckets with load. It walks the key's path
// down the top while the subtree holds two keys or more, taking the hash of
// the other child at each level, then on into the bucket where the search
// goes on or ends.
func prove(nodeAt func(uint32) node, key Key, load func(uint32) ([]Entry, error)) (*Proof, error) {
	p := &Proof{Siblings: []Hash{}}
	i := uint32(1)
	for ; p.Depth < BucketBits && nodeAt(i).state == 2; p.Depth++ {
		c := 2*i + uint32(bit(key, p.Depth))
		p.Siblings = append(p.Siblings, nodeAt(c^1).hash)
		i = c
	}
	state := nodeAt(i).state
	if state == 0 {
		p.Result = Empty
		return p, nil
	}
	for i < buckets { // a subtree of one key: find its bucket
		if i *= 2; nodeAt(i).state == 0 {
			i++
		}
	}
	e, err := load(i - buckets)
	if err != nil {
		return nil, err
	}
	if state == 1 && len(e) != 1 || state == 2 && len(e) < 2 {
		return nil, fmt.Errorf("vmap: bucket %d holds %d keys, not as its hash says", i-buckets, len(e))
	}
	proveIn(p, e, key)
	return p, nil
}

// proveIn ends p, the proof for key down to depth p.Depth, within e, the
// sorted entries of the subtree there.
func proveIn(p *Proof, e []Entry, key Key) {
	for len(e) > 1 {
		zero, one := splitEntries(e, p.Depth)
		if bit(key, p.Depth) == 0 {
			p.Siblings = append(p.Siblings, entriesHash(one, p.Depth+1))
			e = zero
		} else {
			p.Siblings = append(p.Siblings, entriesHash(zero, p.Depth+1))
			e = one
		}
		p.Depth++
	}
	switch {
	case len(e) == 0:
		p.Result = Empty
	case e[0].Key == key:
		p.Result = Inclusion
		p.Value = e[0].Value.Marshal()
	default:
		p.Result = OtherLeaf
		other, vh := e[0].Key, e[0].Value.Hash()
		p.OtherKey, p.OtherValueHash = &other, &vh
	}
}

// ErrBadProof is returned (wrapped, with the reason) by Verify for a proof
// that does not prove anything about the key under the root.
var ErrBadProof = errors.New("vmap: lookup proof refused")

// Verify checks p, a lookup proof for key, against root. It returns the
// key's value and true if p proves the key present, the zero Value and
// false if p proves it absent, and an error wrapping ErrBadProof otherwise.
//
// It recomputes the root bottom-up from the node where the search ended
// (the key's leaf, the other key's leaf, or 32 zero bytes) along the key's
// bits, and compares it with root. It also refuses a depth that is not the
// number of siblings, a value that is not 80 bytes, the fields of another
// result, and an other key equal to key or not sharing its first Depth bits.
func Verify(root Hash, key Key, p *Proof) (Value, bool, error) {
	node, v, err := endNode(key, p)
	if err != nil {
		return Value{}, false, err
	}
	for i := p.Depth - 1; i >= 0; i-- {
		if bit(key, i) == 0 {
			node = innerHash(node, p.Siblings[i])
		} else {
			node = innerHash(p.Siblings[i], node)
		}
	}
	if node != root {
		return Value{}, false, fmt.Errorf("%w: %s at depth %d recomputes root %x, not %x", ErrBadProof, p.Result, p.Depth, node[:], root[:])
	}
	return v, p.Result == Inclusion, nil
}

// endNode checks p's shape and returns the hash of the node where its search
// ended, and the key's value for an inclusion proof.
func endNode(key Key, p *Proof) (Hash, Value, error) {
	if err := p.checkShape(); err != nil {
		return Hash{}, Value{}, fmt.Errorf("%w: %w", ErrBadProof, err)
	}
	switch p.Result {
	case Inclusion:
		v, err := ParseValue(p.Value)
		if err != nil {
			return Hash{}, Value{}, fmt.Errorf("%w: %w", ErrBadProof, err)
		}
		return leafHash(key, valueHash(p.Value)), v, nil
	case OtherLeaf:
		if err := checkOtherKey(key, *p.OtherKey, p.Depth); err != nil {
			return Hash{}, Value{}, err
		}
		return leafHash(*p.OtherKey, *p.OtherValueHash), Value{}, nil
	}
	return Hash{}, Value{}, nil
}

// checkShape checks that p is a proof of some result: a depth between 0 and
// MaxDepth equal to the number of siblings, and exactly the fields of its
// result (an 80-byte value for Inclusion, an other key and value hash for
// OtherLeaf, neither for Empty).
func (p *Proof) checkShape() error {
	if p == nil {
		return errors.New("no proof")
	}
	if p.Depth < 0 || p.Depth > MaxDepth || p.Depth != len(p.Siblings) {
		return fmt.Errorf("depth %d with %d siblings", p.Depth, len(p.Siblings))
	}
	hasValue, hasOther := p.Value != nil, p.OtherKey != nil || p.OtherValueHash != nil
	switch p.Result {
	case Inclusion:
		if hasOther {
			return errors.New("an inclusion proof with an other key")
		}
		if len(p.Value) != ValueSize {
			return fmt.Errorf("%w: %d bytes, want %d", ErrMalformedValue, len(p.Value), ValueSize)
		}
	case OtherLeaf:
		if hasValue || p.OtherKey == nil || p.OtherValueHash == nil {
			return errors.New("an other-leaf proof needs an other key and value hash and no value")
		}
	case Empty:
		if hasValue || hasOther {
			return errors.New("an empty proof with a value or an other key")
		}
	default:
		return fmt.Errorf("unknown result %d", uint8(p.Result))
	}
	return nil
}

// checkOtherKey checks that other differs from key and shares its first
// depth bits.
func checkOtherKey(key, other Key, depth int) error {
	if other == key {
		return fmt.Errorf("%w: the other key is the key looked up", ErrBadProof)
	}
	if !bytes.Equal(key[:depth/8], other[:depth/8]) {
		return fmt.Errorf("%w: the other key does not share the key's first %d bits", ErrBadProof, depth)
	}
	for i := depth / 8 * 8; i < depth; i++ {
		if bit(key, i) != bit(other, i) {
			return fmt.Errorf("%w: the other key does not share the key's first %d bits", ErrBadProof, depth)
		}
	}
	return nil
}

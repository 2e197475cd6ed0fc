package merkle

import (
	"encoding/binary"
)

// Key layout. Every key the package writes starts with one of two bytes,
// which the log and the other users of the database never use as their first
// byte:
//
//	't'  tree keys
//	'c'  checkpoint keys
//
// followed by the tree's prefix (as given to NewTree) written as a uvarint
// length and the prefix bytes, so that the key spaces of two trees with
// different prefixes never overlap, whatever the prefixes are. Then:
//
//	't' | uvarint len(p) | p | 'n' | level (1 byte) | index (8 bytes, big-endian)
//	    the hash of the full subtree node (level, index): level 0 holds the
//	    leaf hashes, level k the root of leaves [index<<k, (index+1)<<k)
//	't' | uvarint len(p) | p | 's'
//	    the tree state: size (8 bytes, big-endian), root hash (32 bytes),
//	    then the hashes of the compact range [0, size), left to right
//	'c' | uvarint len(p) | p | 'r' | round (8 bytes, big-endian)
//	    the signed checkpoint note closed for that round
//	'c' | uvarint len(p) | p | 'l'
//	    the latest closed round and the tree size its checkpoint covers
//	    (8 bytes each, big-endian)
//
// For example, with the prefix "L" the leaf hash of leaf 5 is stored under
// the key 74 01 4c 6e 00 0000000000000005, and the state under 74 01 4c 73.
const (
	treeSpace       = 't'
	checkpointSpace = 'c'

	nodeKind       = 'n'
	stateKind      = 's'
	roundKind      = 'r'
	latestKind     = 'l'
	nodeKeySuffix  = 1 + 1 + 8 // kind, level, index
	roundKeySuffix = 1 + 8     // kind, round
)

// keys builds the keys of one tree; it is immutable after newKeys.
type keys struct {
	tree       []byte // treeSpace | uvarint len | prefix
	checkpoint []byte // checkpointSpace | uvarint len | prefix
}

func newKeys(prefix []byte) keys {
	space := func(b byte) []byte {
		k := []byte{b}
		k = binary.AppendUvarint(k, uint64(len(prefix)))
		return append(k, prefix...)
	}
	return keys{tree: space(treeSpace), checkpoint: space(checkpointSpace)}
}

// node returns the key of the full subtree node (level, index).
func (k keys) node(level uint, index uint64) []byte {
	b := make([]byte, 0, len(k.tree)+nodeKeySuffix)
	b = append(b, k.tree...)
	b = append(b, nodeKind, byte(level))
	return binary.BigEndian.AppendUint64(b, index)
}

// state returns the key of the tree state.
func (k keys) state() []byte {
	return append(append(make([]byte, 0, len(k.tree)+1), k.tree...), stateKind)
}

// round returns the key of the checkpoint closed for round r.
func (k keys) round(r uint64) []byte {
	b := make([]byte, 0, len(k.checkpoint)+roundKeySuffix)
	b = append(b, k.checkpoint...)
	b = append(b, roundKind)
	return binary.BigEndian.AppendUint64(b, r)
}

// latest returns the key of the latest closed round.
func (k keys) latest() []byte {
	return append(append(make([]byte, 0, len(k.checkpoint)+1), k.checkpoint...), latestKind)
}

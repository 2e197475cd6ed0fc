package merkle

import (
	"encoding/binary"

	"github.com/intermesh/intermesh/internal/keyspace"
)

// Key layout: see "Keys" in the package comment (doc.go); the first bytes
// are listed with every other prefix of the store in internal/keyspace.
const (
	treeSpace       = keyspace.MerkleTree
	checkpointSpace = keyspace.MerkleCheckpoint

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

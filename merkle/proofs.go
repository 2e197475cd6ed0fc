package merkle

import (
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// Root returns the root hash of the tree when it had size leaves, for any
// size up to the current one. It reads the O(log size) nodes of the compact
// range [0, size).
func (t *Tree) Root(size uint64) ([]byte, error) {
	var root []byte
	err := t.db.View(func(txn *badger.Txn) error {
		var err error
		root, err = t.RootTxn(txn, size)
		return err
	})
	return root, err
}

// RootTxn is Root as seen by txn.
func (t *Tree) RootTxn(txn *badger.Txn, size uint64) ([]byte, error) {
	st, err := t.checkSize(txn, size)
	if err != nil {
		return nil, err
	}
	switch size {
	case st.size:
		return st.root, nil
	case 0:
		return hasher.EmptyRoot(), nil
	}
	hashes, err := t.readNodes(txn, compact.RangeNodes(0, size, nil))
	if err != nil {
		return nil, err
	}
	rng, err := t.factory.NewRange(0, size, hashes)
	if err != nil {
		return nil, fmt.Errorf("merkle: root at size %d: %w", size, err)
	}
	return rng.GetRootHash(nil)
}

// InclusionProof returns the RFC 6962 inclusion proof of leaf index in the
// tree of the given size (index < size <= Size()), built from O(log size)
// stored nodes. Verify it with proof.VerifyInclusion.
func (t *Tree) InclusionProof(index, size uint64) ([][]byte, error) {
	var p [][]byte
	err := t.db.View(func(txn *badger.Txn) error {
		var err error
		p, err = t.InclusionProofTxn(txn, index, size)
		return err
	})
	return p, err
}

// InclusionProofTxn is InclusionProof as seen by txn.
func (t *Tree) InclusionProofTxn(txn *badger.Txn, index, size uint64) ([][]byte, error) {
	if index >= size {
		return nil, fmt.Errorf("merkle: inclusion proof of leaf %d in a tree of size %d: %w", index, size, ErrBeyondTree)
	}
	if _, err := t.checkSize(txn, size); err != nil {
		return nil, err
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("merkle: inclusion proof of leaf %d at size %d: %w", index, size, err)
	}
	return t.buildProof(txn, nodes)
}

// ConsistencyProof returns the RFC 6962 consistency proof between the tree
// sizes size1 <= size2 <= Size(), built from O(log size2) stored nodes.
// Verify it with proof.VerifyConsistency.
func (t *Tree) ConsistencyProof(size1, size2 uint64) ([][]byte, error) {
	var p [][]byte
	err := t.db.View(func(txn *badger.Txn) error {
		var err error
		p, err = t.ConsistencyProofTxn(txn, size1, size2)
		return err
	})
	return p, err
}

// ConsistencyProofTxn is ConsistencyProof as seen by txn.
func (t *Tree) ConsistencyProofTxn(txn *badger.Txn, size1, size2 uint64) ([][]byte, error) {
	if size1 > size2 {
		return nil, fmt.Errorf("merkle: consistency proof from size %d to smaller size %d: %w", size1, size2, ErrBeyondTree)
	}
	if _, err := t.checkSize(txn, size2); err != nil {
		return nil, err
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("merkle: consistency proof from %d to %d: %w", size1, size2, err)
	}
	return t.buildProof(txn, nodes)
}

// buildProof reads the nodes of a proof and folds the ephemeral node.
func (t *Tree) buildProof(txn *badger.Txn, nodes proof.Nodes) ([][]byte, error) {
	hashes, err := t.readNodes(txn, nodes.IDs)
	if err != nil {
		return nil, err
	}
	p, err := nodes.Rehash(hashes, hasher.HashChildren)
	if err != nil {
		return nil, fmt.Errorf("merkle: rehash proof: %w", err)
	}
	return p, nil
}

// checkSize returns the tree state in txn, or ErrBeyondTree if size is
// larger than the tree.
func (t *Tree) checkSize(txn *badger.Txn, size uint64) (state, error) {
	st, err := t.readState(txn)
	if err != nil {
		return state{}, err
	}
	if size > st.size {
		return state{}, fmt.Errorf("merkle: size %d of a tree of size %d: %w", size, st.size, ErrBeyondTree)
	}
	return st, nil
}

// readNodes reads the stored hashes of ids, in order.
func (t *Tree) readNodes(txn *badger.Txn, ids []compact.NodeID) ([][]byte, error) {
	hashes := make([][]byte, len(ids))
	for i, id := range ids {
		item, err := txn.Get(t.keys.node(id.Level, id.Index))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil, fmt.Errorf("merkle: node (level %d, index %d) missing: %w", id.Level, id.Index, ErrCorrupt)
		}
		if err != nil {
			return nil, fmt.Errorf("merkle: read node (level %d, index %d): %w", id.Level, id.Index, err)
		}
		if hashes[i], err = item.ValueCopy(nil); err != nil {
			return nil, fmt.Errorf("merkle: read node (level %d, index %d): %w", id.Level, id.Index, err)
		}
		if len(hashes[i]) != hashSize {
			return nil, fmt.Errorf("merkle: node (level %d, index %d) is %d bytes: %w", id.Level, id.Index, len(hashes[i]), ErrCorrupt)
		}
	}
	return hashes, nil
}

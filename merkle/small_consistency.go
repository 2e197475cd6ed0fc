package merkle

import (
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// LeafRoot returns the RFC 6962 root of the tree over the first size of
// leafHashes (size <= len(leafHashes)), a tree held in memory; size 0 gives
// the root of the empty tree. It folds a compact range, like Tree.
func LeafRoot(leafHashes [][]byte, size uint64) ([]byte, error) {
	if size > uint64(len(leafHashes)) {
		return nil, fmt.Errorf("merkle: root at size %d of %d leaves: %w", size, len(leafHashes), ErrBeyondTree)
	}
	if size == 0 {
		return hasher.EmptyRoot(), nil
	}
	r, err := leafRange(leafHashes, 0, size)
	if err != nil {
		return nil, fmt.Errorf("merkle: root at size %d: %w", size, err)
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		return nil, fmt.Errorf("merkle: root at size %d: %w", size, err)
	}
	return root, nil
}

// LeafConsistencyProof returns the RFC 6962 consistency proof between the
// sizes size1 <= size2 <= len(leafHashes) of the tree over leafHashes, a
// tree held in memory (a member's log fetched to prove that it forked).
// Verify it with proof.VerifyConsistency against LeafRoot(leafHashes,
// size1) and LeafRoot(leafHashes, size2). As for LeafInclusionProof, each
// proof node is the root of the leaves it covers, computed with a compact
// range, and the node layout comes from transparency-dev/merkle's proof
// package. The proof nodes cover disjoint ranges, so building it hashes
// O(size2) nodes.
func LeafConsistencyProof(leafHashes [][]byte, size1, size2 uint64) ([][]byte, error) {
	if size2 > uint64(len(leafHashes)) {
		return nil, fmt.Errorf("merkle: consistency proof to size %d of %d leaves: %w", size2, len(leafHashes), ErrBeyondTree)
	}
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("merkle: consistency proof from %d to %d: %w", size1, size2, err)
	}
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		begin, end := id.Coverage()
		r, err := leafRange(leafHashes, begin, end)
		if err != nil {
			return nil, fmt.Errorf("merkle: consistency proof from %d to %d: %w", size1, size2, err)
		}
		// A proof node covers a perfect subtree: its range is one hash.
		h := r.Hashes()
		if len(h) != 1 {
			return nil, fmt.Errorf("merkle: consistency proof from %d to %d: node %+v is not a perfect subtree", size1, size2, id)
		}
		hashes[i] = h[0]
	}
	p, err := nodes.Rehash(hashes, hasher.HashChildren)
	if err != nil {
		return nil, fmt.Errorf("merkle: consistency proof from %d to %d: %w", size1, size2, err)
	}
	return p, nil
}

// leafRange is the compact range [begin, end) of leafHashes.
func leafRange(leafHashes [][]byte, begin, end uint64) (*compact.Range, error) {
	factory := &compact.RangeFactory{Hash: hasher.HashChildren}
	r := factory.NewEmptyRange(begin)
	for _, h := range leafHashes[begin:end] {
		if len(h) != hashSize {
			return nil, fmt.Errorf("leaf hash of %d bytes, want %d", len(h), hashSize)
		}
		if err := r.Append(h, nil); err != nil {
			return nil, err
		}
	}
	return r, nil
}

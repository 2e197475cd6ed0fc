package merkle

import (
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// LeafInclusionProof returns the RFC 6962 inclusion proof of leaf index in
// the tree over leafHashes, a tree small enough to hold in memory (the
// master hash over a federation's checkpoints). Each proof node is the root
// of the leaves it covers, computed with a compact range; the proof's node
// layout comes from transparency-dev/merkle's proof package, like Tree's.
func LeafInclusionProof(leafHashes [][]byte, index uint64) ([][]byte, error) {
	size := uint64(len(leafHashes))
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("merkle: inclusion proof of leaf %d of %d: %w", index, size, err)
	}
	factory := &compact.RangeFactory{Hash: hasher.HashChildren}
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		begin, end := id.Coverage()
		r := factory.NewEmptyRange(begin)
		for _, h := range leafHashes[begin:end] {
			if err := r.Append(h, nil); err != nil {
				return nil, fmt.Errorf("merkle: inclusion proof: %w", err)
			}
		}
		// A proof node covers a perfect subtree: its range is one hash.
		if h := r.Hashes(); len(h) == 1 {
			hashes[i] = h[0]
		} else {
			return nil, fmt.Errorf("merkle: inclusion proof: node %+v is not a perfect subtree", id)
		}
	}
	return nodes.Rehash(hashes, hasher.HashChildren)
}

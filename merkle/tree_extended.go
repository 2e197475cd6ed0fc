package merkle

import (
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
)

// ExtendedRoots returns, without writing anything, the roots at each of
// sizes of the tree made of the stored tree's first `first` leaves (first
// <= Size()) followed by leafHashes: a dry run of appending leaves that
// have not been checked yet (records relayed by a peer other than their
// origin) against the roots their origin signed. Every size must be in
// (first, first+len(leafHashes)]; the roots come in the order of sizes.
// It reads the O(log first) nodes of the compact range [0, first).
func (t *Tree) ExtendedRoots(first uint64, leafHashes [][]byte, sizes []uint64) ([][]byte, error) {
	end := first + uint64(len(leafHashes))
	for _, s := range sizes {
		if s <= first || s > end {
			return nil, fmt.Errorf("merkle: root at size %d of leaves %d to %d: %w", s, first, end, ErrBeyondTree)
		}
	}
	var rng *compact.Range
	err := t.db.View(func(txn *badger.Txn) error {
		st, err := t.checkSize(txn, first)
		if err != nil {
			return err
		}
		hashes := st.hashes
		if first != st.size {
			if hashes, err = t.readNodes(txn, compact.RangeNodes(0, first, nil)); err != nil {
				return err
			}
		}
		rng, err = t.factory.NewRange(0, first, hashes)
		if err != nil {
			return fmt.Errorf("merkle: compact range at size %d: %w: %w", first, ErrCorrupt, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	order := slices.Clone(sizes)
	slices.Sort(order)
	at := make(map[uint64][]byte, len(sizes))
	next := 0
	for i, h := range leafHashes {
		if len(h) != hashSize {
			return nil, fmt.Errorf("merkle: leaf hash %d is %d bytes, want %d", first+uint64(i), len(h), hashSize)
		}
		if err := rng.Append(h, nil); err != nil {
			return nil, fmt.Errorf("merkle: append leaf %d: %w", first+uint64(i), err)
		}
		for next < len(order) && order[next] == rng.End() {
			root, err := rng.GetRootHash(nil)
			if err != nil {
				return nil, fmt.Errorf("merkle: root at size %d: %w", rng.End(), err)
			}
			at[rng.End()] = root
			next++
		}
		if next == len(order) {
			break
		}
	}
	roots := make([][]byte, len(sizes))
	for i, s := range sizes {
		roots[i] = at[s]
	}
	return roots, nil
}

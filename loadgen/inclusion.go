package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/intermesh/intermesh/audit"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
)

// copyLogLevels copies the first size entries of a portal's log with
// Transfer and returns the hashes of every complete subtree, level by level
// (level 0: the leaf hashes), from which inclusion proofs are built.
func copyLogLevels(ctx context.Context, c *client.Client, size uint64) ([][][]byte, error) {
	errEnough := errors.New("enough")
	leaves := make([][]byte, 0, size)
	err := c.TransferAll(ctx, 0, 0, func(item portal.DataItem) error {
		if uint64(len(leaves)) >= size {
			return errEnough
		}
		if item.Index == nil {
			return fmt.Errorf("an entry without an index arrived where %d was expected", len(leaves))
		}
		if *item.Index != uint64(len(leaves)) {
			return fmt.Errorf("entry %d arrived where %d was expected", *item.Index, len(leaves))
		}
		leaves = append(leaves, rfc6962.DefaultHasher.HashLeaf(item.Leaf))
		return nil
	})
	levels := [][][]byte{leaves}
	if err != nil && !errors.Is(err, errEnough) {
		return levels, err
	}
	if uint64(len(leaves)) < size {
		return levels, fmt.Errorf("the log has %d entries", len(leaves))
	}
	for prev := leaves; len(prev) > 1; {
		next := make([][]byte, len(prev)/2)
		for j := range next {
			next[j] = rfc6962.DefaultHasher.HashChildren(prev[2*j], prev[2*j+1])
		}
		levels = append(levels, next)
		prev = next
	}
	return levels, nil
}

// verifyWriteInclusion checks that the leaf a portal served for a write is
// the leaf at its index, builds the inclusion proof from the copied tree and
// verifies it against the certified root.
func verifyWriteInclusion(levels [][][]byte, f foundWrite, size uint64, root []byte) error {
	if f.index >= size {
		return fmt.Errorf("not under the certified size %d", size)
	}
	leafHash := rfc6962.DefaultHasher.HashLeaf(f.leaf)
	if !bytes.Equal(leafHash, levels[0][f.index]) {
		return errors.New("the leaf Get serves is not the leaf Transfer serves at its index")
	}
	nodes, err := proof.Inclusion(f.index, size)
	if err != nil {
		return err
	}
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		if int(id.Level) >= len(levels) || id.Index >= uint64(len(levels[id.Level])) {
			return fmt.Errorf("proof node %d/%d is outside the copied tree", id.Level, id.Index)
		}
		hashes[i] = slices.Clone(levels[id.Level][id.Index])
	}
	p, err := nodes.Rehash(hashes, rfc6962.DefaultHasher.HashChildren)
	if err != nil {
		return err
	}
	if err := audit.VerifyInclusion(f.index, size, leafHash, p, root); err != nil {
		return fmt.Errorf("inclusion proof: %w", err)
	}
	return nil
}

package merkle

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
)

// TruncateTxn cuts the tree back to its first size leaves inside txn: the
// tree state becomes the one it had at size (its compact range is read
// from the stored full-subtree nodes, which a tree never rewrites). Nodes
// past size stay stored but are never read (every read is bounded by the
// state's size) and the next appends overwrite them. It is for a replica
// log cut back to repair it (log.Replica.Truncate), in the transaction
// that cuts the records. size must not exceed the tree's size.
func (t *Tree) TruncateTxn(txn *badger.Txn, size uint64) error {
	st, err := t.readState(txn)
	if err != nil {
		return err
	}
	if size > st.size {
		return fmt.Errorf("merkle: truncate a tree of size %d to %d: %w", st.size, size, ErrBeyondTree)
	}
	if size == st.size {
		return nil
	}
	if size == 0 {
		if err := txn.Delete(t.keys.state()); err != nil {
			return fmt.Errorf("merkle: truncate to 0: %w", err)
		}
		return nil
	}
	hashes, err := t.readNodes(txn, compact.RangeNodes(0, size, nil))
	if err != nil {
		return err
	}
	rng, err := t.factory.NewRange(0, size, hashes)
	if err != nil {
		return fmt.Errorf("merkle: compact range at %d: %w: %w", size, ErrCorrupt, err)
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return fmt.Errorf("merkle: root at %d: %w", size, err)
	}
	next := state{size: size, root: root, hashes: rng.Hashes()}
	if err := txn.Set(t.keys.state(), next.marshal()); err != nil {
		return fmt.Errorf("merkle: store tree state at size %d: %w", size, err)
	}
	return nil
}

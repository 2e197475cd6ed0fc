package log

import (
	"context"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Truncate cuts the replica back to its first size records: for a replica
// found not to be what its origin signed, before it is filled again from the
// origin. In one durable transaction it moves the head to size and runs
// reset, which must cut the replica's derived state to match (the
// replica's Merkle tree: merkle.Tree.TruncateTxn); then it deletes the
// records past the head (a crash before that leaves them past the head,
// where the next Open deletes them as never acknowledged). Truncate is
// serialized with Append. The replica's Indexers are not undone: state
// they derived from the records cut must be rebuilt by the caller (the
// portal's State.RebuildReplica). size must not exceed Size().
func (r *Replica) Truncate(ctx context.Context, size uint64, reset func(txn *badger.Txn) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	old := r.Size()
	if size > old {
		return fmt.Errorf("log: truncate the replica of %q holding %d records to %d: %w", r.origin, old, size, ErrGap)
	}
	if size == old {
		return nil
	}
	var last time.Time
	err := r.log.withDB(func() error {
		txn, err := r.log.newWriteTxn()
		if err != nil {
			return err
		}
		defer txn.Discard()
		if size > 0 {
			t, err := r.store.timeOf(txn, size-1)
			if err != nil {
				return fmt.Errorf("log: replica of %q: reading record %d: %w", r.origin, size-1, err)
			}
			last = t
		}
		if err := r.store.putHead(txn, head{size: size, last: last}); err != nil {
			return fmt.Errorf("log: replica of %q: writing head: %w", r.origin, classifyWriteError(err))
		}
		if reset != nil {
			if err := reset(txn); err != nil {
				return fmt.Errorf("log: replica of %q: resetting derived state to %d records: %w", r.origin, size, err)
			}
		}
		if err := r.log.commit(txn); err != nil {
			return fmt.Errorf("log: replica of %q: truncating to %d records: %w", r.origin, size, classifyWriteError(err))
		}
		r.size.Store(size)
		r.last = last
		wb := r.log.db.NewWriteBatch()
		defer wb.Cancel()
		for seq := size; seq < old; seq++ {
			if err := wb.Delete(r.store.keys.recordKey(seq)); err != nil {
				return fmt.Errorf("log: replica of %q: deleting record %d: %w", r.origin, seq, classifyWriteError(err))
			}
		}
		return wb.Flush()
	})
	return err
}

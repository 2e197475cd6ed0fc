package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/dgraph-io/badger/v4"
)

// Append adds records of the replica's origin, as the origin sequenced them,
// and returns how many it added. recs must be contiguous (each Seq one more
// than the previous), start at or below Size(), carry Origin equal to the
// replica's origin and times that never decrease (also from the last held
// record on). Records the replica already holds must be byte for byte the
// held ones (their leaf encodings are compared); the others are written,
// with the replica's indexers, and the head moved, in one durable Badger
// transaction (SyncWrites), so a replica never holds a gap and its indexed
// state never disagrees with its records. Append returns only once the
// records are durable. Calls on one Replica are serialized.
//
// Before anything is written Append refuses the whole batch with:
//   - ErrInvalidRecord (wrapped) for a record that does not fit the leaf
//     encoding, has another origin, breaks the contiguity or goes back in time;
//   - ErrGap (wrapped) if recs start past Size();
//   - a *ForkError (errors.Is(err, ErrFork)) naming the first held sequence
//     number whose offered record differs: equivocation evidence.
//
// A batch too big for one transaction is committed in several, in order;
// if one of them fails (an indexer's or Badger's error, ErrDiskFull,
// ErrClosed, ctx ended) the records of the earlier ones stay added and are
// counted in added. Conflicts with other writers are retried.
func (r *Replica) Append(ctx context.Context, recs []Record) (added int, err error) {
	if len(recs) == 0 {
		return 0, nil
	}
	if err := r.checkBatch(recs); err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	size := r.Size()
	first := recs[0].Seq
	if first > size {
		return 0, fmt.Errorf("%w: the replica of %q holds %d records, so records from %d leave %d missing (from %d)",
			ErrGap, r.origin, size, first, first-size, size)
	}
	held := int(min(uint64(len(recs)), size-first))
	if err := r.compareHeld(recs[:held]); err != nil {
		return 0, err
	}
	fresh := recs[held:]
	if len(fresh) == 0 {
		return 0, nil
	}
	if size > 0 && fresh[0].Time.Before(r.last) {
		return 0, fmt.Errorf("%w: replica record %d of %q has time %s, before the time %s of record %d",
			ErrInvalidRecord, fresh[0].Seq, r.origin, fresh[0].Time.UTC(), r.last, size-1)
	}
	return r.write(ctx, fresh)
}

// checkBatch checks what Append can check of recs without the store.
func (r *Replica) checkBatch(recs []Record) error {
	for i := range recs {
		rec := &recs[i]
		if err := rec.Validate(); err != nil {
			return fmt.Errorf("%w: replica record %d of %q: %w", ErrInvalidRecord, rec.Seq, r.origin, err)
		}
		if rec.Origin != r.origin {
			return fmt.Errorf("%w: record %d has origin %q, not the replica's %q", ErrInvalidRecord, rec.Seq, rec.Origin, r.origin)
		}
		if i == 0 {
			continue
		}
		prev := &recs[i-1]
		if prev.Seq == math.MaxUint64 || rec.Seq != prev.Seq+1 {
			return fmt.Errorf("%w: replica records are not contiguous: %d follows %d", ErrInvalidRecord, rec.Seq, prev.Seq)
		}
		if rec.Time.Before(prev.Time) {
			return fmt.Errorf("%w: replica record %d of %q has time %s, before the time %s of record %d",
				ErrInvalidRecord, rec.Seq, r.origin, rec.Time.UTC(), prev.Time.UTC(), prev.Seq)
		}
	}
	return nil
}

// compareHeld checks that recs, all held by the replica, are the held
// records byte for byte.
func (r *Replica) compareHeld(recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	return r.log.view(func(txn *badger.Txn) error {
		for i := range recs {
			offered := recs[i].MarshalLeaf()
			item, err := txn.Get(r.store.keys.recordKey(recs[i].Seq))
			if err != nil {
				return fmt.Errorf("log: reading replica record %d of %q: %w", recs[i].Seq, r.origin, err)
			}
			var same bool
			if err := item.Value(func(v []byte) error { same = bytes.Equal(v, offered); return nil }); err != nil {
				return fmt.Errorf("log: reading replica record %d of %q: %w", recs[i].Seq, r.origin, err)
			}
			if same {
				continue
			}
			heldRec, err := r.store.get(txn, recs[i].Seq)
			if err != nil {
				return err
			}
			return &ForkError{Origin: r.origin, Seq: recs[i].Seq, Held: heldRec, Offered: recs[i]}
		}
		return nil
	})
}

// write commits recs, which extend the replica, in as few transactions as
// Badger allows, and returns how many it committed.
func (r *Replica) write(ctx context.Context, recs []Record) (int, error) {
	added, limit, conflicts := 0, min(len(recs), r.log.maxBatch), 0
	for added < len(recs) {
		if err := ctx.Err(); err != nil {
			return added, err
		}
		chunk := recs[added : added+min(limit, len(recs)-added)]
		err := r.commit(chunk)
		switch {
		case err == nil:
			added += len(chunk)
		case errors.Is(err, badger.ErrTxnTooBig) && len(chunk) > 1:
			limit = len(chunk) / 2
		case errors.Is(err, badger.ErrTxnTooBig):
			return added, fmt.Errorf("log: replica record %d of %q is too large for one transaction: %w", chunk[0].Seq, r.origin, err)
		case errors.Is(err, badger.ErrConflict):
			if conflicts++; conflicts > maxConflictRetries {
				return added, fmt.Errorf("log: replica of %q kept conflicting with other writers: %w", r.origin, err)
			}
		default:
			return added, err
		}
	}
	return added, nil
}

// commit writes recs, the records that follow the replica's last one, with
// the indexers' state and the new head, in one transaction.
func (r *Replica) commit(recs []Record) error {
	wasEmpty := r.Size() == 0
	err := r.log.withDB(func() error {
		txn, err := r.log.newWriteTxn()
		if err != nil {
			return err
		}
		defer txn.Discard()
		committed := false
		defer func() { txnDone(r.opts.Indexers, r.opts.BatchIndexers, committed) }()
		batch := make([]Record, len(recs)) // the indexers' copies
		for i := range recs {
			batch[i] = recs[i]
			rec := &batch[i]
			for _, ix := range r.opts.Indexers {
				if err := ix.Index(txn, rec); err != nil {
					return fmt.Errorf("log: replica of %q: indexing record %d: %w", r.origin, rec.Seq, err)
				}
			}
			if err := r.store.put(txn, rec); err != nil {
				return fmt.Errorf("log: replica of %q: writing record %d: %w", r.origin, rec.Seq, classifyWriteError(err))
			}
		}
		for _, bi := range r.opts.BatchIndexers {
			if err := bi.IndexBatch(txn, batch); err != nil {
				return fmt.Errorf("log: replica of %q: batch indexer on records %d to %d: %w", r.origin, recs[0].Seq, recs[len(recs)-1].Seq, err)
			}
		}
		last := recs[len(recs)-1]
		if err := r.store.putHead(txn, head{size: last.Seq + 1, last: last.Time.UTC()}); err != nil {
			return fmt.Errorf("log: replica of %q: writing head: %w", r.origin, classifyWriteError(err))
		}
		if wasEmpty {
			if err := txn.Set(r.log.store.keys.replicaKey(r.origin), nil); err != nil {
				return fmt.Errorf("log: replica of %q: writing replica key: %w", r.origin, classifyWriteError(err))
			}
		}
		if err := r.log.commit(txn); err != nil {
			return fmt.Errorf("log: replica of %q: committing records %d to %d: %w", r.origin, recs[0].Seq, last.Seq, classifyWriteError(err))
		}
		committed = true
		r.last = last.Time.UTC()
		r.size.Store(last.Seq + 1)
		return nil
	})
	if err == nil && wasEmpty {
		r.log.markHeld(r.origin)
	}
	return err
}

package log

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// maxConflictRetries bounds how often a batch is retried after Badger reports
// a conflict with a transaction of another writer of the DB.
const maxConflictRetries = 8

// request is one Append call waiting for the sequencer.
type request struct {
	rec      Record        // in: the record; out: with Seq and Time set
	err      error         // out: why the record was not committed
	rejected bool          // an Indexer rejected the record (err says why)
	done     chan struct{} // closed when rec or err is final
}

func (r *request) finish(err error) {
	if err != nil && r.err == nil {
		r.err = err
	}
	close(r.done)
}

// sequencerState is owned by the sequencer goroutine.
type sequencerState struct {
	next uint64    // sequence number of the next record
	last time.Time // time of the last committed record
}

// Append adds rec to the log and returns it with Seq, Time and (if it was
// empty) Origin set, once it is durable: committed to Badger with a synced
// write. Many callers' records are committed together in one transaction
// (group commit), in the order the sequencer receives them.
//
// Append returns an error wrapping ErrInvalidRecord if rec does not fit the
// leaf encoding, the Indexer's error if an Indexer rejected it, the
// BatchIndexer's or Badger's error if its batch failed (ErrDiskFull if the
// disk is full), and ErrClosed if the log is or gets closed before the
// record was sequenced. If ctx ends while the record waits, Append returns
// ctx.Err(), but the record may still be committed: the caller then does not
// know its fate and can look for it in the log.
func (l *Log) Append(ctx context.Context, rec Record) (Record, error) {
	if rec.Origin == "" {
		rec.Origin = l.opts.Origin
	}
	if err := rec.Validate(); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	r := &request{rec: rec, done: make(chan struct{})}
	if err := l.enqueue(ctx, r); err != nil {
		return Record{}, err
	}
	select {
	case <-r.done:
		if r.err != nil {
			return Record{}, r.err
		}
		return r.rec, nil
	case <-ctx.Done():
		return Record{}, ctx.Err()
	}
}

// enqueue hands r to the sequencer.
func (l *Log) enqueue(ctx context.Context, r *request) error {
	l.sendMu.RLock()
	defer l.sendMu.RUnlock()
	if l.sendStop {
		return ErrClosed
	}
	select {
	case l.reqs <- r:
		return nil
	case <-l.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runSequencer collects the queued requests into batches of up to MaxBatch
// records and commits each batch, until Close. While one batch commits (and
// waits for the disk), the next one queues up, so the batch size adapts to
// the load.
func (l *Log) runSequencer() {
	defer close(l.seqDone)
	batch := make([]*request, 0, l.maxBatch)
	for {
		// Close wins over queued requests: they get ErrClosed from Close.
		select {
		case <-l.closing:
			return
		default:
		}
		select {
		case <-l.closing:
			return
		case r := <-l.reqs:
			batch = append(batch[:0], r)
		}
	fill:
		for len(batch) < l.maxBatch {
			select {
			case r := <-l.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		for pending := batch; len(pending) > 0; {
			n := l.commitPrefix(pending)
			pending = pending[n:]
		}
		clear(batch)
	}
}

// attempt is the outcome of one try at committing a batch in one transaction.
type attempt int

const (
	attemptDone     attempt = iota // committed, or failed for good: every request is final
	attemptTooBigAt                // the transaction overflowed while adding the record at index
	attemptTooBig                  // it overflowed after the records were added
	attemptRedo                    // a record was rejected after an Indexer wrote for it: start over
	attemptConflict                // Badger reported a conflict: start over
)

// commitPrefix commits as many of reqs as fit in one transaction (at least
// one), finishes their requests, and returns how many it finished.
func (l *Log) commitPrefix(reqs []*request) int {
	limit := len(reqs)
	conflicts := 0
	for {
		outcome, at, err := l.tryCommit(reqs[:limit])
		switch outcome {
		case attemptDone:
			l.finishAll(reqs[:limit], err)
			return limit
		case attemptTooBigAt, attemptTooBig:
			switch {
			case outcome == attemptTooBigAt && at > 0:
				limit = at
			case outcome == attemptTooBig && limit > 1:
				limit /= 2
			default: // the first record alone does not fit
				l.stats.failed.Add(1)
				reqs[0].finish(fmt.Errorf("log: record too large for one transaction: %w", err))
				l.forgetRejections(reqs[1:limit])
				return 1
			}
			l.forgetRejections(reqs[limit:])
		case attemptRedo:
		case attemptConflict:
			if conflicts++; conflicts > maxConflictRetries {
				l.finishAll(reqs[:limit], fmt.Errorf("log: batch kept conflicting with other writers: %w", err))
				return limit
			}
		}
	}
}

// forgetRejections clears the rejections of records that move to a later
// transaction, where the Indexers decide on them afresh.
func (l *Log) forgetRejections(reqs []*request) {
	for _, r := range reqs {
		if r.rejected {
			r.rejected, r.err = false, nil
			l.stats.rejected.Add(^uint64(0)) // counted again if rejected again
		}
	}
}

// finishAll finishes reqs: the admitted ones with err (nil when their
// batch committed), the rejected ones with their own error.
func (l *Log) finishAll(reqs []*request, err error) {
	failed := uint64(0)
	for _, r := range reqs {
		if err != nil && !r.rejected {
			failed++
		}
		r.finish(err)
	}
	l.stats.failed.Add(failed)
}

// tryCommit tries to commit reqs (but the rejected ones) in one transaction.
// With attemptDone, err is the error every admitted request gets (nil on
// success); with attemptTooBigAt, at is the index of the record that did not
// fit.
func (l *Log) tryCommit(reqs []*request) (outcome attempt, at int, err error) {
	txn, err := l.newWriteTxn()
	if err != nil {
		return attemptDone, 0, err
	}
	defer txn.Discard()
	committed := false
	defer func() { txnDone(l.opts.Indexers, l.opts.BatchIndexers, committed) }()
	next, last := l.seq.next, l.seq.last
	admitted := make([]Record, 0, len(reqs))
	for i, r := range reqs {
		if r.rejected {
			continue
		}
		rec := r.rec
		rec.Seq, rec.Time = next, l.stamp(last)
		rejectedBy, err := l.index(txn, &rec)
		switch {
		case errors.Is(err, badger.ErrTxnTooBig):
			return attemptTooBigAt, i, err
		case err != nil:
			r.rejected = true
			r.err = fmt.Errorf("log: record rejected: %w", err)
			l.stats.rejected.Add(1)
			if rejectedBy > 0 {
				// An earlier Indexer wrote for this record.
				return attemptRedo, 0, nil
			}
			continue
		}
		if err := l.store.put(txn, &rec); errors.Is(err, badger.ErrTxnTooBig) {
			return attemptTooBigAt, i, err
		} else if err != nil {
			return attemptDone, 0, fmt.Errorf("log: writing record %d: %w", rec.Seq, classifyWriteError(err))
		}
		r.rec = rec
		admitted = append(admitted, rec)
		next, last = next+1, rec.Time
	}
	if len(admitted) == 0 {
		return attemptDone, 0, nil
	}
	for _, bi := range l.opts.BatchIndexers {
		if err := bi.IndexBatch(txn, admitted); errors.Is(err, badger.ErrTxnTooBig) {
			return attemptTooBig, 0, err
		} else if err != nil {
			l.logger.Error("batch indexer failed; batch not committed", "first", admitted[0].Seq, "records", len(admitted), "err", err)
			return attemptDone, 0, fmt.Errorf("log: batch indexer: %w", err)
		}
	}
	h := head{size: next, last: last}
	if err := l.store.putHead(txn, h); errors.Is(err, badger.ErrTxnTooBig) {
		return attemptTooBig, 0, err
	} else if err != nil {
		return attemptDone, 0, fmt.Errorf("log: writing head: %w", classifyWriteError(err))
	}
	start := time.Now()
	err = l.commit(txn)
	if err == nil && l.opts.ObserveCommit != nil {
		l.opts.ObserveCommit(time.Since(start))
	}
	switch {
	case errors.Is(err, badger.ErrTxnTooBig):
		return attemptTooBig, 0, err
	case errors.Is(err, badger.ErrConflict):
		return attemptConflict, 0, err
	case err != nil:
		err = classifyWriteError(err)
		l.logger.Error("commit failed", "first", admitted[0].Seq, "records", len(admitted), "err", err)
		return attemptDone, 0, fmt.Errorf("log: committing records %d to %d: %w", admitted[0].Seq, next-1, err)
	}
	committed = true
	l.seq.next, l.seq.last = next, last
	l.publish(h)
	l.stats.batches.Add(1)
	l.stats.records.Add(uint64(len(admitted)))
	l.stats.lastBatch.Store(uint64(len(admitted)))
	return attemptDone, 0, nil
}

// index runs the Indexers on rec; on error it also returns the index of the
// Indexer that failed.
func (l *Log) index(txn *badger.Txn, rec *Record) (int, error) {
	for i, ix := range l.opts.Indexers {
		if err := ix.Index(txn, rec); err != nil {
			return i, err
		}
	}
	return 0, nil
}

// stamp returns the time of a record that follows one with time last: now,
// in UTC and without a monotonic clock reading, but never earlier than last.
func (l *Log) stamp(last time.Time) time.Time {
	now := l.clock().UTC().Round(0)
	if now.Before(last) {
		return last
	}
	return now
}

package log

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Errors of the log, matched with errors.Is.
var (
	// ErrClosed is returned by every method called on a closed log, and by
	// Append calls still queued when the log was closed.
	ErrClosed = errors.New("log: closed")
	// ErrNotFound is returned for a sequence number past the end of the log.
	ErrNotFound = errors.New("log: record not found")
	// ErrCorrupt is returned when stored data does not decode or disagrees
	// with itself; the message names the record.
	ErrCorrupt = errors.New("log: corrupt data")
	// ErrDiskFull wraps a write that failed because the disk is full.
	ErrDiskFull = errors.New("log: disk full")
	// ErrInvalidPageKey is returned by Range for a PageKey it did not issue.
	ErrInvalidPageKey = errors.New("log: invalid page key")
	// ErrInvalidRecord wraps the reason Append refused a record that does
	// not fit the leaf encoding (see Record.Validate).
	ErrInvalidRecord = errors.New("log: invalid record")
)

// DefaultMaxBatch is the default maximum number of records per group commit.
const DefaultMaxBatch = 1024

// Indexer keeps per-record derived state in the same transaction as the
// record.
type Indexer interface {
	// Index is called by the sequencer for each record, in commit order,
	// inside the write transaction of the record's batch; rec.Seq, rec.Time
	// and rec.Origin are already set, and Index must not change rec. It may
	// read state written by earlier records (also earlier ones of the same
	// batch) and write derived state. If it returns an error, the record
	// alone is rejected: Index must return before writing anything in that
	// case, the record is not written, its sequence number is given to the
	// next record, and its Append call returns the error (wrapped so
	// errors.Is works).
	//
	// Index may be called more than once for the same record (with the same
	// Seq) when the batch has to be redone: after a later Indexer of the list
	// rejects the record, or when the transaction grew too big. Only the
	// last call's writes are committed.
	Index(txn *badger.Txn, rec *Record) error
}

// BatchIndexer keeps per-batch derived state (the Merkle tree appends all
// leaves of a batch at once).
type BatchIndexer interface {
	// IndexBatch is called once per batch, after every admitted record of it
	// has been written into txn, with those records in seq order. An error
	// fails the whole batch: nothing is committed and every caller in the
	// batch gets the error. It is not called for a batch whose records were
	// all rejected. recs is not used by the log after IndexBatch returns. Like Index, it may be called again for a smaller batch if the
	// transaction grew too big.
	IndexBatch(txn *badger.Txn, recs []Record) error
}

// TxnObserver is implemented by an Indexer or a BatchIndexer that keeps
// something of what it wrote outside the transaction (a cache of the state
// it derives). After every transaction in which the log called Index or
// IndexBatch, whatever its outcome, the log calls TxnDone before it calls
// the indexer again: committed says whether the transaction committed. A
// transaction that did not commit wrote nothing, and its records are
// indexed again, or other records in their place.
type TxnObserver interface {
	TxnDone(committed bool)
}

// txnDone tells the TxnObservers among indexers and batch indexers the
// outcome of a transaction.
func txnDone(indexers []Indexer, batchIndexers []BatchIndexer, committed bool) {
	for _, ix := range indexers {
		if o, ok := ix.(TxnObserver); ok {
			o.TxnDone(committed)
		}
	}
	for _, bi := range batchIndexers {
		if o, ok := bi.(TxnObserver); ok {
			o.TxnDone(committed)
		}
	}
}

// Options configure Open.
type Options struct {
	// Dir is the Badger directory; it is created if missing.
	Dir string
	// Logger receives the log's events and Badger's; nil means slog.Default().
	Logger *slog.Logger
	// Indexers keep per-record derived state (the portal's accounts and
	// profiles), called in order for each record.
	Indexers []Indexer
	// BatchIndexers keep per-batch derived state (the Merkle tree), called
	// in order once per batch.
	BatchIndexers []BatchIndexer
	// MaxBatch is the maximum number of records per group commit; 0 means
	// DefaultMaxBatch.
	MaxBatch int
	// Origin is this node's log name; Append fills Record.Origin with it
	// when empty.
	Origin string
	// Clock returns the current time; nil means time.Now. Record times are
	// taken from it and never go backwards, even if it does.
	Clock func() time.Time
	// ReplicaIndexers, if set, returns the indexers of the replica log of a
	// peer origin (see Replica): typically the portal's replica indexer
	// and the replica's Merkle tree. It is called once per origin, when
	// Replica first opens that origin's log. Nil means replicas have no
	// indexers.
	ReplicaIndexers func(origin string) ReplicaOptions
	// Tuning chooses Badger's options: TuningSmall (the zero value)
	// bounds the memory Badger allocates, TuningLarge spends memory to save
	// CPU per write under a sustained load. See badgerOptions.
	Tuning Tuning
	// TuneBadger, if set, adjusts the Badger options the log chose (the
	// Tuning's). SyncWrites is forced on afterwards.
	TuneBadger func(badger.Options) badger.Options
	// ObserveCommit, if set, is told how long each committed batch of the
	// log (not of its replicas) spent in Badger's commit: the write, its
	// fsync, and any wait for a full level 0. It runs on the sequencer and
	// must be quick.
	ObserveCommit func(time.Duration)
}

// Tuning is a set of Badger options (Options.Tuning). Neither changes
// what is stored or when a commit is durable, so a store written with one
// opens with the other.
type Tuning int

const (
	// TuningSmall bounds the memory Badger allocates: 8 MiB memtables,
	// 512 KiB tables, writes wait for compaction when level 0 holds 3
	// tables. One node grown to 1,000,000 records stays below 100 MB of
	// anonymous memory with it.
	TuningSmall Tuning = iota
	// TuningLarge has 32 MiB memtables, up to 8 tables on level 0 before
	// writes wait, and Badger's usual table sizes (2 MiB, doubling per
	// level) and level-size multiplier (10). Measured on 8 federation
	// members at 500 writes/s: about 15% more writes acknowledged than with
	// TuningSmall, at the price of memory (a compaction of level 0 into
	// itself builds one table from up to 8 memtables' worth, in memory).
	TuningLarge
)

// Stats are counters of the sequencer since Open.
type Stats struct {
	Batches   uint64 // transactions committed
	Records   uint64 // records committed
	Rejected  uint64 // records rejected by an Indexer
	Failed    uint64 // records whose batch failed (BatchIndexer or Badger error)
	LastBatch uint64 // records in the last committed transaction
}

// Log is an append-only log of records stored in Badger. Its methods are safe
// for concurrent use.
type Log struct {
	db       *badger.DB
	dur      *durability // the first write Badger did not make durable
	store    recordStore
	logger   *slog.Logger
	opts     Options
	clock    func() time.Time
	maxBatch int

	// Published state, written by the sequencer after each commit.
	size      atomic.Uint64
	lastNanos atomic.Int64
	stats     struct{ batches, records, rejected, failed, lastBatch atomic.Uint64 }

	// Sequencer state, owned by the sequencer goroutine.
	seq sequencerState

	reqs      chan *request
	closing   chan struct{} // closed when Close starts
	seqDone   chan struct{} // closed when the sequencer goroutine has returned
	sendMu    sync.RWMutex  // held for reading while an Append sends on reqs
	sendStop  bool          // set under sendMu when no more sends may happen
	dbMu      sync.RWMutex  // held for reading while a reader uses db
	closed    atomic.Bool
	closeOnce sync.Once

	// Replica logs of peer origins (replica.go).
	replicaMu sync.Mutex
	replicas  map[string]*Replica // opened replicas, by origin
	heldMu    sync.Mutex          // guards held; taken alone, never while holding another lock
	held      map[string]bool     // origins with a replica key
	closeErr  error
}

// Open opens (or creates) the log in opts.Dir, checks that the stored size
// agrees with the stored records, and starts the sequencer. ctx bounds Open
// only; the log runs until Close.
func Open(ctx context.Context, opts Options) (*Log, error) {
	if opts.Dir == "" {
		return nil, errors.New("log: Options.Dir is empty")
	}
	if opts.MaxBatch < 0 {
		return nil, fmt.Errorf("log: Options.MaxBatch is %d, want 0 (default) or more", opts.MaxBatch)
	}
	if len(opts.Origin) > MaxFieldLen {
		return nil, fmt.Errorf("log: Options.Origin is %d bytes, over the limit of %d", len(opts.Origin), MaxFieldLen)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "log")
	keys, err := newKeyspace("")
	if err != nil {
		return nil, err
	}
	l := &Log{
		store:    recordStore{keys: keys},
		logger:   logger,
		opts:     opts,
		clock:    opts.Clock,
		maxBatch: opts.MaxBatch,
		closing:  make(chan struct{}),
		seqDone:  make(chan struct{}),
		replicas: map[string]*Replica{},
		dur:      newDurability(),
	}
	if l.clock == nil {
		l.clock = time.Now
	}
	if l.maxBatch == 0 {
		l.maxBatch = DefaultMaxBatch
	}
	l.reqs = make(chan *request, l.maxBatch)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := removeEmptyLogFiles(opts.Dir, logger); err != nil {
		return nil, err
	}
	db, err := badger.Open(badgerOptions(opts, logger, l.dur))
	if err != nil {
		return nil, fmt.Errorf("log: opening Badger in %s: %w", opts.Dir, classifyWriteError(err))
	}
	l.db = db
	h, err := l.recover()
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	if l.held, err = l.loadReplicaKeys(); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	l.seq.next, l.seq.last = h.size, h.last
	l.publish(h)
	logger.Info("log opened", "dir", opts.Dir, "size", h.size)
	go l.runSequencer()
	return l, nil
}

// recover checks the head against the records and deletes records stored
// past the head (never acknowledged: see recordStore.check).
func (l *Log) recover() (head, error) {
	return l.recoverStore(l.store, "the log")
}

// recoverStore is recover for the log in s (the node's own, or a replica),
// named what in errors and events.
func (l *Log) recoverStore(s recordStore, what string) (head, error) {
	var h head
	var strays []uint64
	err := l.db.View(func(txn *badger.Txn) error {
		var err error
		h, strays, err = s.check(txn)
		return err
	})
	if err != nil {
		return head{}, fmt.Errorf("log: checking %s in %s: %w", what, l.opts.Dir, err)
	}
	if len(strays) == 0 {
		return h, nil
	}
	l.logger.Warn("deleting records stored past the end of "+what+"; they were never acknowledged",
		"size", h.size, "stray", len(strays), "first", strays[0])
	wb := l.db.NewWriteBatch()
	defer wb.Cancel()
	for _, seq := range strays {
		if err := wb.Delete(s.keys.recordKey(seq)); err != nil {
			return head{}, fmt.Errorf("log: deleting stray record %d: %w", seq, classifyWriteError(err))
		}
	}
	if err := wb.Flush(); err != nil {
		return head{}, fmt.Errorf("log: deleting stray records: %w", classifyWriteError(err))
	}
	return h, nil
}

// publish makes a committed head visible to Size and LastTime.
func (l *Log) publish(h head) {
	if h.size > 0 {
		l.lastNanos.Store(h.last.UnixNano())
	}
	l.size.Store(h.size)
}

// Close stops the sequencer (a batch being committed completes), fails the
// Append calls still queued with ErrClosed, waits for readers to finish and
// closes Badger. Calling Close again returns the first call's result.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		close(l.closing)
		// Appends blocked sending see closing and give up; afterwards no
		// send can start.
		l.sendMu.Lock()
		l.sendStop = true
		l.sendMu.Unlock()
		<-l.seqDone
		l.failQueued()
		l.dbMu.Lock()
		defer l.dbMu.Unlock()
		if err := l.db.Close(); err != nil {
			l.closeErr = fmt.Errorf("log: closing Badger: %w", err)
		}
		l.logger.Info("log closed", "size", l.Size())
	})
	return l.closeErr
}

// failQueued fails the requests left in the queue after the sequencer
// stopped.
func (l *Log) failQueued() {
	for {
		select {
		case r := <-l.reqs:
			r.finish(ErrClosed)
		default:
			return
		}
	}
}

// DB returns the Badger DB, for readers of derived state kept in it. Writes
// to it must go through an Indexer or BatchIndexer, and keys starting with
// KeyPrefix belong to the log.
func (l *Log) DB() *badger.DB { return l.db }

// Origin returns the log's name, Options.Origin: the Origin of the records
// it appends, and the one origin it keeps no replica of.
func (l *Log) Origin() string { return l.opts.Origin }

// Size returns the number of committed records; their sequence numbers are
// 0 to Size()-1.
func (l *Log) Size() uint64 { return l.size.Load() }

// LastTime returns the time of the last committed record, or the zero time
// if the log is empty.
func (l *Log) LastTime() time.Time {
	if l.Size() == 0 {
		return time.Time{}
	}
	return time.Unix(0, l.lastNanos.Load()).UTC()
}

// Stats returns the sequencer's counters.
func (l *Log) Stats() Stats {
	return Stats{
		Batches:   l.stats.batches.Load(),
		Records:   l.stats.records.Load(),
		Rejected:  l.stats.rejected.Load(),
		Failed:    l.stats.failed.Load(),
		LastBatch: l.stats.lastBatch.Load(),
	}
}

// Get returns record seq, ErrNotFound if seq is past the end of the log.
func (l *Log) Get(seq uint64) (Record, error) {
	var rec Record
	err := l.view(func(txn *badger.Txn) error {
		var err error
		rec, err = l.GetTxn(txn, seq)
		return err
	})
	return rec, err
}

// GetTxn is Get inside the caller's Badger transaction (from DB()), so that
// a record and derived state are read from one snapshot.
func (l *Log) GetTxn(txn *badger.Txn, seq uint64) (Record, error) {
	if l.closed.Load() {
		return Record{}, ErrClosed
	}
	return l.store.get(txn, seq)
}

// view runs fn in a read transaction, unless the log is closed.
func (l *Log) view(fn func(txn *badger.Txn) error) error {
	l.dbMu.RLock()
	defer l.dbMu.RUnlock()
	if l.closed.Load() {
		return ErrClosed
	}
	return l.db.View(fn)
}

package log

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
)

// Errors of replica logs, matched with errors.Is.
var (
	// ErrFork is wrapped by the *ForkError that Replica.Append returns when
	// it is offered a record that differs from the one the replica holds at
	// the same sequence number: the origin (or whoever relayed the records)
	// showed two different logs.
	ErrFork = errors.New("log: replica fork")
	// ErrGap is returned (wrapped) by Replica.Append for records that start
	// past the end of the replica: the records in between are missing.
	ErrGap = errors.New("log: gap in replica")
)

// ForkError is the error of Replica.Append for a record that differs from
// the held one at the same sequence number. It carries both records, so the
// caller can build equivocation evidence. errors.Is(err, ErrFork) holds.
type ForkError struct {
	Origin  string // the replica's origin
	Seq     uint64 // the sequence number of the two records
	Held    Record // the record the replica holds
	Offered Record // the different record Append was given
}

// Error implements error.
func (e *ForkError) Error() string {
	return fmt.Sprintf("log: replica fork: record %d of %q differs from the one held (leaf hashes are of different bytes)", e.Seq, e.Origin)
}

// Unwrap returns ErrFork.
func (e *ForkError) Unwrap() error { return ErrFork }

// ReplicaOptions are the indexers of one replica log (see
// Options.ReplicaIndexers).
//
// A replica mirrors its origin's log exactly, so its indexers cannot reject
// a record: an error of an Indexer or a BatchIndexer fails the transaction
// it runs in, Append commits nothing of it and returns the error. Indexers
// of replicas must therefore return errors only for failures of the store
// (and badger.ErrTxnTooBig, which makes Append split the batch), never for
// the content of a record. As for the node's own log, an indexer may be
// called again for the same records when a transaction is redone.
type ReplicaOptions struct {
	// Indexers are called for each record, in order, in the transaction
	// that writes it.
	Indexers []Indexer
	// BatchIndexers are called once per transaction with its records (the
	// replica's Merkle tree: merkle.NewTree(nil, merkle.ReplicaPrefix(origin))).
	BatchIndexers []BatchIndexer
}

// Replica is the replica log of a peer origin, kept in the node's database
// under the origin's own namespace (see keys.go). It holds the origin's
// records with the origin's sequence numbers and times, dense from 0, and
// never assigns either: Append only adds the records that extend it.
//
// Its methods are safe for concurrent use; Append calls are serialized. Get
// it from Log.Replica; it is valid until the log is closed, after which its
// methods return ErrClosed.
type Replica struct {
	log    *Log
	origin string
	store  recordStore
	opts   ReplicaOptions

	mu   sync.Mutex // serializes Append
	last time.Time  // time of the last record; guarded by mu
	size atomic.Uint64
}

// Replica returns the replica log of origin, opening it on first use: later
// calls for the same origin return the same *Replica, whose indexers
// Options.ReplicaIndexers gave when it was opened. Opening a replica writes
// nothing; the origin is listed by Replicas once the replica holds a record.
//
// origin is a peer's log name, as in its checkpoints: not empty, not the
// log's own Options.Origin, at most MaxFieldLen bytes of UTF-8 without
// spaces or control characters.
func (l *Log) Replica(origin string) (*Replica, error) {
	if err := l.checkReplicaOrigin(origin); err != nil {
		return nil, err
	}
	l.replicaMu.Lock()
	defer l.replicaMu.Unlock()
	if r, ok := l.replicas[origin]; ok {
		return r, nil
	}
	keys, err := newKeyspace(origin)
	if err != nil {
		return nil, err
	}
	r := &Replica{log: l, origin: origin, store: recordStore{keys: keys}}
	var h head
	err = l.withDB(func() error {
		var err error
		h, err = l.recoverStore(r.store, fmt.Sprintf("the replica of %q", origin))
		return err
	})
	if err != nil {
		return nil, err
	}
	if l.opts.ReplicaIndexers != nil {
		r.opts = l.opts.ReplicaIndexers(origin)
	}
	r.size.Store(h.size)
	r.last = h.last
	l.replicas[origin] = r
	return r, nil
}

// Replicas returns the origins whose replica logs hold records, sorted. They
// are stored, so a reopened log lists the replicas of its previous runs.
func (l *Log) Replicas() ([]string, error) {
	if l.closed.Load() {
		return nil, ErrClosed
	}
	l.heldMu.Lock()
	defer l.heldMu.Unlock()
	origins := make([]string, 0, len(l.held))
	for o := range l.held {
		origins = append(origins, o)
	}
	slices.Sort(origins)
	return origins, nil
}

// HasReplica reports whether the log holds a replica of origin with at
// least one record, without opening it.
func (l *Log) HasReplica(origin string) bool {
	l.heldMu.Lock()
	defer l.heldMu.Unlock()
	return l.held[origin]
}

// checkReplicaOrigin says why origin cannot name a replica log.
func (l *Log) checkReplicaOrigin(origin string) error {
	switch {
	case origin == "":
		return errors.New("log: replica origin is empty")
	case origin == l.opts.Origin:
		return fmt.Errorf("log: replica origin %q is the log's own origin", origin)
	case len(origin) > MaxFieldLen:
		return fmt.Errorf("log: replica origin is %d bytes, over the limit of %d", len(origin), MaxFieldLen)
	case !utf8.ValidString(origin) || strings.ContainsFunc(origin, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return fmt.Errorf("log: replica origin %q is not UTF-8 without spaces and control characters", origin)
	}
	return nil
}

// loadReplicaKeys reads the origins of the stored replica keys.
func (l *Log) loadReplicaKeys() (map[string]bool, error) {
	held := map[string]bool{}
	prefix := l.store.keys.replicaPrefix()
	err := l.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.ValidForPrefix(prefix); it.Next() {
			held[string(it.Item().Key()[len(prefix):])] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("log: listing replicas in %s: %w", l.opts.Dir, err)
	}
	return held, nil
}

// markHeld records in memory that the replica of origin holds records.
func (l *Log) markHeld(origin string) {
	l.heldMu.Lock()
	defer l.heldMu.Unlock()
	l.held[origin] = true
}

// withDB runs fn while the database stays open, unless the log is closed.
func (l *Log) withDB(fn func() error) error {
	l.dbMu.RLock()
	defer l.dbMu.RUnlock()
	if l.closed.Load() {
		return ErrClosed
	}
	return fn()
}

// Origin returns the peer origin whose log this is a replica of.
func (r *Replica) Origin() string { return r.origin }

// Size returns the number of records the replica holds; their sequence
// numbers are 0 to Size()-1.
func (r *Replica) Size() uint64 { return r.size.Load() }

// Get returns record seq of the replica, ErrNotFound if it holds no such
// record.
func (r *Replica) Get(seq uint64) (Record, error) {
	var rec Record
	err := r.log.view(func(txn *badger.Txn) error {
		var err error
		rec, err = r.store.get(txn, seq)
		return err
	})
	return rec, err
}

// Range returns the replica's records that match c, one page at a time,
// exactly as Log.Range does for the node's own log (its page keys are the
// same and work on any log).
func (r *Replica) Range(ctx context.Context, c Constraints) (Page, error) {
	var page Page
	size := r.Size() // before the snapshot: it holds every record counted
	err := r.log.view(func(txn *badger.Txn) error {
		var err error
		page, err = r.store.rangePage(ctx, txn, c, size, pageEntries(c))
		return err
	})
	if err != nil {
		return Page{}, err
	}
	return page, nil
}

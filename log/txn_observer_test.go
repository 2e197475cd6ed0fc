package log

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// txnRecorder is an Indexer and TxnObserver that records, for every
// transaction, the records it indexed in it and the outcome the log
// reported.
type txnRecorder struct {
	mu   sync.Mutex
	cur  []string // the identifiers indexed in the current transaction
	txns []txnOutcome
}

type txnOutcome struct {
	ids       []string
	committed bool
}

func (r *txnRecorder) Index(_ *badger.Txn, rec *Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur = append(r.cur, rec.Identifier)
	return nil
}

func (r *txnRecorder) TxnDone(committed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.txns = append(r.txns, txnOutcome{ids: r.cur, committed: committed})
	r.cur = nil
}

// check checks that every transaction was reported (none is left open)
// and that the identifiers indexed in the committed ones are those of
// held, each once, in order; it returns the number of discarded
// transactions.
func (r *txnRecorder) check(t *testing.T, held []Record) (discarded int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cur) > 0 {
		t.Fatalf("records %v were indexed in a transaction whose outcome was never reported", r.cur)
	}
	var committed, want []string
	for _, o := range r.txns {
		if o.committed {
			committed = append(committed, o.ids...)
		} else {
			discarded++
		}
	}
	for _, rec := range held {
		want = append(want, rec.Identifier)
	}
	if !slices.Equal(committed, want) {
		t.Fatalf("records indexed in committed transactions %v, want the records held %v", committed, want)
	}
	return discarded
}

// The log tells a TxnObserver the outcome of every transaction of its own
// sequencer: committed, or redone after a later indexer rejected a record.
func TestTheSequencerReportsEveryTransaction(t *testing.T) {
	rec := &txnRecorder{}
	l := openTestLog(t, "", Options{Indexers: []Indexer{rec, rejectIdentifier{bad: "MB0002"}}})
	var held []Record
	for i := range 4 {
		r := testRecord(i)
		got, err := l.Append(t.Context(), r)
		if i == 2 {
			if !errors.Is(err, errRejected) {
				t.Fatalf("Append of the refused record = %v, want errRejected", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, got)
	}
	// The refused record's batch was discarded twice: when the record was
	// refused, and when the batch was redone without it and held nothing.
	if d := rec.check(t, held); d != 2 {
		t.Errorf("%d transactions discarded, want 2", d)
	}
}

// The log tells a TxnObserver of a replica the outcome of every
// transaction: committed, failed by a batch indexer, or split because it
// grew too big.
func TestAReplicaReportsEveryTransaction(t *testing.T) {
	small := func(o badger.Options) badger.Options { return o.WithMemTableSize(1 << 20).WithValueThreshold(64 << 10) }
	rec := &txnRecorder{}
	opts := Options{TuneBadger: small, ReplicaIndexers: func(string) ReplicaOptions {
		return ReplicaOptions{Indexers: []Indexer{rec}, BatchIndexers: []BatchIndexer{poisonBatch{}}}
	}}
	_, r := openTestReplica(t, opts)
	mustAppend(t, r, peerRecords(0, 3), 3)
	poisoned := peerRecords(3, 3)
	poisoned[1].Identifier = "poison"
	if _, err := r.Append(t.Context(), poisoned); !errors.Is(err, errPoison) {
		t.Fatalf("Append of a poisoned batch = %v, want errPoison", err)
	}
	big := peerRecords(3, 30)
	for i := range big {
		big[i].Payload = []byte(strings.Repeat("p", 16<<10))
	}
	mustAppend(t, r, big, len(big))
	held := append(peerRecords(0, 3), big...)
	if d := rec.check(t, held); d < 2 {
		t.Errorf("%d transactions discarded, want the poisoned one and at least one too big", d)
	}
}

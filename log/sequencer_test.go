package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func TestConcurrentAppendsGetDenseSeqsHoldingTheirRecords(t *testing.T) {
	const goroutines, perGoroutine = 64, 200
	l := openTestLog(t, "", Options{})
	results := make([][]Record, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perGoroutine {
				rec := testRecord(g*perGoroutine + i)
				got, err := l.Append(t.Context(), rec)
				if err != nil {
					t.Errorf("goroutine %d append %d: %v", g, i, err)
					return
				}
				results[g] = append(results[g], got)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	const total = goroutines * perGoroutine
	if l.Size() != total {
		t.Fatalf("Size = %d, want %d", l.Size(), total)
	}
	seen := make([]bool, total)
	for g, recs := range results {
		for i, rec := range recs {
			if rec.Seq >= total || seen[rec.Seq] {
				t.Fatalf("goroutine %d append %d got seq %d, out of range or given twice", g, i, rec.Seq)
			}
			seen[rec.Seq] = true
			if i > 0 && rec.Seq <= recs[i-1].Seq {
				t.Errorf("goroutine %d: append %d got seq %d after %d", g, i, rec.Seq, recs[i-1].Seq)
			}
			stored, err := l.Get(rec.Seq)
			if err != nil || !sameRecord(stored, rec) {
				t.Fatalf("Get(%d) = %+v, %v; want %+v", rec.Seq, stored, err, rec)
			}
		}
	}
	if s := l.Stats(); s.Records != total || s.Batches >= total {
		t.Errorf("Stats = %+v: want %d records in fewer batches", s, total)
	}
}

// rejectIdentifier is an Indexer that rejects records with one identifier and
// otherwise records which identifiers it indexed under "T/ix/<identifier>".
type rejectIdentifier struct{ bad string }

var errRejected = errors.New("identifier refused")

func (r rejectIdentifier) Index(txn *badger.Txn, rec *Record) error {
	if rec.Identifier == r.bad {
		return fmt.Errorf("%w: %s", errRejected, rec.Identifier)
	}
	return txn.Set([]byte("T/ix/"+rec.Identifier), binary.BigEndian.AppendUint64(nil, rec.Seq))
}

// countingIndexer keeps a record count under "T/count" and checks that each
// record's seq equals the count of the records before it, which it can only
// do if it sees the earlier records of its own batch.
type countingIndexer struct{}

func (countingIndexer) Index(txn *badger.Txn, rec *Record) error {
	n, err := readCounter(txn, "T/count")
	if err != nil {
		return err
	}
	if n != rec.Seq {
		return fmt.Errorf("record %d follows %d indexed records", rec.Seq, n)
	}
	return txn.Set([]byte("T/count"), binary.BigEndian.AppendUint64(nil, n+1))
}

func readCounter(txn *badger.Txn, key string) (uint64, error) {
	item, err := txn.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(v), nil
}

func hasKey(t *testing.T, l *Log, key string) bool {
	t.Helper()
	err := l.DB().View(func(txn *badger.Txn) error { _, err := txn.Get([]byte(key)); return err })
	if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

func TestIndexerRejectsOneRecordOfABatch(t *testing.T) {
	tests := []struct {
		name     string
		indexers []Indexer
	}{
		{"when the only indexer rejects it", []Indexer{rejectIdentifier{bad: "bad"}}},
		{"when a later indexer rejects it after an earlier one wrote for it",
			[]Indexer{countingIndexer{}, rejectIdentifier{bad: "bad"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGate()
			l := openTestLog(t, "", Options{Indexers: tt.indexers, BatchIndexers: []BatchIndexer{g}})
			held := g.hold(t, l)
			good1, bad, good2 := testRecord(1), testRecord(2), testRecord(3)
			bad.Identifier = "bad"
			chs := queueInOrder(t, l, good1, bad, good2)
			close(g.release)
			if r := <-held; r.err != nil {
				t.Fatal(r.err)
			}
			r1, rb, r2 := <-chs[0], <-chs[1], <-chs[2]
			if !errors.Is(rb.err, errRejected) {
				t.Errorf("rejected append error = %v, want errRejected", rb.err)
			}
			if r1.err != nil || r2.err != nil || r1.rec.Seq != 1 || r2.rec.Seq != 2 {
				t.Errorf("the other appends = (%d, %v), (%d, %v); want seqs 1 and 2",
					r1.rec.Seq, r1.err, r2.rec.Seq, r2.err)
			}
			if s := l.Stats(); s.LastBatch != 2 || s.Rejected != 1 {
				t.Errorf("Stats = %+v; want the two good records in one batch and one rejection", s)
			}
			if l.Size() != 3 {
				t.Errorf("Size = %d, want 3", l.Size())
			}
			for seq, want := range []Record{testRecord(-1), good1, good2} {
				if got, err := l.Get(uint64(seq)); err != nil || got.Identifier != want.Identifier {
					t.Errorf("Get(%d) = %q, %v; want %q", seq, got.Identifier, err, want.Identifier)
				}
			}
			if hasKey(t, l, "T/ix/bad") {
				t.Error("derived state of the rejected record was committed")
			}
			if !hasKey(t, l, "T/ix/"+good2.Identifier) {
				t.Error("derived state of an admitted record is missing")
			}
		})
	}
}

func TestIndexerSeesTheEarlierRecordsOfItsBatch(t *testing.T) {
	g := newGate()
	l := openTestLog(t, "", Options{Indexers: []Indexer{countingIndexer{}}, BatchIndexers: []BatchIndexer{g}})
	held := g.hold(t, l)
	chs := queueInOrder(t, l, testRecord(1), testRecord(2), testRecord(3), testRecord(4))
	close(g.release)
	<-held
	for i, ch := range chs {
		if r := <-ch; r.err != nil {
			t.Errorf("append %d: %v", i, r.err)
		}
	}
	if s := l.Stats(); s.LastBatch != 4 {
		t.Errorf("Stats = %+v, want the four records in one batch", s)
	}
	var n uint64
	if err := l.DB().View(func(txn *badger.Txn) (err error) { n, err = readCounter(txn, "T/count"); return err }); err != nil || n != 5 {
		t.Errorf("derived count = %d, %v; want 5", n, err)
	}
}

// poisonBatch is a BatchIndexer that fails any batch holding the identifier
// "poison" and otherwise counts records under "T/batchcount".
type poisonBatch struct{}

var errPoison = errors.New("poisoned batch")

func (poisonBatch) IndexBatch(txn *badger.Txn, recs []Record) error {
	for _, r := range recs {
		if r.Identifier == "poison" {
			return errPoison
		}
	}
	n, err := readCounter(txn, "T/batchcount")
	if err != nil {
		return err
	}
	return txn.Set([]byte("T/batchcount"), binary.BigEndian.AppendUint64(nil, n+uint64(len(recs))))
}

func TestBatchIndexerErrorFailsTheWholeBatch(t *testing.T) {
	g := newGate()
	l := openTestLog(t, "", Options{BatchIndexers: []BatchIndexer{g, poisonBatch{}}})
	held := g.hold(t, l)
	poison := testRecord(2)
	poison.Identifier = "poison"
	chs := queueInOrder(t, l, testRecord(1), poison, testRecord(3))
	close(g.release)
	if r := <-held; r.err != nil {
		t.Fatal(r.err)
	}
	for i, ch := range chs {
		if r := <-ch; !errors.Is(r.err, errPoison) {
			t.Errorf("append %d of the poisoned batch: error = %v, want errPoison", i, r.err)
		}
	}
	if l.Size() != 1 {
		t.Errorf("Size = %d, want 1: nothing of the failed batch may be committed", l.Size())
	}
	next, err := l.Append(t.Context(), testRecord(4))
	if err != nil || next.Seq != 1 {
		t.Errorf("Append after the failed batch = seq %d, %v; want seq 1", next.Seq, err)
	}
	var n uint64
	if err := l.DB().View(func(txn *badger.Txn) (err error) { n, err = readCounter(txn, "T/batchcount"); return err }); err != nil || n != 2 {
		t.Errorf("derived batch count = %d, %v; want 2", n, err)
	}
}

// bulkyIndexer writes 64 KiB of derived state per record with the
// identifier "bulky" and nothing for others.
type bulkyIndexer struct{}

func (bulkyIndexer) Index(txn *badger.Txn, rec *Record) error {
	if rec.Identifier != "bulky" {
		return nil
	}
	for i := range 64 {
		if err := txn.Set(fmt.Appendf(nil, "T/bulk/%d/%d", rec.Seq, i), make([]byte, 1024)); err != nil {
			return err
		}
	}
	return nil
}

func TestBatchesTooBigForOneTransactionAreSplit(t *testing.T) {
	// A 1 MiB memtable limits a transaction to about 150 KiB.
	small := func(o badger.Options) badger.Options { return o.WithMemTableSize(1 << 20).WithValueThreshold(64 << 10) }
	g := newGate()
	l := openTestLog(t, "", Options{TuneBadger: small, Indexers: []Indexer{bulkyIndexer{}}, BatchIndexers: []BatchIndexer{g}})
	held := g.hold(t, l)
	var recs []Record
	for i := range 30 {
		rec := testRecord(i)
		rec.Payload = []byte(strings.Repeat("p", 16<<10))
		recs = append(recs, rec)
	}
	chs := queueInOrder(t, l, recs...)
	close(g.release)
	<-held
	for i, ch := range chs {
		r := <-ch
		if r.err != nil || r.rec.Seq != uint64(i+1) {
			t.Errorf("append %d = seq %d, %v; want seq %d", i, r.rec.Seq, r.err, i+1)
		}
	}
	if s := l.Stats(); s.Batches < 3 {
		t.Errorf("Stats = %+v, want the 30 records split over several transactions", s)
	}

}

func TestARecordWhoseDerivedStateAloneIsTooBigFailsAlone(t *testing.T) {
	small := func(o badger.Options) badger.Options { return o.WithMemTableSize(1 << 20).WithValueThreshold(64 << 10) }
	// Three bulky indexers write 192 KiB for one record.
	l := openTestLog(t, "", Options{TuneBadger: small, Indexers: []Indexer{bulkyIndexer{}, bulkyIndexer{}, bulkyIndexer{}}})
	huge := testRecord(99)
	huge.Identifier = "bulky"
	if _, err := l.Append(t.Context(), huge); !errors.Is(err, badger.ErrTxnTooBig) {
		t.Errorf("Append error = %v, want ErrTxnTooBig", err)
	}
	next, err := l.Append(t.Context(), testRecord(100))
	if err != nil || next.Seq != 0 {
		t.Errorf("next Append = seq %d, %v; want 0", next.Seq, err)
	}
	if s := l.Stats(); s.Failed != 1 {
		t.Errorf("Stats = %+v, want one failed record", s)
	}
}

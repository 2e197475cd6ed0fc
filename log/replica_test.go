package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

const peer = "peer.example/log"

// peerRecords returns records from..from+n-1 of the peer's log, as the peer
// sequenced them: the same record for the same seq on every call.
func peerRecords(from, n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		seq := from + i
		recs[i] = testRecord(seq)
		recs[i].Seq = uint64(seq)
		recs[i].Time = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(seq) * time.Millisecond)
		recs[i].Origin = peer
	}
	return recs
}

// openTestReplica opens a log in a new directory and the replica of peer.
func openTestReplica(t testing.TB, opts Options) (*Log, *Replica) {
	t.Helper()
	l := openTestLog(t, "", opts)
	r, err := l.Replica(peer)
	if err != nil {
		t.Fatal(err)
	}
	return l, r
}

// mustAppend appends recs and checks how many were added.
func mustAppend(t testing.TB, r *Replica, recs []Record, want int) {
	t.Helper()
	added, err := r.Append(context.Background(), recs)
	if err != nil || added != want {
		t.Fatalf("Append(%d records from %d) = %d, %v; want %d added", len(recs), recs[0].Seq, added, err, want)
	}
}

// checkHolds checks that the replica holds exactly peerRecords(0, n).
func checkHolds(t testing.TB, r *Replica, n int) {
	t.Helper()
	if r.Size() != uint64(n) {
		t.Fatalf("Size = %d, want %d", r.Size(), n)
	}
	for _, want := range peerRecords(0, n) {
		got, err := r.Get(want.Seq)
		if err != nil || !bytes.Equal(got.MarshalLeaf(), want.MarshalLeaf()) {
			t.Fatalf("Get(%d) = %+v, %v; want %+v", want.Seq, got, err, want)
		}
	}
	if _, err := r.Get(uint64(n)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(%d) past the end: %v, want ErrNotFound", n, err)
	}
}

func TestReplicaAppendsChunksAndReadsThemBack(t *testing.T) {
	l, r := openTestReplica(t, Options{Origin: "me.example/log"})
	if r.Origin() != peer || r.Size() != 0 {
		t.Fatalf("new replica: origin %q size %d", r.Origin(), r.Size())
	}
	for _, chunk := range [][2]int{{0, 1}, {1, 7}, {8, 100}, {108, 3}} {
		mustAppend(t, r, peerRecords(chunk[0], chunk[1]), chunk[1])
	}
	checkHolds(t, r, 111)
	if l.Size() != 0 {
		t.Errorf("the node's own log grew to %d", l.Size())
	}
	// Range pages through the replica like through the log.
	var seqs []uint64
	c := Constraints{MaxEntries: 25}
	for pages := 0; ; pages++ {
		page, err := r.Range(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seqsOf(page.Records)...)
		if page.PageKey == "" {
			break
		}
		c.PageKey = page.PageKey
	}
	if !slicesEqual(seqs, seqRange(0, 111)) {
		t.Errorf("Range pages hold %v", seqs)
	}
	// A time window finds the records by their origin's times.
	recs := peerRecords(0, 111)
	page, err := r.Range(t.Context(), Constraints{NotBefore: recs[10].Time, Before: recs[20].Time})
	if err != nil || !slicesEqual(seqsOf(page.Records), seqRange(10, 20)) {
		t.Errorf("Range window = %v, %v; want 10 to 19", seqsOf(page.Records), err)
	}
}

func slicesEqual(a, b []uint64) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

func TestReplicaReappendOfHeldRecordsIsIdempotent(t *testing.T) {
	_, r := openTestReplica(t, Options{})
	mustAppend(t, r, peerRecords(0, 10), 10)
	mustAppend(t, r, peerRecords(0, 10), 0)
	mustAppend(t, r, peerRecords(3, 4), 0)
	mustAppend(t, r, peerRecords(5, 10), 5) // 5..9 held, 10..14 new
	checkHolds(t, r, 15)
	if added, err := r.Append(t.Context(), nil); added != 0 || err != nil {
		t.Errorf("Append(nil) = %d, %v", added, err)
	}
}

// TestReplicaRefusesHostileBatches: whatever is wrong with a batch, nothing
// of it is written.
func TestReplicaRefusesHostileBatches(t *testing.T) {
	shifted := func(recs []Record, f func([]Record)) []Record { f(recs); return recs }
	tests := []struct {
		name  string
		batch []Record
		want  error
	}{
		{"a batch starting past the end leaves a gap", peerRecords(11, 3), ErrGap},
		{"a held record with another payload is a fork", shifted(peerRecords(4, 8), func(r []Record) { r[2].Payload = []byte(`{"n":"forged"}`) }), ErrFork},
		{"a held record with another time is a fork", shifted(peerRecords(9, 1), func(r []Record) { r[0].Time = r[0].Time.Add(1) }), ErrFork},
		{"a record of another origin is refused", shifted(peerRecords(10, 2), func(r []Record) { r[1].Origin = "other.example" }), ErrInvalidRecord},
		{"a record without origin is refused", shifted(peerRecords(10, 1), func(r []Record) { r[0].Origin = "" }), ErrInvalidRecord},
		{"records out of order are refused", shifted(peerRecords(10, 3), func(r []Record) { r[1], r[2] = r[2], r[1] }), ErrInvalidRecord},
		{"a repeated record is refused", shifted(peerRecords(10, 3), func(r []Record) { r[2] = r[1] }), ErrInvalidRecord},
		{"a time going backwards within the batch is refused", shifted(peerRecords(10, 2), func(r []Record) { r[1].Time = r[0].Time.Add(-1) }), ErrInvalidRecord},
		{"a time before the last held record is refused", shifted(peerRecords(10, 1), func(r []Record) { r[0].Time = time.Unix(0, 0) }), ErrInvalidRecord},
		{"a record without kind is refused", shifted(peerRecords(10, 1), func(r []Record) { r[0].Kind = "" }), ErrInvalidRecord},
		{"an oversized payload is refused", shifted(peerRecords(10, 1), func(r []Record) { r[0].Payload = make([]byte, MaxPayloadLen+1) }), ErrInvalidRecord},
		{"an oversized identifier is refused", shifted(peerRecords(10, 1), func(r []Record) { r[0].Identifier = strings.Repeat("i", MaxFieldLen+1) }), ErrInvalidRecord},
		{"a seq that overflows is refused", shifted(peerRecords(10, 2), func(r []Record) { r[0].Seq, r[1].Seq = 1<<64-1, 0 }), ErrInvalidRecord},
		{"a fork before fresh records writes none of them", shifted(peerRecords(9, 5), func(r []Record) { r[0].Kind = "Escrow" }), ErrFork},
	}
	_, r := openTestReplica(t, Options{})
	mustAppend(t, r, peerRecords(0, 10), 10)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			added, err := r.Append(t.Context(), tt.batch)
			if !errors.Is(err, tt.want) || added != 0 {
				t.Fatalf("Append = %d, %v; want 0, %v", added, err, tt.want)
			}
			checkHolds(t, r, 10)
		})
	}
}

func TestReplicaForkErrorCarriesBothRecords(t *testing.T) {
	_, r := openTestReplica(t, Options{})
	mustAppend(t, r, peerRecords(0, 5), 5)
	forged := peerRecords(3, 1)
	forged[0].Payload = []byte(`{"n":"forged"}`)
	_, err := r.Append(t.Context(), forged)
	var fe *ForkError
	if !errors.As(err, &fe) || fe.Seq != 3 || fe.Origin != peer ||
		!bytes.Equal(fe.Held.MarshalLeaf(), peerRecords(3, 1)[0].MarshalLeaf()) || !bytes.Equal(fe.Offered.Payload, forged[0].Payload) {
		t.Fatalf("error = %#v, want a *ForkError at 3 with both records", err)
	}
	if !strings.Contains(err.Error(), "record 3") {
		t.Errorf("error %q does not name the seq", err)
	}
}

func TestReplicaOriginMustBeAPeer(t *testing.T) {
	l := openTestLog(t, "", Options{Origin: "me.example/log"})
	for _, origin := range []string{"", "me.example/log", "has space", "ctl\x00", strings.Repeat("o", MaxFieldLen+1), "bad\xff"} {
		if _, err := l.Replica(origin); err == nil {
			t.Errorf("Replica(%q) succeeded", origin)
		}
	}
	a, err := l.Replica(peer)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := l.Replica(peer); a != b {
		t.Error("two Replica calls for one origin gave two replicas")
	}
	if origins, err := l.Replicas(); err != nil || len(origins) != 0 {
		t.Errorf("Replicas of an empty replica = %v, %v; want none", origins, err)
	}
}

// indexSeq is an Indexer writing "T/rix/<seq>" for each replica record.
type indexSeq struct{}

func (indexSeq) Index(txn *badger.Txn, rec *Record) error {
	return txn.Set(fmt.Appendf(nil, "T/rix/%s/%d", rec.Origin, rec.Seq), nil)
}

func TestReplicaIndexersCommitWithTheRecords(t *testing.T) {
	opts := Options{ReplicaIndexers: func(origin string) ReplicaOptions {
		return ReplicaOptions{Indexers: []Indexer{indexSeq{}}, BatchIndexers: []BatchIndexer{poisonBatch{}}}
	}}
	l, r := openTestReplica(t, opts)
	mustAppend(t, r, peerRecords(0, 3), 3)
	poisoned := peerRecords(3, 3)
	poisoned[1].Identifier = "poison"
	if added, err := r.Append(t.Context(), poisoned); !errors.Is(err, errPoison) || added != 0 {
		t.Fatalf("Append of a poisoned batch = %d, %v; want 0, errPoison", added, err)
	}
	checkHolds(t, r, 3)
	for seq := range 6 {
		if got := hasKey(t, l, fmt.Sprintf("T/rix/%s/%d", peer, seq)); got != (seq < 3) {
			t.Errorf("index key of record %d present = %v", seq, got)
		}
	}
	var n uint64
	if err := l.DB().View(func(txn *badger.Txn) (err error) { n, err = readCounter(txn, "T/batchcount"); return err }); err != nil || n != 3 {
		t.Errorf("batch count = %d, %v; want 3", n, err)
	}
}

func TestReplicaIndexerErrorOnTheFirstBatchLeavesNoReplica(t *testing.T) {
	opts := Options{ReplicaIndexers: func(string) ReplicaOptions {
		return ReplicaOptions{Indexers: []Indexer{rejectIdentifier{bad: "MB0001"}}}
	}}
	l, r := openTestReplica(t, opts)
	if _, err := r.Append(t.Context(), peerRecords(0, 3)); !errors.Is(err, errRejected) {
		t.Fatalf("Append = %v, want the indexer's error", err)
	}
	checkHolds(t, r, 0)
	if origins, _ := l.Replicas(); len(origins) != 0 {
		t.Errorf("Replicas = %v after a failed first batch", origins)
	}
}

func TestReplicaSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{})
	r, err := l.Replica(peer)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, r, peerRecords(0, 20), 20)
	other, _ := l.Replica("other.example")
	if _, err := other.Append(t.Context(), []Record{{Kind: "Profile", Origin: "other.example", Time: time.Unix(1, 0).UTC()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(t.Context(), testRecord(0)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l2 := openTestLog(t, dir, Options{})
	origins, err := l2.Replicas()
	if err != nil || fmt.Sprint(origins) != fmt.Sprint([]string{"other.example", peer}) {
		t.Fatalf("Replicas after reopen = %v, %v", origins, err)
	}
	if l2.Size() != 1 || !l2.HasReplica(peer) || l2.HasReplica("nobody") {
		t.Fatalf("reopened log: size %d, HasReplica %v/%v", l2.Size(), l2.HasReplica(peer), l2.HasReplica("nobody"))
	}
	r2, err := l2.Replica(peer)
	if err != nil {
		t.Fatal(err)
	}
	checkHolds(t, r2, 20)
	mustAppend(t, r2, peerRecords(15, 10), 5)
	checkHolds(t, r2, 25)
	// The time check resumes from the stored head.
	early := peerRecords(25, 1)
	early[0].Time = time.Unix(0, 0)
	if _, err := r2.Append(t.Context(), early); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("Append going back in time after reopen = %v", err)
	}
}

func TestConcurrentReplicaAppendsAreSerialized(t *testing.T) {
	opts := Options{ReplicaIndexers: func(string) ReplicaOptions {
		return ReplicaOptions{Indexers: []Indexer{countingIndexer{}}}
	}}
	l, r := openTestReplica(t, opts)
	const n, workers = 400, 8
	all := peerRecords(0, n)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			// Each worker offers overlapping chunks, from its own start.
			for from := w * 7 % 40; from < n; {
				to := min(n, from+13+w)
				_, err := r.Append(context.Background(), all[from:to])
				switch {
				case errors.Is(err, ErrGap):
					from = int(r.Size()) // someone else must fill in first
				case err != nil:
					errs <- err
					return
				default:
					from = to
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkHolds(t, r, n)
	var count uint64
	if err := l.DB().View(func(txn *badger.Txn) (err error) { count, err = readCounter(txn, "T/count"); return err }); err != nil || count != n {
		t.Errorf("indexer counted %d records, %v; want %d", count, err, n)
	}
}

func TestReplicaBatchesTooBigForOneTransactionAreSplit(t *testing.T) {
	small := func(o badger.Options) badger.Options { return o.WithMemTableSize(1 << 20).WithValueThreshold(64 << 10) }
	_, r := openTestReplica(t, Options{TuneBadger: small})
	recs := peerRecords(0, 40)
	for i := range recs {
		recs[i].Payload = []byte(strings.Repeat("p", 16<<10))
	}
	if added, err := r.Append(t.Context(), recs); err != nil || added != 40 {
		t.Fatalf("Append = %d, %v; want 40", added, err)
	}
	if r.Size() != 40 {
		t.Errorf("Size = %d", r.Size())
	}
	// A record whose derived state alone is too big fails alone.
	huge := func(string) ReplicaOptions {
		return ReplicaOptions{Indexers: []Indexer{bulkyIndexer{}, bulkyIndexer{}, bulkyIndexer{}}}
	}
	_, r2 := openTestReplica(t, Options{TuneBadger: small, ReplicaIndexers: huge})
	bulky := peerRecords(0, 2)
	bulky[1].Identifier = "bulky"
	if added, err := r2.Append(t.Context(), bulky); !errors.Is(err, badger.ErrTxnTooBig) || added != 1 {
		t.Errorf("Append with a record too big = %d, %v; want 1 added, ErrTxnTooBig", added, err)
	}
}

func TestClosedLogRefusesReplicaCalls(t *testing.T) {
	l, r := openTestReplica(t, Options{})
	mustAppend(t, r, peerRecords(0, 2), 2)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Append(t.Context(), peerRecords(2, 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v", err)
	}
	if _, err := r.Get(0); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close = %v", err)
	}
	if _, err := r.Range(t.Context(), Constraints{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Range after Close = %v", err)
	}
	if _, err := l.Replicas(); !errors.Is(err, ErrClosed) {
		t.Errorf("Replicas after Close = %v", err)
	}
	if _, err := l.Replica("new.example"); !errors.Is(err, ErrClosed) {
		t.Errorf("Replica after Close = %v", err)
	}
}

func TestCloseDuringReplicaAppendsReturnsEveryCaller(t *testing.T) {
	l := openTestLog(t, "", Options{})
	var wg sync.WaitGroup
	for w := range 4 {
		origin := fmt.Sprintf("peer%d.example", w)
		r, err := l.Replica(origin)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for from := 0; ; from += 50 {
				recs := peerRecords(from, 50)
				for i := range recs {
					recs[i].Origin = origin
				}
				if _, err := r.Append(context.Background(), recs); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Errorf("Append: %v, want ErrClosed", err)
					}
					return
				}
			}
		})
	}
	waitUntil(t, "replicas hold records", func() bool { o, _ := l.Replicas(); return len(o) == 4 })
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if g := goroutinesRunning("dgraph-io/badger", "intermesh/log."); g != "" {
		t.Errorf("goroutines left after Close:\n%s", g)
	}
}

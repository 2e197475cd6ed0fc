package log

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// openTestLog opens a log in dir (a new temporary directory if dir is "")
// and closes it when the test ends.
func openTestLog(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	opts.Dir = dir
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	l, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// testRecord returns a small valid record told apart by i.
func testRecord(i int) Record {
	return Record{
		Kind:       "Profile",
		Identifier: fmt.Sprintf("MB%04d", i),
		Account:    "alice@example.com",
		Payload:    []byte(fmt.Sprintf(`{"n":%d}`, i)),
	}
}

// sameRecord reports whether got is want with the fields the log assigns.
func sameRecord(got, want Record) bool {
	return got.Seq == want.Seq && got.Time.Equal(want.Time) && got.Kind == want.Kind &&
		got.Identifier == want.Identifier && got.Account == want.Account &&
		got.Origin == want.Origin && bytes.Equal(got.Payload, want.Payload)
}

// waitUntil waits for cond, which other goroutines make true, failing the
// test after 10 s.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		runtime.Gosched()
	}
}

// appendResult is what an asynchronous Append returned.
type appendResult struct {
	rec Record
	err error
}

// queueInOrder starts one Append per record, each only after the previous
// one is queued, so that they reach the sequencer in this order. The
// sequencer must be held (see gate) for the queue to fill.
func queueInOrder(t *testing.T, l *Log, recs ...Record) []chan appendResult {
	t.Helper()
	var out []chan appendResult
	for _, rec := range recs {
		ch := make(chan appendResult, 1)
		queued := len(l.reqs)
		go func() {
			got, err := l.Append(context.Background(), rec)
			ch <- appendResult{got, err}
		}()
		waitUntil(t, "the append is queued", func() bool { return len(l.reqs) == queued+1 })
		out = append(out, ch)
	}
	return out
}

// gate is a BatchIndexer that holds the sequencer inside its first batch
// until released, so that a test can queue appends behind it.
type gate struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate() *gate {
	return &gate{entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) IndexBatch(*badger.Txn, []Record) error {
	g.once.Do(func() {
		close(g.entered)
		<-g.release
	})
	return nil
}

// hold appends one record and returns when the sequencer is inside its
// batch; the returned channel gets that append's result.
func (g *gate) hold(t *testing.T, l *Log) chan appendResult {
	t.Helper()
	ch := make(chan appendResult, 1)
	go func() {
		got, err := l.Append(context.Background(), testRecord(-1))
		ch <- appendResult{got, err}
	}()
	<-g.entered
	return ch
}

func TestAppendAndGet(t *testing.T) {
	l := openTestLog(t, "", Options{Origin: "node0.example"})
	ctx := t.Context()
	var appended []Record
	for i := range 10 {
		rec := testRecord(i)
		if i == 3 {
			rec.Origin = "peer.example"
		}
		got, err := l.Append(ctx, rec)
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		appended = append(appended, got)
	}
	tests := []struct {
		name string
		seq  uint64
		want Record
		err  error
	}{
		{"the first record has sequence number 0", 0, appended[0], nil},
		{"a record without origin gets the log's origin", 5, appended[5], nil},
		{"a record with an origin keeps it", 3, appended[3], nil},
		{"the last record reads back", 9, appended[9], nil},
		{"a sequence number past the end is not found", 10, Record{}, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.Get(tt.seq)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Get(%d) error = %v, want %v", tt.seq, err, tt.err)
			}
			if !sameRecord(got, tt.want) {
				t.Errorf("Get(%d) = %+v, want %+v", tt.seq, got, tt.want)
			}
		})
	}
	for i, rec := range appended {
		if rec.Seq != uint64(i) {
			t.Errorf("record %d got seq %d", i, rec.Seq)
		}
		if i > 0 && rec.Time.Before(appended[i-1].Time) {
			t.Errorf("record %d time %s is before record %d's %s", i, rec.Time, i-1, appended[i-1].Time)
		}
		if rec.Time.Location() != time.UTC {
			t.Errorf("record %d time %s is not UTC", i, rec.Time)
		}
	}
	if appended[3].Origin != "peer.example" || appended[5].Origin != "node0.example" {
		t.Errorf("origins = %q, %q", appended[3].Origin, appended[5].Origin)
	}
	if l.Size() != 10 || !l.LastTime().Equal(appended[9].Time) {
		t.Errorf("Size, LastTime = %d, %s; want 10, %s", l.Size(), l.LastTime(), appended[9].Time)
	}
}

func TestAppendRefusesInvalidRecords(t *testing.T) {
	l := openTestLog(t, "", Options{})
	tests := []struct {
		name string
		rec  Record
	}{
		{"a record without kind", Record{Payload: []byte("{}")}},
		{"a record with an identifier over 64 KiB", Record{Kind: "Profile", Identifier: strings.Repeat("x", MaxFieldLen+1)}},
		{"a record with a payload over 16 MiB", Record{Kind: "Profile", Payload: make([]byte, MaxPayloadLen+1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := l.Append(t.Context(), tt.rec); !errors.Is(err, ErrInvalidRecord) {
				t.Errorf("Append error = %v, want ErrInvalidRecord", err)
			}
		})
	}
	if l.Size() != 0 {
		t.Errorf("Size = %d after refused appends", l.Size())
	}
}

func TestRecordTimesNeverGoBackwards(t *testing.T) {
	base := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	clock := []time.Time{base, base.Add(-time.Hour), base.Add(time.Second), base.Add(time.Second)}
	i := 0
	l := openTestLog(t, "", Options{Clock: func() time.Time { t := clock[i%len(clock)]; i++; return t }})
	want := []time.Time{base, base, base.Add(time.Second), base.Add(time.Second)}
	for n, w := range want {
		got, err := l.Append(t.Context(), testRecord(n))
		if err != nil {
			t.Fatal(err)
		}
		if !got.Time.Equal(w) {
			t.Errorf("record %d time = %s, want %s", n, got.Time, w)
		}
	}
}

func TestReopenKeepsRecordsAndContinuesTheSequence(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{})
	var last Record
	for i := range 5 {
		var err error
		if last, err = l.Append(t.Context(), testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, Options{})
	if l.Size() != 5 || !l.LastTime().Equal(last.Time) {
		t.Fatalf("after reopening: Size, LastTime = %d, %s; want 5, %s", l.Size(), l.LastTime(), last.Time)
	}
	got, err := l.Get(4)
	if err != nil || !sameRecord(got, last) {
		t.Fatalf("Get(4) = %+v, %v; want %+v", got, err, last)
	}
	next, err := l.Append(t.Context(), testRecord(5))
	if err != nil || next.Seq != 5 || next.Time.Before(last.Time) {
		t.Fatalf("Append after reopening = %+v, %v; want seq 5 not before %s", next, err, last.Time)
	}
}

func TestClosedLogRefusesEveryCall(t *testing.T) {
	l := openTestLog(t, "", Options{})
	if _, err := l.Append(t.Context(), testRecord(0)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"Append", func() error { _, err := l.Append(t.Context(), testRecord(1)); return err }},
		{"Get", func() error { _, err := l.Get(0); return err }},
		{"Range", func() error { _, err := l.Range(t.Context(), Constraints{}); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name+" on a closed log returns ErrClosed", func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, ErrClosed) {
				t.Errorf("error = %v, want ErrClosed", err)
			}
		})
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestCloseFinishesTheBatchAndFailsQueuedAppends(t *testing.T) {
	g := newGate()
	l := openTestLog(t, "", Options{BatchIndexers: []BatchIndexer{g}})
	held := g.hold(t, l)
	queued := queueInOrder(t, l, testRecord(1), testRecord(2), testRecord(3))
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	<-l.closing // Close has started: the sequencer will stop after its batch
	close(g.release)
	if r := <-held; r.err != nil || r.rec.Seq != 0 {
		t.Errorf("the append in the batch being committed = %+v, %v; want seq 0", r.rec, r.err)
	}
	for i, ch := range queued {
		if r := <-ch; !errors.Is(r.err, ErrClosed) {
			t.Errorf("queued append %d error = %v, want ErrClosed", i, r.err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-l.seqDone:
	default:
		t.Error("the sequencer goroutine is still running after Close")
	}
	// The test's own appenders may still be returning; nothing else may run.
	deadline := time.Now().Add(5 * time.Second)
	for stacks := goroutinesRunning("intermesh/log.", "dgraph-io/"); stacks != ""; stacks = goroutinesRunning("intermesh/log.", "dgraph-io/") {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines of the log or Badger still run after Close:\n%s", stacks)
		}
		runtime.Gosched()
	}
}

// goroutinesRunning returns the stacks of the other goroutines that run code
// of any of the given packages.
func goroutinesRunning(pkgs ...string) string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 {
			continue // this goroutine
		}
		for _, p := range pkgs {
			if strings.Contains(g, p) {
				found = append(found, g)
				break
			}
		}
	}
	return strings.Join(found, "\n\n")
}

func TestCloseDuringHeavyAppendsReturnsEveryCaller(t *testing.T) {
	l := openTestLog(t, "", Options{})
	const appenders = 64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var committed []Record
	started := make(chan struct{}, appenders)
	for range appenders {
		wg.Go(func() {
			started <- struct{}{}
			for i := 0; ; i++ {
				rec, err := l.Append(context.Background(), testRecord(i))
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				committed = append(committed, rec)
				mu.Unlock()
			}
		})
	}
	for range appenders {
		<-started
	}
	waitUntil(t, "some records are committed", func() bool { return l.Size() >= 500 })
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait() // every Append has returned
	dir := l.opts.Dir
	l = openTestLog(t, dir, Options{})
	if int(l.Size()) != len(committed) {
		t.Errorf("the log holds %d records, %d appends succeeded", l.Size(), len(committed))
	}
	for _, rec := range committed {
		if got, err := l.Get(rec.Seq); err != nil || !sameRecord(got, rec) {
			t.Fatalf("Get(%d) = %+v, %v; want %+v", rec.Seq, got, err, rec)
		}
	}
}

func TestAppendReturnsContextErrors(t *testing.T) {
	g := newGate()
	l := openTestLog(t, "", Options{BatchIndexers: []BatchIndexer{g}})
	t.Run("a cancelled context queues nothing", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := l.Append(ctx, testRecord(0)); !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want context.Canceled", err)
		}
	})
	t.Run("a deadline passing while the record waits returns the context's error", func(t *testing.T) {
		held := g.hold(t, l)
		ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
		defer cancel()
		if _, err := l.Append(ctx, testRecord(1)); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error = %v, want context.DeadlineExceeded", err)
		}
		close(g.release)
		if r := <-held; r.err != nil {
			t.Fatal(r.err)
		}
	})
}

func TestOpenChecksTheStoredSize(t *testing.T) {
	tests := []struct {
		name     string
		damage   func(txn *badger.Txn, ks keyspace) error
		wantErr  error
		wantSize uint64
	}{
		{
			name: "records stored past the size are deleted",
			damage: func(txn *badger.Txn, ks keyspace) error {
				rec := testRecord(9)
				rec.Seq, rec.Time = 3, time.Now()
				return txn.Set(ks.recordKey(3), rec.MarshalLeaf())
			},
			wantSize: 3,
		},
		{
			name:    "a missing last record is corruption",
			damage:  func(txn *badger.Txn, ks keyspace) error { return txn.Delete(ks.recordKey(2)) },
			wantErr: ErrCorrupt,
		},
		{
			name:    "a mangled head is corruption",
			damage:  func(txn *badger.Txn, ks keyspace) error { return txn.Set(ks.headKey(), []byte("short")) },
			wantErr: ErrCorrupt,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openTestLog(t, dir, Options{})
			for i := range 3 {
				if _, err := l.Append(t.Context(), testRecord(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.DB().Update(func(txn *badger.Txn) error { return tt.damage(txn, l.store.keys) }); err != nil {
				t.Fatal(err)
			}
			l.Close()
			l, err := Open(t.Context(), Options{Dir: dir, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer l.Close()
			if l.Size() != tt.wantSize {
				t.Errorf("Size = %d, want %d", l.Size(), tt.wantSize)
			}
			if _, err := l.Get(tt.wantSize); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get(%d) error = %v, want ErrNotFound", tt.wantSize, err)
			}
		})
	}
}

func TestGetReportsACorruptRecordBySeq(t *testing.T) {
	l := openTestLog(t, "", Options{})
	for i := range 3 {
		if _, err := l.Append(t.Context(), testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.DB().Update(func(txn *badger.Txn) error {
		return txn.Set(l.store.keys.recordKey(1), []byte("not a leaf"))
	}); err != nil {
		t.Fatal(err)
	}
	_, err := l.Get(1)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "record 1") {
		t.Errorf("Get(1) error = %v, want ErrCorrupt naming record 1", err)
	}
	if _, err := l.Range(t.Context(), Constraints{}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Range error = %v, want ErrCorrupt", err)
	}
}

func TestClassifyWriteErrorRecognisesAFullDisk(t *testing.T) {
	tests := []struct {
		name string
		err  error
		full bool
	}{
		{"a wrapped ENOSPC", fmt.Errorf("sync: %w", syscall.ENOSPC), true},
		{"an ENOSPC that Badger flattened into text", fmt.Errorf("writeRequests err: %v", syscall.ENOSPC), true},
		{"another I/O error", fmt.Errorf("sync: %w", syscall.EIO), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classifyWriteError(tt.err)
			if errors.Is(err, ErrDiskFull) != tt.full {
				t.Errorf("classifyWriteError(%v) = %v, disk full = %v", tt.err, err, tt.full)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("classifyWriteError(%v) = %v, lost the original error", tt.err, err)
			}
		})
	}
}

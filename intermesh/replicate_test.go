package intermesh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
)

// openTestLog opens a log for origin whose replicas keep their Merkle trees,
// as the node's does.
func openTestLog(t testing.TB, origin string) *log.Log {
	t.Helper()
	l, err := log.Open(context.Background(), log.Options{
		Dir:           t.TempDir(),
		Origin:        origin,
		Logger:        slog.New(slog.DiscardHandler),
		Indexers:      []log.Indexer{EvidenceIndexer{}},
		BatchIndexers: []log.BatchIndexer{merkle.NewTree(nil, []byte("local"))},
		ReplicaIndexers: func(o string) log.ReplicaOptions {
			return log.ReplicaOptions{BatchIndexers: []log.BatchIndexer{merkle.NewTree(nil, merkle.ReplicaPrefix(o))}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// startReplicating creates and runs a Mesh for member i that replicates
// into l; the returned stop cancels Run, waits for it and closes the Mesh.
func startReplicating(t testing.TB, fed *config.Federation, keys []ed25519.PrivateKey, i int, l *log.Log, opts ...func(*Config)) (*Mesh, func()) {
	t.Helper()
	cfg := Config{
		Federation: fed, Origin: fed.Members[i].Origin, Key: keys[i], Listen: testListen,
		DB: l.DB(), Log: l, CatchUpTimeout: 200 * time.Millisecond,
	}
	for _, o := range opts {
		o(&cfg)
	}
	m, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return within 5s of cancel")
		}
		m.Close()
	}
	t.Cleanup(stop)
	return m, stop
}

func testRecords(origin string, first, n uint64, payload int) []log.Record {
	recs := make([]log.Record, n)
	for i := range recs {
		seq := first + uint64(i)
		recs[i] = log.Record{
			Seq: seq, Time: time.Unix(0, int64(seq)).UTC(), Kind: "Profile",
			Identifier: fmt.Sprintf("id%d", seq), Origin: origin, Payload: bytes.Repeat([]byte{'x'}, payload),
		}
	}
	return recs
}

func TestABatchSignedByItsOriginParsesAndAnyChangeIsRejected(t *testing.T) {
	fed, keys := testFederation(t, 2)
	m, err := newMesh(Config{Federation: fed, Origin: fed.Members[0].Origin, Key: keys[0], Listen: testListen})
	if err != nil {
		t.Fatal(err)
	}
	origin := fed.Members[1].Origin
	b := batchesOf(origin, testRecords(origin, 7, 3, 10))[0]
	data := encodeBatch(fed.Name, b, keys[1])
	got, err := m.parseBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.origin != origin || got.first != 7 || len(got.recs) != 3 || got.recs[2].Identifier != "id9" {
		t.Fatalf("parsed %q from %d, %d records", got.origin, got.first, len(got.recs))
	}
	bad := map[string][]byte{
		"signed by another member": encodeBatch(fed.Name, b, keys[0]),
		"of another federation":    encodeBatch("other", b, keys[1]),
		"with a changed byte":      func() []byte { d := bytes.Clone(data); d[40] ^= 1; return d }(),
		"truncated":                data[:len(data)-1],
		"claiming another first":   encodeBatch(fed.Name, &recordsBatch{origin: origin, first: 8, leaves: b.leaves}, keys[1]),
		"of records of another log": encodeBatch(fed.Name, &recordsBatch{origin: origin, first: 0,
			leaves: batchesOf(fed.Members[0].Origin, testRecords(fed.Members[0].Origin, 0, 1, 1))[0].leaves}, keys[1]),
	}
	for name, d := range bad {
		if _, err := m.parseBatch(d); !errors.Is(err, ErrInvalidBatch) {
			t.Errorf("a batch %s: got %v, want ErrInvalidBatch", name, err)
		}
	}
}

func FuzzParseBatch(f *testing.F) {
	fed, keys := testFederation(f, 2)
	m, err := newMesh(Config{Federation: fed, Origin: fed.Members[0].Origin, Key: keys[0], Listen: testListen})
	if err != nil {
		f.Fatal(err)
	}
	origin := fed.Members[1].Origin
	f.Add(encodeBatch(fed.Name, batchesOf(origin, testRecords(origin, 0, 2, 5))[0], keys[1]))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := m.parseBatch(data)
		if err != nil {
			return
		}
		if !bytes.Equal(append(b.body(), data[len(data)-ed25519.SignatureSize:]...), data) {
			t.Fatal("a batch that parses does not encode back to its bytes")
		}
	})
}

func TestRecordsReplicateByGossipAndTransferAndRunStopsEveryGoroutine(t *testing.T) {
	baseline := runtime.NumGoroutine()
	fed, keys := testFederation(t, 2)
	la, lb := openTestLog(t, fed.Members[0].Origin), openTestLog(t, fed.Members[1].Origin)
	// Records appended before the Mesh runs are not gossiped: B must
	// fetch them over Transfer.
	for i := range 50 {
		if _, err := la.Append(t.Context(), log.Record{Kind: "Profile", Identifier: fmt.Sprint(i), Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	a, stopA := startReplicating(t, fed, keys, 0, la)
	b, stopB := startReplicating(t, fed, keys, 1, lb)
	connect(t, []*node{{Mesh: a}, {Mesh: b}})
	for i := range 20 {
		if _, err := la.Append(t.Context(), log.Record{Kind: "Profile", Identifier: fmt.Sprint("late", i), Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	// A's checkpoint makes B fetch the gap and verify.
	tree := merkle.NewTree(la.DB(), []byte("local"))
	signer, err := merkle.NewSigner(fed.Members[0].Origin, keys[0])
	if err != nil {
		t.Fatal(err)
	}
	r := uint64(time.Now().Unix())
	waitFor(t, 5*time.Second, "A's records in B's replica", func() bool {
		return b.Replicas()[fed.Members[0].Origin].Size == 70
	})
	signed, _, err := tree.CloseEpoch(t.Context(), r, time.Now(), signer, fed.Members[0].Origin)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.PublishCheckpoint(t.Context(), r, signed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "B's replica verified", func() bool {
		return b.Replicas()[fed.Members[0].Origin].VerifiedSize == 70
	})
	stopA()
	stopB()
	la.Close()
	lb.Close()
	waitFor(t, 5*time.Second, "every goroutine stopped", func() bool {
		return runtime.NumGoroutine() <= baseline+2
	})
}

func TestAReplicaThatDoesNotMatchItsOriginsCheckpointIsNoLongerTrusted(t *testing.T) {
	fed, keys := testFederation(t, 2)
	origin := fed.Members[0].Origin
	lb := openTestLog(t, fed.Members[1].Origin)
	b, _ := startReplicating(t, fed, keys, 1, lb)
	rep, err := lb.Replica(origin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rep.Append(t.Context(), testRecords(origin, 0, 5, 3)); err != nil {
		t.Fatal(err)
	}
	// A checkpoint of 5 records whose root is not the replica's.
	tl := newTestLog(t, origin, keys[0])
	r := uint64(time.Now().Unix())
	n := tl.close(t, r, 5)
	hc, err := b.verifyCheckpoint(n)
	if err != nil {
		t.Fatal(err)
	}
	b.repl.offerCheckpoint(hc)
	waitFor(t, 5*time.Second, "the replica distrusted", func() bool {
		return strings.Contains(b.Replicas()[origin].Untrusted, "inconsistent")
	})
}

// BenchmarkCatchUpOverTransfer measures how fast a member fills an empty
// replica of 100,000 records (about 200 bytes each) from a peer over
// /intermesh/transfer/1: pages fetched while the previous one is appended,
// each appended durably with the replica's Merkle tree. Run it with
//
//	go test ./intermesh/ -run XXX -bench CatchUpOverTransfer -benchtime 3x
func BenchmarkCatchUpOverTransfer(b *testing.B) {
	const n = 100000
	fed, keys := testFederation(b, 3)
	origin := fed.Members[2].Origin // never runs: A serves its replica
	la := openTestLog(b, fed.Members[0].Origin)
	rep, err := la.Replica(origin)
	if err != nil {
		b.Fatal(err)
	}
	for first := uint64(0); first < n; first += 5000 {
		if _, err := rep.Append(context.Background(), testRecords(origin, first, 5000, 150)); err != nil {
			b.Fatal(err)
		}
	}
	a, _ := startReplicating(b, fed, keys, 0, la)
	total := 0.0
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		lb := openTestLog(b, fed.Members[1].Origin)
		m, stop := startReplicating(b, fed, keys, 1, lb)
		connect(b, []*node{{Mesh: a}, {Mesh: m}})
		rs := m.repl.origins[origin]
		b.StartTimer()
		start := time.Now()
		if err := m.repl.pull(context.Background(), rs, a.ID()); err != nil {
			b.Fatal(err)
		}
		total += time.Since(start).Seconds()
		b.StopTimer()
		if got := rs.rep.Size(); got != n {
			b.Fatalf("replica holds %d records, want %d", got, n)
		}
		stop()
		lb.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/total, "entries/s")
}

func TestBatchesWaitForTheOnesBeforeThemAndContinuingOnesAreMerged(t *testing.T) {
	batch := func(first, n uint64) *recordsBatch {
		return &recordsBatch{origin: "a", first: first, recs: testRecords("a", first, n, 8)}
	}
	span := func(b *recordsBatch) [2]uint64 {
		if b == nil {
			return [2]uint64{}
		}
		for i, r := range b.recs {
			if r.Seq != b.first+uint64(i) {
				t.Fatalf("record %d of a batch from %d has seq %d", i, b.first, r.Seq)
			}
		}
		return [2]uint64{b.first, b.first + uint64(len(b.recs))}
	}
	tests := []struct {
		name    string
		max     int
		held    []*recordsBatch
		size    uint64
		want    [][2]uint64 // the batches next returns, in turn, as [first, end)
		dropped []uint64    // firsts of the batches add dropped
		left    int         // batches held at the end
	}{
		{"nothing held", 8, nil, 10, nil, nil, 0},
		{"out of order, merged in order", 8, []*recordsBatch{batch(14, 2), batch(10, 2), batch(12, 2)}, 10, [][2]uint64{{10, 16}}, nil, 0},
		{"a gap waits", 8, []*recordsBatch{batch(10, 2), batch(20, 1), batch(21, 1)}, 10, [][2]uint64{{10, 12}}, nil, 2},
		{"only later batches wait", 8, []*recordsBatch{batch(20, 1)}, 10, nil, nil, 1},
		{"held ones are forgotten", 8, []*recordsBatch{batch(2, 3), batch(5, 5)}, 10, nil, nil, 0},
		{"an overlap is appended whole", 8, []*recordsBatch{batch(8, 4)}, 10, [][2]uint64{{8, 12}}, nil, 0},
		{"the longer of two with one first", 8, []*recordsBatch{batch(10, 1), batch(10, 3), batch(10, 2)}, 10, [][2]uint64{{10, 13}}, nil, 0},
		{"the one furthest ahead is dropped", 2, []*recordsBatch{batch(30, 1), batch(10, 1), batch(20, 1)}, 10, [][2]uint64{{10, 11}}, []uint64{30}, 1},
		{"a new one furthest ahead is dropped", 2, []*recordsBatch{batch(10, 1), batch(20, 1), batch(30, 1)}, 10, [][2]uint64{{10, 11}}, []uint64{30}, 1},
		{"at most maxMergedRecords", 8, []*recordsBatch{batch(10, maxMergedRecords), batch(10+maxMergedRecords, 1)}, 10,
			[][2]uint64{{10, 10 + maxMergedRecords}, {10 + maxMergedRecords, 11 + maxMergedRecords}}, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := newReorder(tc.max)
			var dropped []uint64
			for _, b := range tc.held {
				if d := q.add(b); d != nil {
					dropped = append(dropped, d.first)
				}
			}
			if !slices.Equal(dropped, tc.dropped) {
				t.Errorf("dropped %v, want %v", dropped, tc.dropped)
			}
			size := tc.size
			var got [][2]uint64
			for b := q.next(size); b != nil; b = q.next(size) {
				got = append(got, span(b))
				size = span(b)[1]
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("next gave %v, want %v", got, tc.want)
			}
			if q.len() != tc.left {
				t.Errorf("%d batches left, want %d", q.len(), tc.left)
			}
			if r := q.reach(size); r != size {
				t.Errorf("the batches left reach %d from %d; only continuing ones were left out", r, size)
			}
		})
	}
	t.Run("reach follows the held batches without a gap", func(t *testing.T) {
		q := newReorder(8)
		for _, b := range []*recordsBatch{batch(12, 3), batch(10, 2), batch(14, 4), batch(30, 1)} {
			q.add(b)
		}
		for _, c := range []struct{ size, want uint64 }{{10, 18}, {9, 9}, {16, 18}, {18, 18}, {30, 31}, {40, 40}} {
			if got := q.reach(c.size); got != c.want {
				t.Errorf("reach(%d) = %d, want %d", c.size, got, c.want)
			}
		}
	})
	t.Run("merging leaves the batches held unchanged", func(t *testing.T) {
		q := newReorder(8)
		a, b := batch(10, 2), batch(12, 2)
		q.add(a)
		q.add(b)
		if got := span(q.next(10)); got != [2]uint64{10, 14} {
			t.Fatalf("next gave %v, want [10 14]", got)
		}
		if len(a.recs) != 2 || len(b.recs) != 2 {
			t.Errorf("batches changed: %d and %d records", len(a.recs), len(b.recs))
		}
	})
}

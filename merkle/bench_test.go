package merkle

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/intermesh/intermesh/log"
)

// benchLeaves is the size of the shared benchmark tree.
const benchLeaves = 1 << 20

// bigTree is the 1M-leaf tree shared by the benchmarks of one test process.
// It is built on first use, so `go test` without -bench never builds it,
// and removed by TestMain.
type bigTree struct {
	once  sync.Once
	dir   string
	db    *badger.DB
	tree  *Tree
	err   error
	round uint64 // the next round BenchmarkCloseEpoch closes
}

var shared bigTree

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.db != nil {
		shared.db.Close()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// bigTreeFor returns the shared tree, building it the first time.
func bigTreeFor(b *testing.B) *Tree {
	b.Helper()
	shared.once.Do(func() { shared.err = shared.build() })
	if shared.err != nil {
		b.Fatal(shared.err)
	}
	return shared.tree
}

func (bt *bigTree) build() error {
	dir, err := os.MkdirTemp("", "merkle-bench-")
	if err != nil {
		return err
	}
	bt.dir = dir
	bt.db, err = badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true))
	if err != nil {
		return err
	}
	bt.tree = NewTree(bt.db, nil)
	start := time.Now()
	const batch = 4096
	hashes := make([][]byte, batch)
	for first := uint64(0); first < benchLeaves; first += batch {
		for i := range hashes {
			h := sha256.Sum256(binary.BigEndian.AppendUint64(nil, first+uint64(i)))
			hashes[i] = h[:]
		}
		if err := bt.db.Update(func(txn *badger.Txn) error { return bt.tree.AppendLeafHashes(txn, first, hashes) }); err != nil {
			return fmt.Errorf("build benchmark tree at %d: %w", first, err)
		}
	}
	fmt.Fprintf(os.Stderr, "built a %d-leaf tree in %v\n", benchLeaves, time.Since(start).Round(time.Millisecond))
	bt.round = 1
	return nil
}

// reportPercentiles reports the median and 99th percentile of durations.
func reportPercentiles(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(d[len(d)*99/100].Nanoseconds())/1e3, "p99-µs")
}

func BenchmarkInclusionProof(b *testing.B) {
	tree := bigTreeFor(b)
	rng := rand.New(rand.NewPCG(1, 2))
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := tree.InclusionProof(rng.Uint64N(benchLeaves), benchLeaves); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, d)
}

func BenchmarkConsistencyProof(b *testing.B) {
	tree := bigTreeFor(b)
	rng := rand.New(rand.NewPCG(3, 4))
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		size2 := 1 + rng.Uint64N(benchLeaves)
		size1 := 1 + rng.Uint64N(size2)
		start := time.Now()
		if _, err := tree.ConsistencyProof(size1, size2); err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, d)
}

func BenchmarkRoot(b *testing.B) {
	tree := bigTreeFor(b)
	rng := rand.New(rand.NewPCG(5, 6))
	b.ResetTimer()
	for range b.N {
		if _, err := tree.Root(1 + rng.Uint64N(benchLeaves-1)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCloseEpoch measures closing an epoch (read the tree's state,
// sign the checkpoint, store it, fsync) on the 1M-leaf tree after it grew
// by closeGrowth leaves since the previous close, as between two rounds of
// a busy node; the growth is appended outside the timer.
func BenchmarkCloseEpoch(b *testing.B) {
	const closeGrowth = 256
	tree := bigTreeFor(b)
	s, err := NewSigner(exampleOrigin, testKey(0))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	d := make([]time.Duration, 0, b.N)
	hashes := make([][]byte, closeGrowth)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		size, err := tree.Size()
		if err != nil {
			b.Fatal(err)
		}
		for i := range hashes {
			h := sha256.Sum256(binary.BigEndian.AppendUint64(nil, size+uint64(i)))
			hashes[i] = h[:]
		}
		if err := shared.db.Update(func(txn *badger.Txn) error { return tree.AppendLeafHashes(txn, size, hashes) }); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		_, cp, err := tree.CloseEpoch(ctx, shared.round, time.Now(), s, exampleOrigin)
		if err != nil {
			b.Fatal(err)
		}
		d = append(d, time.Since(start))
		if cp.Size != size+closeGrowth {
			b.Fatalf("closed at size %d, want %d", cp.Size, size+closeGrowth)
		}
		shared.round++
	}
	b.StopTimer()
	reportPercentiles(b, d)
}

// BenchmarkAppendWithTree measures durable appends through the real log
// with the Merkle tree written in the same transactions (the log's
// BatchIndexer), from 1, 16 and 256 concurrent appenders, 256-byte
// payloads: the log + tree path, between the bare log (log's
// BenchmarkAppend) and the node's whole path (portal's
// BenchmarkNodeAppendPath, which adds the portal's indexes).
func BenchmarkAppendWithTree(b *testing.B) {
	for _, appenders := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			l, err := log.Open(context.Background(), log.Options{
				Dir:           b.TempDir(),
				Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
				BatchIndexers: []log.BatchIndexer{NewTree(nil, []byte("local"))},
				Origin:        exampleOrigin,
			})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			payload := make([]byte, 256)
			for i := range payload {
				payload[i] = byte(i)
			}
			rec := log.Record{Kind: "Profile", Identifier: "MBENCH-0000-0000", Account: "bench@example.com", Payload: payload}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range appenders {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if _, err := l.Append(context.Background(), rec); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
			if st := l.Stats(); st.Batches > 0 {
				b.ReportMetric(float64(st.Records)/float64(st.Batches), "records/batch")
			}
		})
	}
}

// BenchmarkAppendLeaves measures the per-leaf cost of IndexBatch on a fresh
// tree: ns/op is per leaf including the synced commit of the batch (tree
// writes only, no log records), index-ns/leaf is IndexBatch alone.
func BenchmarkAppendLeaves(b *testing.B) {
	for _, batch := range []int{256, 1024} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			db, err := badger.Open(badger.DefaultOptions(b.TempDir()).WithLogger(nil).WithSyncWrites(true))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			tree := NewTree(db, nil)
			var indexing time.Duration
			b.ResetTimer()
			for first := 0; first < b.N; first += batch {
				b.StopTimer()
				recs := testRecords(uint64(first), min(batch, b.N-first))
				b.StartTimer()
				txn := db.NewTransaction(true)
				start := time.Now()
				if err := tree.IndexBatch(txn, recs); err != nil {
					b.Fatal(err)
				}
				indexing += time.Since(start)
				if err := txn.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(indexing.Nanoseconds())/float64(b.N), "index-ns/leaf")
		})
	}
}

package vmap

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// BenchmarkBadgerProveAt measures lookup proofs generated from a map kept
// in Badger, as a node serves them: a tree of 1M keys in a BadgerStore
// (built once, committed every 100,000 Sets), reopened from the store
// (OpenTree loads every bucket once to compute the top), then ProveAt of
// the last committed version for keys present and absent, each proof
// reading its bucket from Badger. It reports the p50 and p99 time per
// proof and the mean and largest encoded proof, and the Go heap one map
// holds: once opened (MiB-opened: the top levels and the Store's index),
// and what DefaultKeep busy epochs of 10,000 changed keys each add
// (MiB-kept). Build time is not measured. Run it alone:
//
//	go test ./vmap/ -run XXX -bench BadgerProveAt -benchtime 20000x
func BenchmarkBadgerProveAt(b *testing.B) {
	const n, commitEvery = 1_000_000, 100_000
	db := openBadger(b, 0)
	store := NewBadgerStore(db, StorePrefix("local"))
	tr, err := store.Open(DefaultKeep)
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		if err := tr.Set(benchKey(i), Value{}.Append(uint64(i), Hash{byte(i), byte(i >> 8), byte(i >> 16)})); err != nil {
			b.Fatal(err)
		}
		if (i+1)%commitEvery == 0 {
			if _, err := tr.CommitAt(uint64(i + 1)); err != nil {
				b.Fatal(err)
			}
		}
	}
	tr = nil
	before := heapAfterGC()
	reopenStart := time.Now()
	tr, err = NewBadgerStore(db, StorePrefix("local")).Open(DefaultKeep)
	if err != nil {
		b.Fatal(err)
	}
	reopen := time.Since(reopenStart)
	opened := heapAfterGC() - before
	root, err := tr.RootAt(n)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	times := make([]time.Duration, b.N)
	var size, largest int
	b.ResetTimer()
	for i := range b.N {
		k := benchKey(rng.IntN(2 * n)) // half of them absent
		start := time.Now()
		p, err := tr.ProveAt(n, k)
		times[i] = time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		enc, err := p.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		size, largest = size+len(enc), max(largest, len(enc))
		if i < 100 {
			if _, _, err := Verify(root, k, p); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	kept := heapOfKeptVersions(b, tr, n)
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds()), "µs-p50")
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds()), "µs-p99")
	b.ReportMetric(float64(size)/float64(b.N), "B/proof")
	b.ReportMetric(float64(largest), "B-max")
	b.ReportMetric(reopen.Seconds(), "s-reopen")
	b.ReportMetric(float64(opened)/(1<<20), "MiB-opened")
	b.ReportMetric(float64(kept)/(1<<20), "MiB-kept")
}

// heapOfKeptVersions commits DefaultKeep more versions of tr, each after
// 10,000 Sets of existing keys (a busy epoch), and returns the heap they
// added: the kept versions' undo nodes, and the Store's index of them.
func heapOfKeptVersions(b *testing.B, tr *Tree, n int) uint64 {
	b.Helper()
	before := heapAfterGC()
	v := uint64(n)
	for range DefaultKeep {
		for j := range 10_000 {
			k := benchKey(int(v+uint64(j)) % n)
			if err := tr.Set(k, Value{}.Append(v, Hash{byte(j)})); err != nil {
				b.Fatal(err)
			}
		}
		v += 10_000
		if _, err := tr.CommitAt(v); err != nil {
			b.Fatal(err)
		}
	}
	held := heapAfterGC() - before
	if _, err := tr.RootAt(v); err != nil {
		b.Fatal(err)
	}
	return held
}

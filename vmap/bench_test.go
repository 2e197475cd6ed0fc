package vmap

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// benchKeys is how many keys the benchmarks' trees hold.
const benchKeys = 1_000_000

// benchKey returns the profile key of the i-th benchmark name.
func benchKey(i int) Key {
	k, err := KeyOf(Profile, fmt.Sprintf("bench-%d", i))
	if err != nil {
		panic(err)
	}
	return k
}

// buildBenchTree returns a tree in a MemStore of the first n benchmark
// keys, each set by one record, committed as version 1, and the keys.
func buildBenchTree(n int) (*Tree, []Key) {
	tr, keys := NewTree(), make([]Key, n)
	for i := range keys {
		keys[i] = benchKey(i)
		if err := tr.Set(keys[i], Value{}.Append(uint64(i), Hash{byte(i), byte(i >> 8), byte(i >> 16)})); err != nil {
			panic(err)
		}
	}
	if _, _, err := tr.Commit(); err != nil {
		panic(err)
	}
	return tr, keys
}

// A read-only 1M-key fixture for Root, Get, Prove and Verify, and a
// separate one for the Set benchmarks, which change it; each is built once
// per test binary, on first use.
var (
	readTree = sync.OnceValues(func() (*Tree, []Key) { return buildBenchTree(benchKeys) })
	setTree  = sync.OnceValues(func() (*Tree, []Key) { return buildBenchTree(benchKeys) })
)

// BenchmarkSetNew inserts keys not yet in a tree of 1M keys (the tree grows
// by b.N keys over the run).
func BenchmarkSetNew(b *testing.B) {
	tr, _ := setTree()
	fresh := make([]Key, b.N)
	for i := range fresh {
		fresh[i] = benchKey(benchKeys + tr.Len() + i)
	}
	v := Value{}.Append(1, Hash{1})
	b.ResetTimer()
	for i := range b.N {
		if err := tr.Set(fresh[i], v); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(tr.Len()), "keys")
}

// BenchmarkSetExisting gives a new value to keys of a tree of 1M keys.
func BenchmarkSetExisting(b *testing.B) {
	tr, keys := setTree()
	v := Value{}.Append(2, Hash{2})
	b.ResetTimer()
	for i := range b.N {
		if err := tr.Set(keys[i%len(keys)], v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommit sets 1,000 existing keys of a tree of 1M keys and
// commits them as a new version: the stale buckets' and paths' hashes are
// recomputed once each and the changed buckets saved. It reports how many
// nodes of the top the version before keeps as they were (each about 40
// bytes and a map slot).
func BenchmarkCommit(b *testing.B) {
	tr, keys := setTree()
	const batch = 1000
	b.ResetTimer()
	for i := range b.N {
		v := Value{}.Append(uint64(i), Hash{3})
		for j := range batch {
			if err := tr.Set(keys[(i*batch+j)*7919%len(keys)], v); err != nil {
				b.Fatal(err)
			}
		}
		if _, _, err := tr.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(batch, "sets/op")
	b.ReportMetric(float64(len(tr.kept[len(tr.kept)-2].undo)), "top-nodes-kept/op")
}

// BenchmarkGet looks up present keys of a tree of 1M keys.
func BenchmarkGet(b *testing.B) {
	tr, keys := readTree()
	b.ResetTimer()
	for i := range b.N {
		if _, ok := tr.Get(keys[i*7919%len(keys)]); !ok {
			b.Fatal("key absent")
		}
	}
}

// BenchmarkRoot returns the root of a tree of 1M keys.
func BenchmarkRoot(b *testing.B) {
	tr, _ := readTree()
	b.ResetTimer()
	for range b.N {
		_ = tr.Root()
	}
}

// BenchmarkProve generates inclusion proofs in a tree of 1M keys, and
// reports their mean depth and encoded size.
func BenchmarkProve(b *testing.B) {
	tr, keys := readTree()
	b.ResetTimer()
	for i := range b.N {
		_ = tr.Prove(keys[i*7919%len(keys)])
	}
	b.StopTimer()
	reportProofSizes(b, tr, keys[:1000])
}

// BenchmarkProveAt generates inclusion proofs under the committed version
// of a tree of 1M keys.
func BenchmarkProveAt(b *testing.B) {
	tr, keys := readTree()
	v := tr.Version()
	b.ResetTimer()
	for i := range b.N {
		if _, err := tr.ProveAt(v, keys[i*7919%len(keys)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProveAbsent generates absence proofs in a tree of 1M keys, and
// reports their mean depth and encoded size.
func BenchmarkProveAbsent(b *testing.B) {
	tr, _ := readTree()
	absent := make([]Key, 1000)
	for i := range absent {
		absent[i] = benchKey(-1 - i)
	}
	b.ResetTimer()
	for i := range b.N {
		_ = tr.Prove(absent[i%len(absent)])
	}
	b.StopTimer()
	reportProofSizes(b, tr, absent)
}

// reportProofSizes reports the mean depth, the mean encoded size and the
// largest encoded size of the proofs of keys in tr.
func reportProofSizes(b *testing.B, tr *Tree, keys []Key) {
	depth, size, largest := 0, 0, 0
	for _, k := range keys {
		p := tr.Prove(k)
		enc, err := p.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		depth, size, largest = depth+p.Depth, size+len(enc), max(largest, len(enc))
	}
	b.ReportMetric(float64(depth)/float64(len(keys)), "depth/proof")
	b.ReportMetric(float64(size)/float64(len(keys)), "bytes/proof")
	b.ReportMetric(float64(largest), "max-bytes/proof")
}

// BenchmarkVerify verifies inclusion proofs from a tree of 1M keys.
func BenchmarkVerify(b *testing.B) {
	tr, keys := readTree()
	root := tr.Root()
	probe := keys[:1000]
	proofs := make([]*Proof, len(probe))
	for i, k := range probe {
		proofs[i] = tr.Prove(k)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, ok, err := Verify(root, probe[i%len(probe)], proofs[i%len(probe)]); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkBuildHeap builds a tree of 1M keys in a MemStore per iteration
// and reports the Go heap it holds once built and committed, after a
// garbage collection, and apart from it the memory the top levels take
// whatever the Store (BenchmarkCommit reports what a kept version adds).
func BenchmarkBuildHeap(b *testing.B) {
	var held uint64
	for range b.N {
		before := heapAfterGC()
		tr, _ := buildBenchTree(benchKeys) // the keys slice is garbage at once
		held = heapAfterGC() - before
		runtime.KeepAlive(tr)
	}
	b.ReportMetric(float64(held)/(1<<20), "MiB-heap")
	b.ReportMetric(float64(held)/benchKeys, "heap-bytes/key")
	b.ReportMetric(float64(TopBytes)/(1<<20), "MiB-top")
}

// heapAfterGC returns the bytes of live heap objects after a collection.
func heapAfterGC() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkBadgerBuild sets badgerBenchKeys keys (not benchKeys: 1M keys
// took over three minutes on a busy machine), committing every
// badgerBenchCommitEvery Sets.
const (
	badgerBenchKeys        = 200_000
	badgerBenchCommitEvery = 10_000
)

// BenchmarkBadgerBuild builds a tree of 200k keys in a BadgerStore (a fresh
// database with Badger's default options) per iteration, committing it
// every 10,000 Sets at the version of how many keys are set, as a node
// commits its map at its log's sizes. It reports the time per Set,
// amortized over the Loads, Commits and Forgets, and the Go heap in use
// once built, after a garbage collection: the tree's top and kept
// versions, and Badger's own memtables and caches.
func BenchmarkBadgerBuild(b *testing.B) {
	keys := make([]Key, badgerBenchKeys)
	for i := range keys {
		keys[i] = benchKey(i)
	}
	var held uint64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		before := heapAfterGC()
		db := openBadger(b, 0)
		tr, err := NewBadgerStore(db, StorePrefix("local")).Open(DefaultKeep)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for i, k := range keys {
			if err := tr.Set(k, Value{}.Append(uint64(i), Hash{byte(i), byte(i >> 8), byte(i >> 16)})); err != nil {
				b.Fatal(err)
			}
			if (i+1)%badgerBenchCommitEvery == 0 {
				if _, err := tr.CommitAt(uint64(i + 1)); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StopTimer()
		held = heapAfterGC() - before
		runtime.KeepAlive(tr)
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*badgerBenchKeys), "ns/set")
	b.ReportMetric(float64(held)/(1<<20), "MiB-heap")
}

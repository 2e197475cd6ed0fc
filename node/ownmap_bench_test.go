package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal"
)

// BenchmarkMapAtEpochClose measures what the verifiable map costs the node
// per epoch of 1,000 and of 10,000 records, each setting a key (a new name for a quarter
// of them, a new version of an existing one for the rest): the follower's
// part, bringing the map (in Badger) forward over the records as they are
// appended (µs/record, to compare with the append path), the epoch
// close's part, committing it under the checkpoint's size in memory
// (ms/commit), and the write of that commit to Badger the follower makes
// after the close, outside it (ms/save). With left=N, the follower leaves
// the epoch's last N records to the close, as the node's does for the
// records of its last interval (an eighth of the period: at a steady rate,
// at most an eighth of the epoch's records).
// Run it alone:
//
//	go test ./node/ -run XXX -bench MapAtEpochClose -benchtime 20x
func BenchmarkMapAtEpochClose(b *testing.B) {
	for _, perEpoch := range []int{1000, 10_000} {
		b.Run(fmt.Sprintf("records=%d", perEpoch), func(b *testing.B) { benchMapEpochs(b, perEpoch, 0) })
		b.Run(fmt.Sprintf("records=%d,left=%d", perEpoch, perEpoch/8), func(b *testing.B) { benchMapEpochs(b, perEpoch, perEpoch/8) })
	}
}

// benchMapEpochs is BenchmarkMapAtEpochClose with perEpoch records an
// epoch, the last left of them added to the map by the close.
func benchMapEpochs(b *testing.B, perEpoch, left int) {
	ctx := context.Background()
	l, err := log.Open(ctx, log.Options{Dir: b.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Origin: "bench/map"})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	total := b.N * perEpoch
	names := total / 4
	for i := range total {
		r := log.Record{Kind: portal.KindProfile, Identifier: fmt.Sprintf("PROFILE-%d", i%max(names, 1)), Payload: []byte(`{}`)}
		if i%4 == 0 {
			r.Kind, r.Account = portal.KindAccount, fmt.Sprintf("user%d@example.com", i)
		}
		if _, err := l.Append(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	metrics, err := newNodeMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	m, err := openOwnMap(l, metrics)
	if err != nil {
		b.Fatal(err)
	}
	// Each epoch: the follower's part (the records, as they arrive), then
	// the close's part (the commit under the checkpoint's size), then the
	// follower's save of the commit.
	var follow, commit, save time.Duration
	b.ResetTimer()
	for i := range b.N {
		size := uint64((i + 1) * perEpoch)
		start := time.Now()
		if err := m.lm.Follow(ctx, l, size-uint64(left)); err != nil {
			b.Fatal(err)
		}
		m.lm.Root() // as the follower does
		mid := time.Now()
		if _, err := m.root(ctx, size); err != nil {
			b.Fatal(err)
		}
		end := time.Now()
		if err := m.store.Flush(); err != nil {
			b.Fatal(err)
		}
		follow, commit, save = follow+mid.Sub(start), commit+end.Sub(mid), save+time.Since(end)
	}
	b.ReportMetric(float64(follow.Microseconds())/float64(total-b.N*left), "µs/record")
	b.ReportMetric(float64(commit.Microseconds())/1000/float64(b.N), "ms/commit")
	b.ReportMetric(float64(save.Microseconds())/1000/float64(b.N), "ms/save")
	b.ReportMetric(float64(m.lm.Tree().Len()), "keys")
}

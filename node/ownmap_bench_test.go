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

// BenchmarkMapAtEpochClose measures what the verifiable map adds to an
// epoch close: bringing the node's map (in Badger) forward over 10,000 new
// records, each setting a key (a new name for a quarter of them, a new
// version of an existing one for the rest), and committing it. Each
// iteration is one epoch of 10,000 records; the figure to compare with the
// append path is µs/record. Run it alone:
//
//	go test ./node/ -run XXX -bench MapAtEpochClose -benchtime 20x
func BenchmarkMapAtEpochClose(b *testing.B) {
	const perEpoch = 10_000
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
	root := m.rootAt(ctx)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if _, err := root(uint64((i + 1) * perEpoch)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/float64(total), "µs/record")
	b.ReportMetric(float64(m.lm.Tree().Len()), "keys")
}

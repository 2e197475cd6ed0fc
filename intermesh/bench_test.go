package intermesh

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkRoundToCertificate measures, for federations of 4, 8, 16 and 32
// members (INTERMESH_BENCH_MEMBERS, e.g. "4,8", chooses others) in one process (real libp2p hosts on 127.0.0.1, real gossipsub),
// the time from the close of a round (every member publishing its
// checkpoint at the same instant) to the moment each member has the round's
// certificate (its Commit hook is called). It reports the median and 99th
// percentile over all members and rounds. The federation's period is 10 s,
// so that a loaded machine slows rounds down rather than making them miss
// their commit deadline (certificates form at once when every checkpoint
// arrives, whatever the period). Run it with a fixed count, e.g.
//
//	go test ./intermesh/ -run XXX -bench RoundToCertificate -benchtime 50x
func BenchmarkRoundToCertificate(b *testing.B) {
	sizes := []int{4, 8, 16, 32}
	if v := os.Getenv("INTERMESH_BENCH_MEMBERS"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("INTERMESH_BENCH_MEMBERS: %q is not a member count", f)
			}
			sizes = append(sizes, n)
		}
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) { benchmarkRounds(b, n) })
	}
}

func benchmarkRounds(b *testing.B, n int) {
	fed, keys := testFederationOf(b, n, 10*time.Second)
	clk := newClockOf(10 * time.Second)
	var nodes []*node
	for i := range n {
		nodes = append(nodes, startNode(b, fed, keys, i, nil, clk, nil))
	}
	connect(b, nodes)
	ctx := context.Background()
	var lat []float64
	b.ResetTimer()
	for range b.N {
		r := clk.round.Add(1)
		notes := make([][]byte, n)
		for i, nd := range nodes {
			notes[i] = nd.log.close(b, r, 10)
		}
		start := time.Now()
		var wg sync.WaitGroup
		for i, nd := range nodes {
			wg.Go(func() {
				if err := nd.PublishCheckpoint(ctx, r, notes[i]); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		for _, nd := range nodes {
			waitFor(b, 5*time.Second+time.Duration(n)*200*time.Millisecond, "the round's certificate", func() bool { _, ok := nd.result(r); return ok })
			res, _ := nd.result(r)
			if res.Outcome != OutcomeCertificate {
				b.Fatalf("%s: round %d ended %q", nd.origin, r, res.Outcome)
			}
			nd.mu.Lock()
			lat = append(lat, float64(nd.at[r].Sub(start))/float64(time.Millisecond))
			nd.mu.Unlock()
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(lat[len(lat)-1], "max_ms")
}

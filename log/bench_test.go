package log

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAppend measures durable appends of records with 256-byte payloads
// from 1, 16 and 256 concurrent appenders; records/s is the figure to watch
// (group commit makes it grow with the number of appenders).
func BenchmarkAppend(b *testing.B) {
	for _, appenders := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			l := openTestLog(b, "", Options{Origin: "bench.example"})
			payload := make([]byte, 256)
			for i := range payload {
				payload[i] = byte(i)
			}
			rec := Record{Kind: "Profile", Identifier: "MBENCH-0000-0000", Account: "bench@example.com", Payload: payload}
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
			if s := l.Stats(); s.Batches > 0 {
				b.ReportMetric(float64(s.Records)/float64(s.Batches), "records/batch")
			}
		})
	}
}

// BenchmarkRange measures reading the log in pages of DefaultPageEntries.
func BenchmarkRange(b *testing.B) {
	l := openTestLog(b, "", Options{})
	appendConcurrently(b, l, 10*DefaultPageEntries, 64)
	if b.Failed() {
		b.FailNow()
	}
	b.ResetTimer()
	records := 0
	for b.Loop() {
		c := Constraints{}
		for {
			page, err := l.Range(context.Background(), c)
			if err != nil {
				b.Fatal(err)
			}
			records += len(page.Records)
			if page.PageKey == "" {
				break
			}
			c.PageKey = page.PageKey
		}
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}

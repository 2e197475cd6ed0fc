package witness

import (
	"crypto/ed25519"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkAddCheckpoint measures add-checkpoint over HTTP against a real
// witness (Badger with synced writes): each request adds one leaf with a
// consistency proof from the previous size, is verified, persisted and
// cosigned. It reports the median and 99th percentile latency.
func BenchmarkAddCheckpoint(b *testing.B) {
	db := openDB(b, b.TempDir())
	defer db.Close()
	_, key, _ := ed25519.GenerateKey(nil)
	l := newTestLog(b, "log.example/a")
	_, srv := newTestWitness(b, db, key, l)
	l.grow(b.N + 2)
	bodies := make([]string, b.N+1)
	for i := range bodies {
		bodies[i] = l.request(b, uint64(i), uint64(i+1))
	}
	client := srv.Client()
	post := func(body string) {
		resp, err := client.Post(srv.URL+"/add-checkpoint", "text/plain", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("add-checkpoint: %s", resp.Status)
		}
	}
	post(bodies[0])
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		start := time.Now()
		post(bodies[i])
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

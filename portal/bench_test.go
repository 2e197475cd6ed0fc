package portal_test

import (
	"context"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/portal/mesh"
)

// benchEntries makes the requests that publish n distinct signed device
// profiles for one account of p, each vouched for by an AccountProof, in
// parallel.
func benchEntries(b *testing.B, p *testPortal, n int) []*portal.PublishRequest {
	u := newUser(b, "bench@example.com")
	if _, err := p.client.CreateAccount(context.Background(), &portal.CreateRequest{Account: "bench", Profile: entryOf(b, u.profileAccount, u.acctOffline)}); err != nil {
		b.Fatal(err)
	}
	out := make([]*portal.PublishRequest, n)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 4 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				off := newKey(b, mesh.CurveEd448)
				dev := &mesh.ProfileDevice{
					Profile:           mesh.Profile{KeyOfflineSignature: mesh.NewKeyData(off.Public())},
					KeyEncryption:     mesh.NewKeyData(newKey(b, mesh.CurveX448).Public()),
					KeyAuthentication: mesh.NewKeyData(newKey(b, mesh.CurveX448).Public()),
				}
				entry := entryOf(b, dev, off)
				out[i] = &portal.PublishRequest{Entry: entry, AccountID: "bench", Proof: accountProof(b, "bench", portal.TxPublish, entry, u.acctOnline)}
			}
		})
	}
	wg.Wait()
	return out
}

func benchClient(b *testing.B, p *testPortal) *client.Client {
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}
	b.Cleanup(tr.CloseIdleConnections)
	c, err := client.New(p.url, client.WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
}

// BenchmarkPublish measures verified, durable Publish over HTTP: distinct
// Ed448-signed device profiles, each with an AccountProof (two Ed448
// verifications a request), through the real client, server, log and
// indexers.
//
//	saturated: 32 concurrent clients as fast as they can; reports publishes/s.
//	paced: an open-loop offered load of PORTAL_BENCH_RATE publishes/s
//	       (default 1000); reports the latency at that load.
func BenchmarkPublish(b *testing.B) {
	b.Run("saturated", func(b *testing.B) {
		p := newTestPortal(b, portal.Config{})
		c := benchClient(b, p)
		entries := benchEntries(b, p, b.N)
		lat := make([]time.Duration, b.N)
		var next atomic.Int64
		var failed atomic.Value
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for range benchClients() {
			wg.Go(func() {
				for i := int(next.Add(1) - 1); i < b.N; i = int(next.Add(1) - 1) {
					t0 := time.Now()
					if _, err := c.Publish(context.Background(), entries[i]); err != nil {
						failed.Store(err)
						return
					}
					lat[i] = time.Since(t0)
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		if err := failed.Load(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "publishes/s")
		reportLatency(b, lat)
	})
	b.Run("paced", func(b *testing.B) {
		rate := 1000.0
		if s := os.Getenv("PORTAL_BENCH_RATE"); s != "" {
			if r, err := strconv.ParseFloat(s, 64); err == nil && r > 0 {
				rate = r
			}
		}
		p := newTestPortal(b, portal.Config{})
		c := benchClient(b, p)
		entries := benchEntries(b, p, b.N)
		lat := make([]time.Duration, b.N)
		var failed atomic.Value
		interval := time.Duration(float64(time.Second) / rate)
		b.ResetTimer()
		start := time.Now()
		var wg sync.WaitGroup
		sem := make(chan struct{}, 512)
		for i := range b.N {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				t0 := time.Now()
				if _, err := c.Publish(context.Background(), entries[i]); err != nil {
					failed.Store(err)
				}
				lat[i] = time.Since(t0)
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		if err := failed.Load(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "publishes/s")
		reportLatency(b, lat)
	})
}

// benchClients is the number of concurrent clients of the saturated
// Publish benchmark: PORTAL_BENCH_CLIENTS, default 32.
func benchClients() int {
	if n, err := strconv.Atoi(os.Getenv("PORTAL_BENCH_CLIENTS")); err == nil && n > 0 {
		return n
	}
	return 32
}

package portal_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/portal/mesh"
	"github.com/intermesh/intermesh/vmap"
)

// benchEntries makes the requests that publish n distinct signed device
// profiles for one account of p, each vouched for by an AccountProof, in
// parallel.
func benchEntries(b *testing.B, p *testPortal, n int) []*portal.PublishRequest {
	u := newUser(b, "bench@example.com")
	if _, err := p.client.CreateAccount(context.Background(), consented(b, "bench", entryOf(b, u.profileAccount, u.acctOffline), u.acctOffline)); err != nil {
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

// benchProfile is a signed ProfileMesh and an account name to bind it to.
type benchProfile struct {
	account string
	entry   portal.Entry
	key     *mesh.PrivateKey // the offline key, which consents to the account
}

// benchProfiles makes n distinct signed mesh profiles, in parallel, each
// with its own account name.
func benchProfiles(b *testing.B, n int) []benchProfile {
	out := make([]benchProfile, n)
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 4 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				off := newKey(b, mesh.CurveEd448)
				p := &mesh.ProfileMesh{
					Profile: mesh.Profile{
						KeyOfflineSignature: mesh.NewKeyData(off.Public()),
						KeysOnlineSignature: []mesh.KeyData{*mesh.NewKeyData(newKey(b, mesh.CurveEd448).Public())},
					},
					KeyEncryption: mesh.NewKeyData(newKey(b, mesh.CurveX448).Public()),
				}
				out[i] = benchProfile{account: "bench-" + strconv.Itoa(i) + "@example.com", entry: entryOf(b, p, off), key: off}
			}
		})
	}
	wg.Wait()
	return out
}

// createAccounts creates every profile's account through c, concurrently:
// Publish of a profile comes after its account, as a Mesh user does it.
func createAccounts(b *testing.B, c *client.Client, ps []benchProfile) {
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 32 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(ps); i = int(next.Add(1) - 1) {
				if _, err := c.CreateAccount(context.Background(), consented(b, ps[i].account, ps[i].entry, ps[i].key)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
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

// processCPU is the CPU time (user and system) the benchmark process has
// used: the CPU a Publish costs, client and server together, is less
// sensitive than wall time to other processes sharing the machine.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
}

// BenchmarkPublish measures verified, durable Publish over HTTP: distinct
// Ed448-signed device profiles of one account, each with an AccountProof
// (two Ed448 verifications a request), through the real client, server,
// log, tree and portal indexes.
//
//	saturated: 32 concurrent clients as fast as they can; reports publishes/s.
//	paced: an open-loop offered load of PORTAL_BENCH_RATE publishes/s
//	       (default 1000). Request i is due at start + i/rate, and its
//	       latency is measured from that due time, not from when it was
//	       sent, so a backlog shows in the percentiles (no coordinated
//	       omission). Reports the latency, the rate reached, and the
//	       requests that failed (e.g. 503 past the in-flight cap).
func BenchmarkPublish(b *testing.B) {
	b.Run("saturated", func(b *testing.B) {
		p := newTestPortal(b, portal.Config{})
		c := benchClient(b, p)
		entries := benchEntries(b, p, b.N)
		lat := make([]time.Duration, b.N)
		var next atomic.Int64
		var failed atomic.Value
		b.ResetTimer()
		cpu0 := processCPU(b)
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
		b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/publish")
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
		var failures atomic.Int64
		var firstErr atomic.Value
		interval := time.Duration(float64(time.Second) / rate)
		b.ResetTimer()
		cpu0 := processCPU(b)
		start := time.Now()
		var wg sync.WaitGroup
		for i := range b.N {
			due := start.Add(time.Duration(i) * interval)
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			wg.Go(func() {
				if _, err := c.Publish(context.Background(), entries[i]); err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				lat[i] = time.Since(due)
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		b.StopTimer()
		if err := firstErr.Load(); err != nil {
			b.Logf("%d of %d publishes failed, e.g. %v", failures.Load(), b.N, err)
		}
		b.ReportMetric(float64(failures.Load()), "failed")
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "publishes/s")
		b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/publish")
		reportLatency(b, lat)
	})
}

// BenchmarkNodeAppendPath measures the node's durable append path without
// HTTP and signature verification: real CreateAccount records (a verified
// profile and its account, as the portal wrote them) appended by 1, 16 and
// 256 concurrent appenders to a fresh log whose transactions also write
// the Merkle tree and the portal's indexes (accounts, profiles), exactly
// as a node opens its log. Compare with log's BenchmarkAppend (bare log)
// and merkle's BenchmarkAppendWithTree (log + tree). Each runs without and
// with the log's verifiable map kept up meanwhile (map=false, map=true),
// side by side.
func BenchmarkNodeAppendPath(b *testing.B) {
	for _, withMap := range []bool{false, true} {
		for _, appenders := range []int{1, 16, 256} {
			b.Run(fmt.Sprintf("map=%t/appenders=%d", withMap, appenders), func(b *testing.B) {
				benchAppendPath(b, appenders, withMap)
			})
		}
	}
}

// benchAppendPath is one case of BenchmarkNodeAppendPath: appenders
// goroutines append b.N CreateAccount records; withMap, a follower keeps
// the log's verifiable map in the same database meanwhile, as a node does
// (following the log, committing every 10,000 records), and the time
// includes bringing it to the last record.
func benchAppendPath(b *testing.B, appenders int, withMap bool) {
	recs := benchAccountRecords(b, b.N)
	state := portal.NewState()
	l, err := log.Open(context.Background(), log.Options{
		Dir: b.TempDir(), Logger: quietLogger(), Origin: testOrigin,
		Indexers:      []log.Indexer{state},
		BatchIndexers: []log.BatchIndexer{merkle.NewTree(nil, treePrefix)},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	if _, err := portal.New(portal.Config{}, portal.Deps{Log: l, State: state, Logger: quietLogger()}); err != nil {
		b.Fatal(err) // binds the state to the log's database, as a node does
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	stopMap := func() {}
	if withMap {
		stopMap = followMap(b, l)
	}
	for range appenders {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < b.N; i = int(next.Add(1) - 1) {
				if _, err := l.Append(context.Background(), recs[i]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	stopMap()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
	if st := l.Stats(); st.Batches > 0 {
		b.ReportMetric(float64(st.Records)/float64(st.Batches), "records/batch")
	}
}

// followMap keeps l's verifiable map in l's database while l grows, and
// returns a function that brings it to l's last record and stops.
func followMap(b *testing.B, l *log.Log) (stop func()) {
	tree, err := vmap.NewBadgerStore(l.DB(), vmap.StorePrefix("local")).Open(vmap.DefaultKeep)
	if err != nil {
		b.Fatal(err)
	}
	lm := vmap.OpenLogMap(tree)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	step := func(size uint64) {
		if err := lm.Follow(context.Background(), l, size); err != nil {
			b.Error(err)
		}
		if lm.Size()-tree.Version() >= 10_000 || size == l.Size() && ctx.Err() != nil {
			if _, err := lm.Commit(); err != nil {
				b.Error(err)
			}
		}
	}
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			step(min(l.Size(), lm.Size()+2000))
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return func() {
		cancel()
		<-done
		step(l.Size())
	}
}

// benchAccountRecords makes n CreateAccount records the way the portal
// writes them: it creates n accounts through a portal and reads the records
// back from its log, ready to append (sequence and time unset) to another.
func benchAccountRecords(b *testing.B, n int) []log.Record {
	src := newTestPortal(b, portal.Config{})
	createAccounts(b, benchClient(b, src), benchProfiles(b, n))
	out := make([]log.Record, 0, n)
	for seq := range src.log.Size() {
		r, err := src.log.Get(seq)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, log.Record{Kind: r.Kind, Identifier: r.Identifier, Account: r.Account, Payload: r.Payload})
	}
	if len(out) != n {
		b.Fatalf("%d records for %d accounts", len(out), n)
	}
	return out
}

// benchClients is the number of concurrent clients of the saturated
// Publish benchmark: PORTAL_BENCH_CLIENTS, default 32.
func benchClients() int {
	if n, err := strconv.Atoi(os.Getenv("PORTAL_BENCH_CLIENTS")); err == nil && n > 0 {
		return n
	}
	return 32
}

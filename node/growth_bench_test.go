package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/internal/procstat"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
	"github.com/intermesh/intermesh/portal/tiles"
)

// growthProfile is one account of the growth benchmark: its keys, and a
// way to sign its next version.
type growthProfile struct {
	account        string
	id             string
	offline, admin *mesh.PrivateKey
	enc            *mesh.KeyData
	updated        time.Time
}

// growthProfiles makes n accounts with real keys.
func growthProfiles(b testing.TB, n int) []*growthProfile {
	b.Helper()
	out := make([]*growthProfile, n)
	for i := range out {
		offline, _ := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
		admin, _ := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
		enc, _ := mesh.GenerateKey(rand.Reader, mesh.CurveX448)
		out[i] = &growthProfile{account: fmt.Sprintf("grow%d@example.com", i), id: offline.UDF().String(),
			offline: offline, admin: admin, enc: mesh.NewKeyData(enc.Public())}
	}
	return out
}

// next signs the profile's next version (a later Updated) and returns the
// record the portal appends when it accepts it: CreateAccount for the first
// version, Publish for the account's own profile afterwards.
func (g *growthProfile) next(first bool) (log.Record, error) {
	g.updated = g.updated.Add(time.Microsecond)
	if now := time.Now().UTC(); now.After(g.updated) {
		g.updated = now
	}
	updated := g.updated
	p := &mesh.ProfileMesh{
		Profile: mesh.Profile{
			Assertion:           mesh.Assertion{Updated: &updated},
			KeyOfflineSignature: mesh.NewKeyData(g.offline.Public()),
			KeysOnlineSignature: []mesh.KeyData{*mesh.NewKeyData(g.admin.Public())},
		},
		KeyEncryption: g.enc,
	}
	env, err := mesh.SignObject(p, g.offline)
	if err != nil {
		return log.Record{}, err
	}
	entry, err := mesh.MarshalEntry(p.TypeName(), env)
	if err != nil {
		return log.Record{}, err
	}
	pe := &portal.PortalEntry{Transaction: "Publish", Type: p.TypeName(), AccountID: g.account, Signer: g.id,
		OfflineKey: g.id, OnlineKeys: []string{g.admin.UDF().String()}, Updated: &updated, Entry: entry}
	kind := portal.KindProfile
	if first {
		pe.Transaction, pe.Status, kind = "CreateAccount", portal.AccountOpen, portal.KindAccount
	}
	payload, err := portal.MarshalPortalEntry(pe)
	if err != nil {
		return log.Record{}, err
	}
	return log.Record{Kind: kind, Identifier: g.id, Account: portal.CanonicalAccount(g.account), Payload: payload}, nil
}

// growAppenders is how many goroutines append at once: enough for group
// commits of hundreds of records, as a busy portal's concurrent requests
// make.
const growAppenders = 1000

// memorySample is the process's memory at a log size.
type memorySample struct {
	records   uint64
	rss, anon uint64 // from /proc/self/status
	heap      uint64 // Go heap in use
	// The peaks since the previous sample (sampled every 100 ms).
	peakRSS, peakAnon, peakHeap uint64
	lsm, vlog                   int64 // Badger's files
	getP99, getMax              time.Duration
}

// memoryPeak is the largest memory the monitor saw between two samples.
type memoryPeak struct {
	mu              sync.Mutex
	anon, rss, heap uint64
	// The highest of the whole run, never reset, and the sample they
	// were seen in.
	maxAnon, maxRSS uint64
	maxAnonAt       time.Time
	profiled        uint64 // RssAnon when the last peak profile was written
}

// monitorMemory reads /proc/self/status and the Go heap every 100 ms until
// stop closes, keeping the peaks in p; when profile is not empty it writes
// a heap profile to profile.peak each time RssAnon reaches a new high above
// 64 MiB (2 MiB above the last profiled one), so that the profile shows
// what the heap held at the peak (as of the last garbage collection, as
// heap profiles do).
func monitorMemory(p *memoryPeak, stop <-chan struct{}, profile string) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		rss, anon, _ := procstat.Memory(0)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		p.mu.Lock()
		p.anon, p.rss, p.heap = max(p.anon, anon), max(p.rss, rss), max(p.heap, ms.HeapInuse)
		if anon > p.maxAnon {
			p.maxAnon, p.maxAnonAt = anon, time.Now()
		}
		p.maxRSS = max(p.maxRSS, rss)
		write := profile != "" && anon > 64<<20 && anon > p.profiled+2<<20
		if write {
			p.profiled = anon
		}
		p.mu.Unlock()
		if write {
			if f, err := os.Create(profile + ".peak"); err == nil {
				pprof.WriteHeapProfile(f)
				f.Close()
				fmt.Fprintf(os.Stderr, "grow: heap profile at RssAnon %d MiB, %d MiB heap in use written to %s.peak\n", anon>>20, ms.HeapInuse>>20, profile)
			}
		}
	}
}

// whole returns the highest RssAnon and RSS of the whole run, and when the
// RssAnon one was seen.
func (p *memoryPeak) whole() (anon, rss uint64, anonAt time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxAnon, p.maxRSS, p.maxAnonAt
}

// take returns the peaks and resets them.
func (p *memoryPeak) take() (anon, rss, heap uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	anon, rss, heap = p.anon, p.rss, p.heap
	p.anon, p.rss, p.heap = 0, 0, 0
	return anon, rss, heap
}

// BenchmarkGrowOneNodeToAMillionRecords grows one node's log to
// NODE_GROW_RECORDS records (default 1,000,000) through the log's append
// path (group commit, the Merkle tree and the portal's state indexer in the
// same transactions, epochs closing every second), with records as a
// Publish of real signed profiles writes them, while a client keeps calling
// Get (Full, with the leaf), GET /checkpoint and a random full level-0 hash
// tile and entry bundle (C2SP tlog-tiles) over HTTP. Every 100,000
// records it logs RSS and RssAnon (/proc/self/status), the Go heap, Badger's
// size and Get's latency, with the peaks of RSS, RssAnon and the heap read
// every 100 ms in between. Run it with -benchtime 1x. The node has the
// default configuration, and the Go memory limit is applied as meshd run
// applies it (GOMEMLIMIT, if set, wins over store.memory_limit_mb).
// NODE_GROW_MAPPED_LIMIT_MB sets store.mapped_limit_mb,
// NODE_GROW_MEMORY_LIMIT_MB store.memory_limit_mb; NODE_GROW_HEAPPROFILE
// names a file for a heap profile at the end (and FILE.peak, one at the
// highest RssAnon above 64 MiB).
func BenchmarkGrowOneNodeToAMillionRecords(b *testing.B) {
	total := uint64(1_000_000)
	if v := os.Getenv("NODE_GROW_RECORDS"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			b.Fatalf("NODE_GROW_RECORDS: %v", err)
		}
		total = n
	}
	profiles := growthProfiles(b, 1000)
	for range b.N {
		c, err := config.Init(b.TempDir(), config.InitOptions{
			Origin: "grow.example/node", HTTPListen: "127.0.0.1:0", EpochPeriod: config.Duration{Duration: time.Second},
		})
		if err != nil {
			b.Fatal(err)
		}
		c.HTTP.RatePerSecond = 0
		if v := os.Getenv("NODE_GROW_MAPPED_LIMIT_MB"); v != "" {
			if c.Store.MappedLimitMB, err = strconv.Atoi(v); err != nil {
				b.Fatalf("NODE_GROW_MAPPED_LIMIT_MB: %v", err)
			}
		}
		if v := os.Getenv("NODE_GROW_MEMORY_LIMIT_MB"); v != "" {
			if c.Store.MemoryLimitMB, err = strconv.Atoi(v); err != nil {
				b.Fatalf("NODE_GROW_MEMORY_LIMIT_MB: %v", err)
			}
		}
		if err := c.Validate(); err != nil {
			b.Fatal(err)
		}
		// As meshd run does: GOMEMLIMIT, if set, wins.
		limit, source := ApplyMemoryLimit(c, os.Getenv)
		b.Logf("Go memory limit %d MiB (%s), store.mapped_limit_mb %d", limit>>20, source, c.Store.MappedLimitMB)
		fmt.Fprintf(os.Stderr, "grow: Go memory limit %d MiB (%s), store.mapped_limit_mb %d\n", limit>>20, source, c.Store.MappedLimitMB)
		n, err := New(context.Background(), c, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		if err := n.Listen(); err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		runDone := make(chan error, 1)
		go func() { runDone <- n.Run(ctx) }()
		samples := growNode(b, n, total, profiles)
		cancel()
		if err := <-runDone; err != nil {
			b.Fatal(err)
		}
		last := samples[len(samples)-1]
		b.ReportMetric(float64(last.rss)/(1<<20), "RSS-MiB")
		b.ReportMetric(float64(last.anon)/(1<<20), "RssAnon-MiB")
		b.ReportMetric(float64(slices.MaxFunc(samples, func(x, y memorySample) int { return int(x.peakAnon) - int(y.peakAnon) }).peakAnon)/(1<<20), "max-RssAnon-MiB")
		b.ReportMetric(float64(slices.MaxFunc(samples, func(x, y memorySample) int { return int(x.peakRSS) - int(y.peakRSS) }).peakRSS)/(1<<20), "max-RSS-MiB")
		b.ReportMetric(float64(last.lsm+last.vlog)/(1<<20), "badger-MiB")
		b.ReportMetric(float64(last.getP99.Microseconds())/1000, "get-p99-ms")
	}
}

// growNode appends total records to n's log with growAppenders appenders while a
// reader calls Get and /checkpoint, sampling memory every 100,000 records.
func growNode(b *testing.B, n *Node, total uint64, profiles []*growthProfile) []memorySample {
	var (
		next    atomic.Uint64
		wg      sync.WaitGroup
		stop    = make(chan struct{})
		latMu   sync.Mutex
		lats    []time.Duration
		samples []memorySample
	)
	url := "http://" + n.HTTPAddr()
	start := time.Now()
	var peaks memoryPeak
	monitorStop := make(chan struct{})
	monitorDone := make(chan struct{})
	go func() {
		defer close(monitorDone)
		monitorMemory(&peaks, monitorStop, os.Getenv("NODE_GROW_HEAPPROFILE"))
	}()
	defer func() { close(monitorStop); <-monitorDone }()
	wg.Go(func() { // the reader
		for {
			select {
			case <-stop:
				return
			default:
			}
			body := fmt.Sprintf(`{"GetRequest":{"Identifier":%q,"Full":true}}`, profiles[mrand.IntN(len(profiles))].id)
			t0 := time.Now()
			resp, err := http.Post(url+portal.WellKnownPath, "application/json", bytes.NewReader([]byte(body)))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			// Tiles exist up to the latest checkpoint's size (none before
			// the first round closes).
			var reads []string
			var size uint64
			if signed, err := n.Tree().LatestCheckpoint(); err == nil && len(signed) > 0 {
				reads = append(reads, "/checkpoint")
				if cp, err := merkle.ParseCheckpoint(noteBody(signed)); err == nil {
					size = cp.Size
				}
			}
			if full := size / 256; full > 0 {
				i := mrand.Uint64N(full)
				reads = append(reads, "/"+tiles.Tile{Level: 0, Index: i, Width: 256}.Path(),
					"/"+tiles.Tile{Entries: true, Index: i, Width: 256}.Path())
			}
			for _, path := range reads {
				if resp, err := http.Get(url + path); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						b.Errorf("GET %s: %s", path, resp.Status)
					}
				}
			}
			latMu.Lock()
			lats = append(lats, time.Since(t0))
			latMu.Unlock()
		}
	})
	sample := func(records uint64) {
		rss, anon, _ := procstat.Memory(0)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		lsm, vlog := storeSizes(n.cfg.DataDir())
		latMu.Lock()
		s := memorySample{records: records, rss: rss, anon: anon, heap: ms.HeapInuse, lsm: lsm, vlog: vlog}
		if len(lats) > 0 {
			slices.Sort(lats)
			s.getP99, s.getMax = lats[len(lats)*99/100], lats[len(lats)-1]
			lats = lats[:0]
		}
		latMu.Unlock()
		s.peakAnon, s.peakRSS, s.peakHeap = peaks.take()
		samples = append(samples, s)
		// Also on stderr at once: a long run's progress shows before it ends.
		fmt.Fprintf(os.Stderr, "grow: %8d records  %6.1f s  RSS %4d MiB (peak %4d)  RssAnon %4d MiB (peak %4d)  Go heap %4d MiB (peak %4d)  badger lsm %5d MiB vlog %5d MiB\n",
			records, time.Since(start).Seconds(), rss>>20, s.peakRSS>>20, anon>>20, s.peakAnon>>20, ms.HeapInuse>>20, s.peakHeap>>20, lsm>>20, vlog>>20)
		b.Logf("%8d records  %6.1f s  RSS %4d MiB (peak %4d)  RssAnon %4d MiB (peak %4d)  Go heap %4d MiB (peak %4d)  badger %5d MiB  Get+checkpoint+tiles p99 %6.2f ms max %6.1f ms",
			records, time.Since(start).Seconds(), rss>>20, s.peakRSS>>20, anon>>20, s.peakAnon>>20, ms.HeapInuse>>20, s.peakHeap>>20, (lsm+vlog)>>20,
			float64(s.getP99.Microseconds())/1000, float64(s.getMax.Microseconds())/1000)
	}
	// Each appender owns some accounts and appends their versions in
	// order (each must be newer than the last); the accounts are created
	// first.
	var appenders sync.WaitGroup
	var sampleMu sync.Mutex
	for g := range growAppenders {
		appenders.Go(func() {
			var mine []*growthProfile
			for i := g; i < len(profiles); i += growAppenders {
				mine = append(mine, profiles[i])
			}
			created := make([]bool, len(mine))
			for j := 0; len(mine) > 0; j = (j + 1) % len(mine) {
				k := next.Add(1) - 1
				if k >= total {
					return
				}
				rec, err := mine[j].next(!created[j])
				if err != nil {
					b.Error(err)
					return
				}
				created[j] = true
				if _, err := n.Log().Append(context.Background(), rec); err != nil {
					b.Errorf("append %d: %v", k, err)
					return
				}
				if (k+1)%100_000 == 0 {
					sampleMu.Lock()
					sample(k + 1)
					sampleMu.Unlock()
				}
			}
		})
	}
	appenders.Wait()
	if path := os.Getenv("NODE_GROW_HEAPPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	close(stop)
	wg.Wait()
	if len(samples) == 0 || samples[len(samples)-1].records != total {
		sample(total)
	}
	b.Logf("%d records in %.1f s (%.0f records/s)", total, time.Since(start).Seconds(), float64(total)/time.Since(start).Seconds())
	anon, rss, anonAt := peaks.whole()
	b.Logf("highest over the whole run (read every 100 ms): RssAnon %.1f MiB (at %.1f s), RSS %.1f MiB",
		float64(anon)/(1<<20), anonAt.Sub(start).Seconds(), float64(rss)/(1<<20))
	fmt.Fprintf(os.Stderr, "grow: highest over the whole run: RssAnon %.1f MiB (at %.1f s), RSS %.1f MiB\n",
		float64(anon)/(1<<20), anonAt.Sub(start).Seconds(), float64(rss)/(1<<20))
	return samples
}

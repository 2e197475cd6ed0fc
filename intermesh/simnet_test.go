package intermesh

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/marcopolo/simnet"
	"github.com/quic-go/quic-go"
	"go.uber.org/fx"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/merkle"
)

// Federations over a simulated network (github.com/marcopolo/simnet, the one
// go-libp2p and go-libp2p-pubsub test with): every member's QUIC runs over
// simulated links with a chosen round-trip time, jitter and packet loss, in
// real time, so the rounds see the delays of a real network instead of
// loopback's ~0 ms.

// netConditions are the conditions on every path between two members.
type netConditions struct {
	rtt    time.Duration // mean round-trip time
	jitter time.Duration // a packet's one-way delay is rtt/2 ± jitter/2, uniform
	loss   float64       // share of packets dropped, each direction
	// reorder lets a packet overtake an earlier one of the same path when
	// its delay is shorter; otherwise a path delivers in order, as a queue
	// does, and a packet waits for the ones before it.
	reorder bool
}

// latency returns simnet's per-packet delay for conditions c.
func (c netConditions) latency() func(*simnet.Packet) time.Duration {
	var mu sync.Mutex
	last := map[[2]string]time.Time{} // per path, when its latest packet is delivered
	return func(p *simnet.Packet) time.Duration {
		d := c.rtt / 2
		if c.jitter > 0 {
			d += time.Duration(rand.Int64N(int64(c.jitter))) - c.jitter/2
		}
		if c.reorder {
			return d
		}
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		path := [2]string{p.From.String(), p.To.String()}
		at := now.Add(d)
		if at.Before(last[path]) {
			at = last[path]
		}
		last[path] = at
		return at.Sub(now)
	}
}

func (c netConditions) String() string {
	s := fmt.Sprintf("rtt=%s,jitter=%s,loss=%g%%", c.rtt, c.jitter, 100*c.loss)
	if c.reorder {
		s += ",reordered"
	}
	return s
}

// lossyConn drops a share of the packets written to a simulated endpoint, as
// a lossy path does (simnet only delays them).
type lossyConn struct {
	*simnet.SimConn
	loss float64
}

func (c *lossyConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.loss > 0 && rand.Float64() < c.loss {
		return len(p), nil
	}
	return c.SimConn.WriteTo(p, addr)
}

// fixedSourceIP is the source address QUIC uses on a simulated endpoint (the
// default asks the OS's routing table, which knows nothing of simnet).
type fixedSourceIP struct{ ip atomic.Pointer[net.IP] }

func (s *fixedSourceIP) PreferredSourceIPForDestination(*net.UDPAddr) (net.IP, error) {
	return *s.ip.Load(), nil
}

// simnetQUIC is the libp2p option that puts the host's QUIC on nw, each
// listening address an endpoint with the given links and loss. It follows
// go-libp2p's x/simlibp2p.QUICSimnet, plus the loss.
func simnetQUIC(nw *simnet.Simnet, links simnet.NodeBiDiLinkSettings, loss float64, opened func(*simnet.SimConn)) libp2p.Option {
	src := &fixedSourceIP{}
	return libp2p.QUICReuse(
		func(l fx.Lifecycle, srk quic.StatelessResetKey, tk quic.TokenGeneratorKey, opts ...quicreuse.Option) (*quicreuse.ConnManager, error) {
			cm, err := quicreuse.NewConnManager(srk, tk, opts...)
			if err != nil {
				return nil, err
			}
			l.Append(fx.StopHook(cm.Close)) // libp2p closes only the conn manager it made
			return cm, nil
		},
		quicreuse.OverrideSourceIPSelector(func() (quicreuse.SourceIPSelector, error) { return src, nil }),
		quicreuse.OverrideListenUDP(func(_ string, addr *net.UDPAddr) (net.PacketConn, error) {
			src.ip.Store(&addr.IP)
			c := nw.NewEndpoint(addr, links)
			opened(c)
			return &lossyConn{SimConn: c, loss: loss}, nil
		}),
	)
}

// simFederation is n running members, with real Badger stores, on one
// simulated network.
type simFederation struct {
	fed    *config.Federation
	period time.Duration
	nodes  []*node

	mu       sync.Mutex
	arrivals []time.Duration // every checkpoint a member received from another, after its round's close
	stalls   []time.Duration // how much later than asked a 10 ms sleep of the test process woke
	votes    []time.Duration // every vote a member received from another, after its round's close
	voteSize int             // the bytes of those votes
	conns    []*simnet.SimConn
	// roundBytes is what a member sent per round during runRounds.
	roundBytes int
}

// sentBytes is how many bytes all members have sent over the network.
func (f *simFederation) sentBytes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	sum := 0
	for _, c := range f.conns {
		sum += c.Stats().BytesSent
	}
	return sum
}

// watchScheduler samples, until ctx ends, how late the process wakes from a
// 10 ms sleep: a machine short of CPU delays every member's messages by that
// much, whatever the network does.
func (f *simFederation) watchScheduler(ctx context.Context) {
	const tick = 10 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		time.Sleep(tick)
		late := time.Since(start) - tick
		f.mu.Lock()
		f.stalls = append(f.stalls, late)
		f.mu.Unlock()
	}
}

// startSimFederation starts n members of a federation of the given period
// over a simulated network with conditions nc, tune adjusting each member's
// Config (nil: the defaults), and waits until all are connected and on both
// consensus topics. Members find each other by the addresses in the
// federation, as in production.
func startSimFederation(t *testing.T, n int, period time.Duration, nc netConditions, tune func(*Config)) *simFederation {
	t.Helper()
	fed, keys := testFederationOf(t, n, period)
	nw := &simnet.Simnet{
		LatencyFunc: nc.latency(),
		Logger:      slog.New(slog.DiscardHandler),
	}
	nw.Start()
	t.Cleanup(nw.Close) // after the members stop: cleanups run last first
	links := simnet.NodeBiDiLinkSettings{
		Downlink: simnet.LinkSettings{BitsPerSecond: 100 * simnet.Mibps},
		Uplink:   simnet.LinkSettings{BitsPerSecond: 100 * simnet.Mibps},
	}
	for i := range fed.Members {
		fed.Members[i].Addrs = []string{fmt.Sprintf("/ip4/%s/udp/8000/quic-v1", simnet.IntToPublicIPv4(i))}
	}
	f := &simFederation{fed: fed, period: period}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() { f.watchScheduler(ctx) })
	for i := range n {
		db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil).WithMemTableSize(8 << 20))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		cfg := Config{
			Listen: fed.Members[i].Addrs,
			DB:     db,
			HostOptions: []libp2p.Option{simnetQUIC(nw, links, nc.loss, func(c *simnet.SimConn) {
				f.mu.Lock()
				f.conns = append(f.conns, c)
				f.mu.Unlock()
			})},
		}
		if tune != nil {
			tune(&cfg)
		}
		nd := startNodeWith(t, fed, keys, i, cfg)
		f.nodes = append(f.nodes, nd)
		sub, err := nd.topics.checkpoint.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { f.recordArrivals(ctx, nd, sub.Next) })
		vsub, err := nd.topics.master.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { f.recordVotes(ctx, nd, vsub.Next) })
	}
	waitFor(t, 30*time.Second+10*nc.rtt*time.Duration(n), "gossip topics joined over the simulated network", func() bool {
		for _, nd := range f.nodes {
			if len(nd.topics.checkpoint.ListPeers()) < n-1 || len(nd.topics.master.ListPeers()) < n-1 {
				return false
			}
		}
		return true
	})
	return f
}

// startNodeWith is startNode with a Config of the test's (Listen, DB,
// HostOptions, deadlines) to which it adds the member, the key and the
// Commit hook.
func startNodeWith(t *testing.T, fed *config.Federation, keys []ed25519.PrivateKey, i int, cfg Config) *node {
	t.Helper()
	origin := fed.Members[i].Origin
	n := &node{origin: origin, log: newTestLog(t, origin, keys[i]), results: map[uint64]RoundResult{}, at: map[uint64]time.Time{}, notify: make(chan uint64, 1024)}
	cfg.Federation, cfg.Origin, cfg.Key = fed, origin, keys[i]
	cfg.Commit = func(_ context.Context, r RoundResult) error {
		n.mu.Lock()
		n.results[r.Round] = r
		n.at[r.Round] = time.Now()
		n.mu.Unlock()
		return nil
	}
	m, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Mesh = m
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	n.stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: Run: %v", origin, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: Run did not return within 5s of cancel", origin)
		}
		if err := m.Close(); err != nil {
			t.Errorf("%s: Close: %v", origin, err)
		}
	}
	t.Cleanup(n.stop)
	return n
}

// recordArrivals notes, for every checkpoint of another member that nd's
// gossip delivers, how long after its round's close it arrived.
func (f *simFederation) recordArrivals(ctx context.Context, nd *node, next func(context.Context) (*pubsub.Message, error)) {
	for {
		msg, err := next(ctx)
		if err != nil {
			return
		}
		at := time.Now()
		n, err := note.Open(msg.Data, nd.verifiers)
		if err != nil {
			continue
		}
		cp, err := merkle.ParseCheckpoint([]byte(n.Text))
		if err != nil || cp.Origin == nd.origin {
			continue
		}
		f.mu.Lock()
		f.arrivals = append(f.arrivals, at.Sub(f.closeOf(cp.Round)))
		f.mu.Unlock()
	}
}

// recordVotes notes, for every vote that nd's gossip delivers (its own
// excepted), how long after its round's close it arrived, and its size.
func (f *simFederation) recordVotes(ctx context.Context, nd *node, next func(context.Context) (*pubsub.Message, error)) {
	for {
		msg, err := next(ctx)
		if err != nil {
			return
		}
		at := time.Now()
		var w voteWire
		if msg.ReceivedFrom == nd.ID() || json.Unmarshal(msg.Data, &w) != nil {
			continue
		}
		f.mu.Lock()
		f.votes = append(f.votes, at.Sub(f.closeOf(w.Round)))
		f.voteSize += len(msg.Data)
		f.mu.Unlock()
	}
}

// closeOf is when round r closes on the wall clock: (r+1)·period.
func (f *simFederation) closeOf(r uint64) time.Time {
	return time.Unix(0, int64(r+1)*int64(f.period))
}

// runRounds closes rounds on the wall clock as nodes do, each member
// publishing its checkpoint at the close, and returns the first round once
// every member has committed the last one.
func (f *simFederation) runRounds(t *testing.T, rounds int) uint64 {
	t.Helper()
	sent := f.sentBytes()
	defer func() { f.roundBytes = (f.sentBytes() - sent) / (len(f.nodes) * rounds) }()
	first := uint64(time.Now().UnixNano()/int64(f.period)) + 1
	last := first + uint64(rounds) - 1
	for r := first; r <= last; r++ {
		time.Sleep(time.Until(f.closeOf(r))) // the round's close, as a node's ticker waits for it
		errs := make([]error, len(f.nodes))
		var wg sync.WaitGroup
		for i, nd := range f.nodes {
			signed := nd.log.close(t, r, 3)
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), f.period)
				defer cancel()
				errs[i] = nd.PublishCheckpoint(ctx, r, signed)
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("%s: publish round %d: %v", f.nodes[i].origin, r, err)
			}
		}
	}
	waitFor(t, 2*f.period, "every member's result of the last round", func() bool {
		for _, nd := range f.nodes {
			if _, ok := nd.result(last); !ok {
				return false
			}
		}
		return true
	})
	return first
}

// liveness is what the members committed over a run of rounds.
type liveness struct {
	rounds        int
	certified     int // rounds every member committed a certificate for
	full          int // ... and every member's certificate has every member's checkpoint
	finalFull     int // rounds whose certificate every member holds at the end has every checkpoint
	noQuorum      int // member-rounds committed as no-quorum
	missing       int // member-rounds committed without a result
	sizes         map[int]int
	commitAt      []time.Duration // per member-round, when the result was committed after the close
	arrivals      []time.Duration
	stalls        []time.Duration
	load          string // the load average at the end (Linux)
	votes         []time.Duration
	voteBytes     int         // of the votes received, per member per round
	noQuorumSizes map[int]int // checkpoints in the own votes committed as no-quorum
	sent          int         // bytes a member sent per round (QUIC packets)
}

func (f *simFederation) tally(first uint64, rounds int) liveness {
	n := len(f.nodes)
	lv := liveness{rounds: rounds, sizes: map[int]int{}, noQuorumSizes: map[int]int{}}
	for r := first; r < first+uint64(rounds); r++ {
		certified, full, finalFull := true, true, true
		for _, nd := range f.nodes {
			nd.mu.Lock()
			res, ok := nd.results[r]
			at := nd.at[r]
			nd.mu.Unlock()
			switch {
			case !ok:
				lv.missing++
				certified, full = false, false
			case res.Outcome != OutcomeCertificate:
				lv.noQuorum++
				lv.noQuorumSizes[len(res.Checkpoints)]++
				certified, full = false, false
			default:
				lv.sizes[len(res.Checkpoints)]++
				full = full && len(res.Checkpoints) == n
			}
			if ok {
				lv.commitAt = append(lv.commitAt, at.Sub(f.closeOf(r)))
			}
			c, ok := nd.Certificate(r)
			finalFull = finalFull && ok && len(c.Checkpoints) == n
		}
		if certified {
			lv.certified++
		}
		if full {
			lv.full++
		}
		if finalFull {
			lv.finalFull++
		}
	}
	f.mu.Lock()
	lv.arrivals = slices.Clone(f.arrivals)
	lv.stalls = slices.Clone(f.stalls)
	lv.votes = slices.Clone(f.votes)
	lv.voteBytes = f.voteSize / (n * rounds)
	lv.sent = f.roundBytes
	f.mu.Unlock()
	if b, err := os.ReadFile("/proc/loadavg"); err == nil && len(b) > 15 {
		lv.load = string(b[:14])
	}
	return lv
}

// quantile returns the q-quantile of ds (sorted in place).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(q*float64(len(ds))))]
}

// later is the share of ds above d.
func later(ds []time.Duration, d time.Duration) float64 {
	k := 0
	for _, x := range ds {
		if x > d {
			k++
		}
	}
	return float64(k) / float64(max(1, len(ds)))
}

func (lv liveness) String() string {
	pct := func(k int) float64 { return 100 * float64(k) / float64(max(1, lv.rounds)) }
	return fmt.Sprintf("rounds %d: all checkpoints %d (%.1f%%), certified %d (%.1f%%), all checkpoints in the final certificate %d (%.1f%%); "+
		"no-quorum member-rounds %d (their votes' sizes %v), uncommitted %d; certificate sizes %v; commit after close p50 %s p99 %s; "+
		"checkpoint arrival after close p50 %s p99 %s max %s, later than 200 ms %.2f%%, 500 ms %.2f%%; "+
		"a member sent %d KB per round; votes received %d per member-round (%d B), arrival after close p50 %s p99 %s; "+
		"a 10 ms sleep woke late by p99 %s max %s; load average %s",
		lv.rounds, lv.full, pct(lv.full), lv.certified, pct(lv.certified), lv.finalFull, pct(lv.finalFull),
		lv.noQuorum, lv.noQuorumSizes, lv.missing, lv.sizes,
		quantile(lv.commitAt, 0.5).Round(time.Millisecond), quantile(lv.commitAt, 0.99).Round(time.Millisecond),
		quantile(lv.arrivals, 0.5).Round(time.Millisecond), quantile(lv.arrivals, 0.99).Round(time.Millisecond),
		quantile(lv.arrivals, 1).Round(time.Millisecond),
		100*later(lv.arrivals, 200*time.Millisecond), 100*later(lv.arrivals, 500*time.Millisecond),
		lv.sent/1000, len(lv.votes)/max(1, len(lv.commitAt)), lv.voteBytes,
		quantile(lv.votes, 0.5).Round(time.Millisecond), quantile(lv.votes, 0.99).Round(time.Millisecond),
		quantile(lv.stalls, 0.99).Round(time.Millisecond), quantile(lv.stalls, 1).Round(time.Millisecond), lv.load)
}

func TestSixMembersCertifyEveryRoundOverALossyWideAreaNetwork(t *testing.T) {
	const n, rounds = 6, 4
	f := startSimFederation(t, n, time.Second, netConditions{rtt: 100 * time.Millisecond, jitter: 20 * time.Millisecond, loss: 0.01}, nil)
	first := f.runRounds(t, rounds)
	lv := f.tally(first, rounds)
	t.Log(lv)
	if lv.certified != rounds {
		t.Errorf("%d of %d rounds certified by every member, want all: %v", lv.certified, rounds, lv)
	}
	for r := first; r < first+rounds; r++ {
		res, _ := f.nodes[0].result(r)
		cert := sameCertificate(t, f.nodes, r, len(res.Checkpoints))
		auditCertificate(t, f.fed, cert)
	}
}

// TestLivenessOverSimulatedNetworks measures, for 16 members over paths of
// 50, 150 and 300 ms round-trip time (±10% jitter, in order per path) and
// 1% or 5% loss, the share of rounds certified with every member's
// checkpoint, and fails a case where it is under 99% (run 100 rounds or more
// for that to mean something). It
// takes about a minute and a half per case, so it runs only with
// INTERMESH_SIMNET=1; INTERMESH_SIMNET_ROUNDS (default 30),
// INTERMESH_SIMNET_MEMBERS (16), INTERMESH_SIMNET_PERIOD (2s),
// INTERMESH_SIMNET_GRACE (a QuorumGrace other than the default) and INTERMESH_SIMNET_REORDER=1 (jitter that
// reorders a path's packets) change the run. See docs/scaling.md.
func TestLivenessOverSimulatedNetworks(t *testing.T) {
	if os.Getenv("INTERMESH_SIMNET") == "" {
		t.Skip("a long measurement: set INTERMESH_SIMNET=1")
	}
	rounds := envInt(t, "INTERMESH_SIMNET_ROUNDS", 30)
	members := envInt(t, "INTERMESH_SIMNET_MEMBERS", 16)
	var tune func(*Config)
	if s := os.Getenv("INTERMESH_SIMNET_GRACE"); s != "" {
		grace, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("INTERMESH_SIMNET_GRACE: %v", err)
		}
		tune = func(c *Config) { c.QuorumGrace = grace }
	}
	period := 2 * time.Second
	if s := os.Getenv("INTERMESH_SIMNET_PERIOD"); s != "" {
		p, err := time.ParseDuration(s)
		if err != nil || p < time.Second || p%time.Second != 0 {
			t.Fatalf("INTERMESH_SIMNET_PERIOD=%q: want whole seconds", s)
		}
		period = p
	}
	for _, rtt := range []time.Duration{50 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond} {
		for _, loss := range []float64{0.01, 0.05} {
			nc := netConditions{rtt: rtt, jitter: rtt / 5, loss: loss, reorder: os.Getenv("INTERMESH_SIMNET_REORDER") != ""}
			t.Run(nc.String(), func(t *testing.T) {
				f := startSimFederation(t, members, period, nc, tune)
				first := f.runRounds(t, rounds)
				lv := f.tally(first, rounds)
				t.Logf("%d members, period %s, %s: %v", members, period, nc, lv)
				if 100*lv.full < 99*lv.rounds {
					t.Errorf("%d of %d rounds (%.1f%%) certified with every member's checkpoint by every member, want at least 99%%",
						lv.full, lv.rounds, 100*float64(lv.full)/float64(lv.rounds))
				}
			})
		}
	}
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, s)
	}
	return v
}

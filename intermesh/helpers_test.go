package intermesh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/merkle"
)

var testListen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}

// testFederation returns a federation of n members named test/node<i> with
// a 1 s epoch period, and their keys.
func testFederation(t testing.TB, n int) (*config.Federation, []ed25519.PrivateKey) {
	t.Helper()
	return testFederationOf(t, n, time.Second)
}

// testFederationOf is testFederation with another epoch period (a whole
// number of seconds); its test clock is newClockOf(period).
func testFederationOf(t testing.TB, n int, period time.Duration) (*config.Federation, []ed25519.PrivateKey) {
	t.Helper()
	fed := &config.Federation{Name: "test", EpochPeriod: config.Duration{Duration: period}}
	var keys []ed25519.PrivateKey
	for i := range n {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		origin := "test/node" + strconv.Itoa(i)
		vkey, err := config.VerifierKey(origin, pub)
		if err != nil {
			t.Fatal(err)
		}
		id, err := config.PeerIDFromKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		fed.Members = append(fed.Members, config.Member{Origin: origin, PeerID: id.String(), Key: vkey})
		keys = append(keys, priv)
	}
	if err := fed.Validate(); err != nil {
		t.Fatal(err)
	}
	return fed, keys
}

// clock is a round clock the test advances by hand, for federations of a
// 1 s period: after round.Store(r) or round.Add (which returns the new r)
// it reads as the close of round r, (r+1) s, and then runs with real time
// for up to 900 ms (past every deadline of round r, short of the close of
// round r+1), where it stops until the test moves it again. So round r has
// just closed, its checkpoints are due, and its deadlines pass as they
// would after a real close.
type clock struct {
	round  roundCounter
	period time.Duration // the federation's; 1 s unless newClockOf
	base   *clock        // a skewed clock reads base's time plus skew
	skew   time.Duration // how far this clock is ahead of base
}

// roundCounter is the round a clock has closed last, and when it was set.
type roundCounter struct {
	mu  sync.Mutex
	r   uint64
	set time.Time
}

// Load returns the round closed last.
func (c *roundCounter) Load() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.r
}

// Store closes round r now.
func (c *roundCounter) Store(r uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.r, c.set = r, time.Now()
}

// Add closes the round d rounds later now, and returns it.
func (c *roundCounter) Add(d uint64) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.r += d
	c.set = time.Now()
	return c.r
}

func (c *roundCounter) read() (uint64, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.r, c.set
}

// clockRun is how long after being set a test clock of a 1 s period stops
// (in proportion for other periods).
const clockRun = 900 * time.Millisecond

func newClock() *clock { return newClockOf(time.Second) }

// newClockOf is a test clock for a federation of the given period: it
// stops 90% of a period after being set.
func newClockOf(period time.Duration) *clock {
	c := &clock{period: period}
	c.round.Store(uint64(time.Now().UnixNano() / int64(period)))
	return c
}

func (c *clock) now() time.Time {
	if c.base != nil {
		return c.base.now().Add(c.skew)
	}
	r, set := c.round.read()
	return time.Unix(0, int64(r+1)*int64(c.period)).Add(min(time.Since(set), c.period/time.Millisecond*clockRun/1000))
}

// skewed returns a clock that reads d later than c (earlier if d < 0); c
// moves it.
func (c *clock) skewed(d time.Duration) *clock { return &clock{base: c, skew: d} }

// testLog closes rounds of a fake log into signed checkpoints.
type testLog struct {
	origin string
	signer *noteSigner
	size   uint64
	prev   []byte
}

func newTestLog(t testing.TB, origin string, key ed25519.PrivateKey) *testLog {
	s, err := newNoteSigner(origin, key)
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{origin: origin, signer: s}
}

// root is the fake root hash of a tree of the given size.
func (l *testLog) root(size uint64) []byte {
	h := sha256.Sum256(fmt.Appendf(nil, "%s/%d", l.origin, size))
	return h[:]
}

// close returns the signed checkpoint of round r after appending grow leaves.
func (l *testLog) close(t testing.TB, r uint64, grow uint64) []byte {
	t.Helper()
	l.size += grow
	cp := merkle.Checkpoint{Origin: l.origin, Size: l.size, Root: l.root(l.size), Round: r, Time: int64(r), Prev: l.prev}
	n, err := merkle.SignCheckpoint(cp, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	l.prev = merkle.NoteHash(n)
	return n
}

// node is a running Mesh of a test and what its Commit hook received.
type node struct {
	*Mesh
	origin string
	log    *testLog
	stop   func()

	mu      sync.Mutex
	results map[uint64]RoundResult
	at      map[uint64]time.Time
	notify  chan uint64
}

func (n *node) result(r uint64) (RoundResult, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	res, ok := n.results[r]
	return res, ok
}

// startNode creates and runs a Mesh for member i; the test's cleanup stops
// it and checks that Run returns promptly.
func startNode(t testing.TB, fed *config.Federation, keys []ed25519.PrivateKey, i int, db *badger.DB, clk *clock, tl *testLog) *node {
	t.Helper()
	origin := fed.Members[i].Origin
	n := &node{origin: origin, log: tl, results: map[uint64]RoundResult{}, at: map[uint64]time.Time{}, notify: make(chan uint64, 1024)}
	if n.log == nil {
		n.log = newTestLog(t, origin, keys[i])
	}
	cfg := Config{
		Federation: fed, Origin: origin, Key: keys[i], Listen: testListen, DB: db,
		Commit: func(_ context.Context, r RoundResult) error {
			n.mu.Lock()
			n.results[r.Round] = r
			n.at[r.Round] = time.Now()
			n.mu.Unlock()
			select {
			case n.notify <- r.Round:
			default:
			}
			return nil
		},
	}
	if clk != nil {
		cfg.Now = clk.now
	}
	m, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Mesh = m
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
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
		})
	}
	t.Cleanup(n.stop)
	return n
}

// connect connects every pair of nodes and waits until each sees the others
// on both consensus topics.
func connect(t testing.TB, nodes []*node) {
	t.Helper()
	wait := 10*time.Second + time.Duration(len(nodes))*time.Second // 32 members make 496 connections
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			if err := a.AddPeer(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Host().Addrs()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, wait, "gossip topics joined", func() bool {
		for _, n := range nodes {
			if len(n.topics.checkpoint.ListPeers()) < len(nodes)-1 || len(n.topics.master.ListPeers()) < len(nodes)-1 {
				return false
			}
		}
		return true
	})
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// publish closes round r on every node given and publishes the checkpoints.
func publish(t testing.TB, nodes []*node, r uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, n := range nodes {
		if err := n.PublishCheckpoint(ctx, r, n.log.close(t, r, 3)); err != nil {
			t.Fatalf("%s: publish round %d: %v", n.origin, r, err)
		}
	}
}

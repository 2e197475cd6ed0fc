package intermesh

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/config"
)

// Reconnection backoff: a member that is not connected is dialled after
// minRedial, doubling after each failure up to maxRedial; connected members
// are checked every checkConnected.
const (
	minRedial      = 250 * time.Millisecond
	maxRedial      = 30 * time.Second
	checkConnected = 500 * time.Millisecond
	dialTimeout    = 5 * time.Second
	// gossipStall is how long a connected member may be missing from the
	// peers of a gossip topic before gossipWatchdog closes the connection.
	gossipStall = 3 * time.Second
	// leaveGrace is how long after gossipsub reports a connected member
	// leaving a topic the watchdog waits for it to come back (a replaced
	// stream says hello again within milliseconds on an idle machine, but
	// seconds can pass on an overloaded one).
	leaveGrace = 2 * time.Second
)

// startHost creates the libp2p host: the node's key as identity, TCP and
// QUIC only, Noise or TLS (libp2p's defaults), a gater admitting only
// members, and none of what a closed network does not need (relays, hole
// punching, NAT port mapping, AutoNAT probing, mDNS, libp2p's own metrics on
// the global registry), then Config.HostOptions.
func (m *Mesh) startHost(ctx context.Context) error {
	sk, err := crypto.UnmarshalEd25519PrivateKey(m.cfg.Key)
	if err != nil {
		return fmt.Errorf("%w: Key: %w", ErrConfig, err)
	}
	m.gater = newGater(m.byPeer, m.self.id)
	opts := []libp2p.Option{
		libp2p.Identity(sk),
		libp2p.ListenAddrStrings(m.cfg.Listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.ConnectionGater(m.gater),
		libp2p.DisableRelay(),
		libp2p.ForceReachabilityPublic(),
		libp2p.DisableMetrics(),
	}
	h, err := libp2p.New(append(opts, m.cfg.HostOptions...)...)
	if err != nil {
		return fmt.Errorf("intermesh: libp2p host on %v: %w", m.cfg.Listen, err)
	}
	m.host = h
	for _, fm := range m.fed.Members {
		mb := m.members[fm.Origin]
		if mb.id == h.ID() {
			continue
		}
		for _, s := range fm.Addrs {
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				h.Close()
				return fmt.Errorf("%w: Federation: member %q: address %q: %w", ErrConfig, fm.Origin, s, err)
			}
			h.Peerstore().AddAddr(mb.id, a, peerstore.PermanentAddrTTL)
		}
	}
	return ctx.Err()
}

// Addrs returns the addresses the host listens on, each ending in
// /p2p/<peer ID>.
func (m *Mesh) Addrs() []ma.Multiaddr {
	info := peer.AddrInfo{ID: m.host.ID(), Addrs: m.host.Addrs()}
	out, err := peer.AddrInfoToP2pAddrs(&info)
	if err != nil {
		return nil
	}
	return out
}

// AddPeer remembers more addresses of a member (beyond the federation file,
// e.g. a test's ephemeral ports) and dials it. The reconnector keeps
// redialling the addresses. Non-members are refused.
func (m *Mesh) AddPeer(ctx context.Context, info peer.AddrInfo) error {
	if _, ok := m.byPeer[info.ID]; !ok || info.ID == m.host.ID() {
		return fmt.Errorf("intermesh: add peer %s: not another member of %q", info.ID, m.fed.Name)
	}
	m.host.Peerstore().AddAddrs(info.ID, info.Addrs, peerstore.PermanentAddrTTL)
	if err := m.host.Connect(ctx, info); err != nil {
		return fmt.Errorf("intermesh: connect to %s: %w", info.ID, err)
	}
	return nil
}

// Peers returns the members this node is connected to.
func (m *Mesh) Peers() []peer.ID {
	var out []peer.ID
	for _, p := range m.host.Network().Peers() {
		if _, ok := m.byPeer[p]; ok {
			out = append(out, p)
		}
	}
	return out
}

// reconnectLoop keeps a connection to every other member, one goroutine per
// member, until ctx ends.
func (m *Mesh) reconnectLoop(ctx context.Context) {
	var wg sync.WaitGroup
	for id := range m.byPeer {
		if id == m.host.ID() {
			continue
		}
		wg.Go(func() { m.keepConnected(ctx, id) })
	}
	wg.Wait()
}

// keepConnected dials p whenever it is not connected (and not blocked), with
// exponential backoff between failures.
func (m *Mesh) keepConnected(ctx context.Context, p peer.ID) {
	delay := minRedial
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wait := checkConnected
		if m.host.Network().Connectedness(p) != network.Connected && !m.gater.blocked(p) {
			dctx, cancel := context.WithTimeout(ctx, dialTimeout)
			err := m.host.Connect(dctx, peer.AddrInfo{ID: p})
			cancel()
			if err != nil {
				wait = delay
				delay = min(2*delay, maxRedial)
			} else {
				m.log.Debug("connected to member", "peer", p, "member", m.byPeer[p])
				delay = minRedial
			}
		}
		t.Reset(wait)
	}
}

// gossipWatchdog closes the connection to any member that has been
// connected but missing from the peers of a gossip topic for gossipStall,
// or for leaveGrace after gossipsub reported it leaving a topic while the
// connection stayed up, so that the reconnector dials it afresh (a member
// closed again before it was healthy for 30 s waits longer: see
// gossipWatch); it runs until ctx ends.
//
// gossipsub learns a peer's topics only from the first message of that
// peer's stream to us, and forgets them whenever one of the two streams
// between us fails. A failed stream while the connection stays up (a
// restarted member's old QUIC connection reset while its new one is up, a
// duplicate connection closed, a reset stream) therefore leaves gossipsub
// sending that member nothing for as long as the connection lasts, and after
// four such failures within ten minutes it drops the peer altogether.
// Without this watchdog a member killed and restarted a few times could stay
// connected to the others and never again receive some of their
// checkpoints. A new connection starts both streams again. A graylisted
// member is left alone: gossipsub ignores its messages, subscriptions
// included, on purpose.
func (m *Mesh) gossipWatchdog(ctx context.Context) {
	kinds := topicKinds()
	left := make(chan peer.ID, 64)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, k := range kinds {
		h, err := m.topics.byKind(k).EventHandler()
		if err != nil {
			m.log.Error("gossip watchdog: topic events", "topic", k, "err", err)
			continue
		}
		wg.Go(func() {
			defer h.Cancel()
			for {
				ev, err := h.NextPeerEvent(ctx)
				if err != nil {
					return
				}
				if ev.Type != pubsub.PeerLeave {
					continue
				}
				select {
				case left <- ev.Peer:
				default: // the ticker catches it within gossipStall
				}
			}
		})
	}
	t := time.NewTicker(checkConnected / 2)
	defer t.Stop()
	watched := map[peer.ID]*gossipWatch{}
	for p := range m.byPeer {
		watched[p] = &gossipWatch{}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-left:
			if w := watched[p]; w != nil {
				w.left(time.Now())
			}
			continue
		case <-t.C:
		}
		seen := m.topicCounts()
		now := time.Now()
		for p, member := range m.byPeer {
			if p == m.host.ID() {
				continue
			}
			w := watched[p]
			connected := m.host.Network().Connectedness(p) == network.Connected && !m.Graylisted(member)
			var opened time.Time // of the newest connection
			if connected {
				for _, c := range m.host.Network().ConnsToPeer(p) {
					if o := c.Stat().Opened; o.After(opened) {
						opened = o
					}
				}
			}
			if !w.check(now, connected, seen[p] == len(kinds), opened) {
				continue
			}
			m.log.Warn("member connected but not exchanging gossip: reconnecting", "member", member,
				"topics", seen[p], "of", len(kinds), "resets_in_a_row", w.resets)
			m.metrics.gossipResets.WithLabelValues(member).Inc()
			if err := m.host.Network().ClosePeer(p); err != nil {
				m.log.Warn("closing the connection to a member", "member", member, "err", err)
			}
		}
	}
}

// gossipWatch is the watchdog's state of one member. A member that does not
// come back after its connection was closed waits twice as long before the
// next close (3, 6, 12, 24, then 48 s), so that a member slow to say hello
// (an overloaded machine) is not disconnected over and over; 30 s of
// healthy gossip start the count again. A connection younger than
// freshConn is given until it is freshConn old to say hello, unless
// gossipsub reported the member leaving a topic (a stream that failed).
type gossipWatch struct {
	deadline     time.Time // close the connection then if still absent; zero: not absent
	resets       int       // closes since the member was last healthy for healthyAgain
	healthySince time.Time // zero: not healthy now
}

// healthyAgain is how long a member must gossip on every topic before its
// resets are forgotten; freshConn is how long a new connection may take to
// bring gossip up.
const (
	healthyAgain = 30 * time.Second
	freshConn    = 10 * time.Second
)

// stall is how long a connected member may be absent before its
// connection is closed.
func (w *gossipWatch) stall() time.Duration { return gossipStall << min(w.resets, 4) }

// left records that gossipsub reported the member leaving a topic at now.
func (w *gossipWatch) left(now time.Time) {
	wait := w.stall()
	if w.resets == 0 {
		wait = leaveGrace
	}
	if w.deadline.IsZero() || now.Add(wait).Before(w.deadline) {
		w.deadline = now.Add(wait)
	}
}

// check updates the state at now (connected: connected and not graylisted;
// present: a gossip peer on every topic; opened: when the newest connection
// to the member was opened) and reports whether to close the connection.
func (w *gossipWatch) check(now time.Time, connected, present bool, opened time.Time) bool {
	switch {
	case !connected:
		w.deadline, w.healthySince = time.Time{}, time.Time{}
		return false
	case present:
		w.deadline = time.Time{}
		if w.healthySince.IsZero() {
			w.healthySince = now
		} else if now.Sub(w.healthySince) >= healthyAgain {
			w.resets = 0
		}
		return false
	}
	w.healthySince = time.Time{}
	if w.deadline.IsZero() {
		w.deadline = now.Add(w.stall())
		if fresh := opened.Add(freshConn); fresh.After(w.deadline) {
			w.deadline = fresh
		}
		return false
	}
	if now.Before(w.deadline) {
		return false
	}
	w.deadline = time.Time{}
	w.resets++
	return true
}

// topicCounts returns, for each peer, on how many of the gossip topics
// gossipsub knows it as a peer.
func (m *Mesh) topicCounts() map[peer.ID]int {
	seen := map[peer.ID]int{}
	for _, k := range topicKinds() {
		for _, p := range m.topics.byKind(k).ListPeers() {
			seen[p]++
		}
	}
	return seen
}

// GossipPeers returns the members this node exchanges gossip with now:
// connected, and known to gossipsub on every topic.
func (m *Mesh) GossipPeers() []peer.ID {
	kinds := topicKinds()
	seen := m.topicCounts()
	var out []peer.ID
	for _, p := range m.Peers() {
		if seen[p] == len(kinds) {
			out = append(out, p)
		}
	}
	return out
}

// gater admits connections with federation members only, and none with a
// blocked member. It is safe for concurrent use.
type gater struct {
	members map[peer.ID]string // read-only
	self    peer.ID

	mu  sync.RWMutex
	out map[peer.ID]bool // blocked
}

func newGater(members map[peer.ID]string, self peer.ID) *gater {
	return &gater{members: members, self: self, out: map[peer.ID]bool{}}
}

func (g *gater) block(p peer.ID, on bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if on {
		g.out[p] = true
	} else {
		delete(g.out, p)
	}
}

func (g *gater) blocked(p peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.out[p]
}

func (g *gater) admits(p peer.ID) bool {
	_, ok := g.members[p]
	return ok && p != g.self && !g.blocked(p)
}

// InterceptPeerDial allows dialling members only.
func (g *gater) InterceptPeerDial(p peer.ID) bool { return g.admits(p) }

// InterceptAddrDial allows any address of an admitted peer.
func (g *gater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.admits(p) }

// InterceptAccept accepts the connection; the peer is checked once known.
func (g *gater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured allows a connection once the peer has proven its key,
// if it is a member.
func (g *gater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.admits(p)
}

// InterceptUpgraded allows every secured connection.
func (g *gater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }

// noteSigner signs notes with an Ed25519 key named after an origin.
type noteSigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func newNoteSigner(origin string, key ed25519.PrivateKey) (*noteSigner, error) {
	vkey, err := config.VerifierKey(origin, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("verifier for %q: %w", origin, err)
	}
	return &noteSigner{name: origin, hash: v.KeyHash(), key: key}, nil
}

func (s *noteSigner) Name() string    { return s.name }
func (s *noteSigner) KeyHash() uint32 { return s.hash }
func (s *noteSigner) Sign(msg []byte) ([]byte, error) {
	return ed25519.Sign(s.key, msg), nil
}

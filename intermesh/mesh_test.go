package intermesh

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p/core/network"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/config"
)

// sameCertificate waits until every node holds a certificate for round r
// covering want checkpoints, the same text everywhere, and returns it.
func sameCertificate(t *testing.T, nodes []*node, r uint64, want int) Certificate {
	t.Helper()
	var cert Certificate
	waitFor(t, 5*time.Second, "the same certificate on every node", func() bool {
		var first []byte
		for _, n := range nodes {
			c, ok := n.Certificate(r)
			if !ok || len(c.Checkpoints) != want {
				return false
			}
			if first == nil {
				first, cert = c.MasterHash, c
			} else if !bytes.Equal(first, c.MasterHash) {
				return false
			}
		}
		return true
	})
	return cert
}

// auditCertificate checks a certificate the way an auditor does: with the
// note package and the federation's verifier keys alone, then
// VerifyCertificate.
func auditCertificate(t *testing.T, fed *config.Federation, cert Certificate) {
	t.Helper()
	var vs []note.Verifier
	for _, m := range fed.Members {
		v, err := note.NewVerifier(m.Key)
		if err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	n, err := note.Open(cert.Note, note.VerifierList(vs...))
	if err != nil {
		t.Fatalf("round %d: note.Open: %v", cert.Round, err)
	}
	if len(n.Sigs) < fed.EffectiveQuorum() {
		t.Fatalf("round %d: %d signatures, quorum %d", cert.Round, len(n.Sigs), fed.EffectiveQuorum())
	}
	c := Certificate{Round: cert.Round, Note: cert.Note, Checkpoints: cert.Checkpoints}
	if err := VerifyCertificate(&c, fed); err != nil {
		t.Fatalf("round %d: VerifyCertificate: %v", cert.Round, err)
	}
	if !bytes.Equal(c.MasterHash, cert.MasterHash) {
		t.Fatalf("round %d: recomputed master hash differs", cert.Round)
	}
}

func TestFourMembersAgreeOnEveryRound(t *testing.T) {
	// Real clocks and a 2 s period: round r closes at (r+1)·2 s, and its
	// deadlines count from then, so the test closes rounds on time.
	fed, keys := testFederationOf(t, 4, 2*time.Second)
	var nodes []*node
	for i := range 4 {
		nodes = append(nodes, startNode(t, fed, keys, i, nil, nil, nil))
	}
	connect(t, nodes)
	period := fed.EpochPeriod.Duration
	// Close rounds on the wall clock: round r ends at (r+1)·period.
	first := uint64(time.Now().UnixNano() / int64(period))
	for r := first; r < first+3; r++ {
		time.Sleep(time.Until(time.Unix(0, int64(r+1)*int64(period)))) // wait for the round's end, as the node's ticker does
		publish(t, nodes, r)
		cert := sameCertificate(t, nodes, r, 4)
		auditCertificate(t, fed, cert)
		for _, n := range nodes {
			waitFor(t, period, "the round's result committed", func() bool {
				res, ok := n.result(r)
				return ok && res.Outcome == OutcomeCertificate
			})
			res, _ := n.result(r)
			c := Certificate{Round: r, Note: res.Note, Checkpoints: res.Checkpoints}
			if err := VerifyCertificate(&c, fed); err != nil {
				t.Fatalf("%s: committed certificate of round %d: %v", n.origin, r, err)
			}
		}
	}
	for _, n := range nodes {
		if got := len(n.LatestCheckpoints()); got != 4 {
			t.Errorf("%s holds the latest checkpoint of %d members, want 4", n.origin, got)
		}
		if got := len(n.Peers()); got != 3 {
			t.Errorf("%s is connected to %d members, want 3", n.origin, got)
		}
		if c, ok := n.LatestCertificate(); !ok || c.Round != first+2 {
			t.Errorf("%s: latest certificate is of round %d, want %d", n.origin, c.Round, first+2)
		}
	}
}

func TestStoppedMemberDoesNotStopTheOthersAndRejoins(t *testing.T) {
	fed, keys := testFederation(t, 4)
	clk := newClock()
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var nodes []*node
	for i := range 4 {
		var d *badger.DB
		if i == 3 {
			d = db
		}
		nodes = append(nodes, startNode(t, fed, keys, i, d, clk, nil))
	}
	connect(t, nodes)
	round := func(live []*node, want int) {
		t.Helper()
		r := clk.round.Add(1)
		publish(t, live, r)
		auditCertificate(t, fed, sameCertificate(t, live, r, want))
	}
	round(nodes, 4)
	round(nodes, 4)

	stopped := nodes[3]
	stopped.stop()
	rest := nodes[:3]
	round(rest, 3)
	round(rest, 3)

	// Restart: a new host with the same key and database.
	restarted := startNode(t, fed, keys, 3, db, clk, stopped.log)
	if got := len(restarted.LatestCheckpoints()); got != 4 {
		t.Fatalf("after restart %d members' latest checkpoints were loaded, want 4", got)
	}
	nodes = append(rest, restarted)
	connect(t, nodes)
	round(nodes, 4)
	round(nodes, 4)
}

func TestNoQuorumCommitsOwnVote(t *testing.T) {
	fed, keys := testFederation(t, 4) // quorum 3
	clk := newClock()
	nodes := []*node{startNode(t, fed, keys, 0, nil, clk, nil), startNode(t, fed, keys, 1, nil, clk, nil)}
	connect(t, nodes)
	r := clk.round.Add(1)
	publish(t, nodes, r)
	for _, n := range nodes {
		waitFor(t, 3*time.Second, "a no-quorum result", func() bool { _, ok := n.result(r); return ok })
		res, _ := n.result(r)
		if res.Outcome != OutcomeNoQuorum {
			t.Fatalf("%s: outcome %q, want %q", n.origin, res.Outcome, OutcomeNoQuorum)
		}
		v, err := n.parseVote(mustVote(t, r, res.Note, coversOf(t, res.Checkpoints)))
		if err != nil {
			t.Fatalf("%s: committed vote: %v", n.origin, err)
		}
		if len(v.sigs) != 1 || v.sigs[0].Name != n.origin || v.count != 2 {
			t.Fatalf("%s: committed vote signed by %v over %d checkpoints, want own over 2", n.origin, v.sigs, v.count)
		}
		if _, ok := n.Certificate(r); ok {
			t.Fatalf("%s: a certificate formed without a quorum", n.origin)
		}
	}
}

func TestBlockedPeerIsDisconnectedUntilUnblocked(t *testing.T) {
	fed, keys := testFederation(t, 3)
	nodes := []*node{startNode(t, fed, keys, 0, nil, nil, nil), startNode(t, fed, keys, 1, nil, nil, nil)}
	connect(t, nodes)
	a, b := nodes[0], nodes[1]
	a.Block(b.ID())
	waitFor(t, 5*time.Second, "disconnected", func() bool { return len(a.Peers()) == 0 && len(b.Peers()) == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := b.Host().Connect(ctx, a.Host().Peerstore().PeerInfo(a.ID())); err == nil && len(a.Peers()) != 0 {
		t.Fatal("a blocked peer connected")
	}
	a.Unblock(b.ID())
	waitFor(t, 10*time.Second, "reconnected by the reconnector", func() bool { return len(a.Peers()) == 1 })
}

func TestLateCheckpointConvergesToTheLargerCertificate(t *testing.T) {
	fed, keys := testFederation(t, 4) // quorum 3
	clk := newClock()
	var nodes []*node
	for i := range 4 {
		nodes = append(nodes, startNode(t, fed, keys, i, nil, clk, nil))
	}
	connect(t, nodes)
	r := clk.round.Add(1)
	// Three members close the round; after QuorumGrace they certify the
	// three checkpoints they hold, and commit that.
	publish(t, nodes[:3], r)
	sameCertificate(t, nodes[:3], r, 3)
	for _, n := range nodes[:3] {
		waitFor(t, time.Second, "committed", func() bool { _, ok := n.result(r); return ok })
		if res, _ := n.result(r); res.Outcome != OutcomeCertificate || len(res.Checkpoints) != 3 {
			t.Fatalf("%s committed %q over %d checkpoints", n.origin, res.Outcome, len(res.Checkpoints))
		}
	}
	// The fourth checkpoint arrives late: everyone votes again over all four
	// and the larger certificate replaces the smaller one everywhere.
	publish(t, nodes[3:], r)
	auditCertificate(t, fed, sameCertificate(t, nodes, r, 4))
}

// resetGossipStreams resets n's outbound gossipsub streams to every
// connected member, as a transient stream failure does (a duplicate
// connection closed while a restarted member reconnects, a stream reset by a
// middlebox), leaving the connections up.
func resetGossipStreams(t *testing.T, n *node) int {
	t.Helper()
	reset := 0
	for _, c := range n.Host().Network().Conns() {
		for _, s := range c.GetStreams() {
			if strings.HasPrefix(string(s.Protocol()), "/meshsub/") && s.Stat().Direction == network.DirOutbound {
				s.Reset()
				reset++
			}
		}
	}
	return reset
}

func TestGossipRecoversAfterItsStreamsToConnectedMembersFail(t *testing.T) {
	// gossipsub forgets a peer's subscriptions when its stream to that peer
	// fails, and learns them again only from a new inbound stream, which a
	// peer that stays connected never opens: so one failed stream used to
	// cut n0's messages off from the others for as long as the connection
	// lasted (and four within 10 minutes made gossipsub drop the peer). The
	// other members then certify rounds without n0's checkpoint. The
	// watchdog (host.go) closes such a connection and redials.
	fed, keys := testFederation(t, 4) // quorum 3
	clk := newClock()
	var nodes []*node
	for i := range 4 {
		nodes = append(nodes, startNode(t, fed, keys, i, nil, clk, nil))
	}
	connect(t, nodes)
	r := clk.round.Add(1)
	publish(t, nodes, r)
	sameCertificate(t, nodes, r, 4)

	n0 := nodes[0]
	if got := resetGossipStreams(t, n0); got != 3 {
		t.Fatalf("reset %d gossip streams of %s, want 3", got, n0.origin)
	}
	waitFor(t, 5*time.Second, "n0 forgetting the others' topics", func() bool {
		return len(n0.topics.checkpoint.ListPeers()) == 0
	})
	waitFor(t, 20*time.Second, "n0 and the others exchanging gossip again", func() bool {
		for _, n := range nodes {
			if len(n.topics.checkpoint.ListPeers()) != 3 || len(n.topics.master.ListPeers()) != 3 {
				return false
			}
		}
		return true
	})
	for range 2 {
		r := clk.round.Add(1)
		publish(t, nodes, r)
		auditCertificate(t, fed, sameCertificate(t, nodes, r, 4))
	}
}

func TestGossipWatchClosesLaterEachTimeAMemberDoesNotComeBack(t *testing.T) {
	var w gossipWatch
	now := time.Unix(1_000_000, 0)
	// closeAfter steps the clock by 250 ms while the member stays connected
	// but absent, and returns how long it took until a close.
	closeAfter := func() time.Duration {
		t.Helper()
		start := now
		for range 1000 {
			now = now.Add(250 * time.Millisecond)
			if w.check(now, true, false, time.Time{}) {
				return now.Sub(start)
			}
		}
		t.Fatal("never closed")
		return 0
	}
	for i, want := range []time.Duration{3, 6, 12, 24, 48, 48} {
		if got := closeAfter(); got < want*time.Second || got > want*time.Second+500*time.Millisecond {
			t.Errorf("close %d after %s, want %ds", i+1, got, want)
		}
	}
	// A member not connected, or present, is never closed.
	for range 200 {
		now = now.Add(250 * time.Millisecond)
		if w.check(now, false, false, time.Time{}) {
			t.Fatal("closed a member that is not connected")
		}
	}
	// Present for 30 s: the count starts again, and a member reported
	// leaving a topic is closed 2 s later.
	for range 121 {
		now = now.Add(250 * time.Millisecond)
		if w.check(now, true, true, time.Time{}) {
			t.Fatal("closed a member that gossips")
		}
	}
	if w.resets != 0 {
		t.Fatalf("after 30 s of gossip, %d resets remembered", w.resets)
	}
	w.left(now)
	if got := closeAfter(); got != leaveGrace {
		t.Errorf("a member that left a topic was closed after %s, want %s", got, leaveGrace)
	}
	// Right after a close, leaving a topic waits the longer stall.
	w.left(now)
	if got := closeAfter(); got < 2*gossipStall {
		t.Errorf("second close after %s, want %s", got, 2*gossipStall)
	}
	// A new connection gets 10 s to bring gossip up, unless the member is
	// reported leaving a topic.
	w = gossipWatch{}
	opened := now
	start := now
	for !w.check(now, true, false, opened) {
		now = now.Add(250 * time.Millisecond)
	}
	if got := now.Sub(start); got < freshConn || got > freshConn+500*time.Millisecond {
		t.Errorf("a new connection was closed after %s, want %s", got, freshConn)
	}
	w = gossipWatch{}
	opened, start = now, now
	w.left(now)
	for !w.check(now, true, false, opened) {
		now = now.Add(250 * time.Millisecond)
	}
	if got := now.Sub(start); got != leaveGrace {
		t.Errorf("a new connection whose stream failed was closed after %s, want %s", got, leaveGrace)
	}
}

package intermesh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"slices"
	"strconv"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/intermesh/intermesh/config"
)

// The attacks of a Byzantine member on the rounds, each against three
// honest members (real Meshes on 127.0.0.1) and a fourth member's key in a
// rogue gossipsub host that publishes what the test says. Every test checks
// what the honest members do: their certificates cover every honest
// member's checkpoint, nobody honest is blamed, and the state the attacker
// can grow stays within its documented bound.

// rogue is a member's key in a plain gossipsub host, without validators.
type rogue struct {
	t      *testing.T
	origin string
	log    *testLog
	cp     *pubsub.Topic
	vote   *pubsub.Topic
	ev     *pubsub.Topic
}

// joinRogue starts a rogue host with member i's key, joins the consensus
// topics and connects it to the nodes.
func joinRogue(t *testing.T, fed *config.Federation, keys []ed25519.PrivateKey, i int, nodes []*node) *rogue {
	t.Helper()
	h := rogueHost(t, keys[i])
	ps, err := pubsub.NewGossipSub(context.Background(), h,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign), pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(messageID), pubsub.WithFloodPublish(true),
		pubsub.WithPeerOutboundQueueSize(queueSize)) // so that a flood is sent, not dropped here
	if err != nil {
		t.Fatal(err)
	}
	r := &rogue{t: t, origin: fed.Members[i].Origin, log: newTestLog(t, fed.Members[i].Origin, keys[i])}
	for _, j := range []struct {
		kind string
		into **pubsub.Topic
	}{{topicCheckpoint, &r.cp}, {topicMaster, &r.vote}, {topicEvidence, &r.ev}} {
		tp, err := ps.Join(TopicName(fed.Name, j.kind))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tp.Relay(); err != nil {
			t.Fatal(err)
		}
		*j.into = tp
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range nodes {
		if err := h.Connect(ctx, peer.AddrInfo{ID: n.ID(), Addrs: n.Host().Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the rogue sees the members on its topics", func() bool {
		return len(r.cp.ListPeers()) == len(nodes) && len(r.vote.ListPeers()) == len(nodes)
	})
	return r
}

// fork returns another log of the rogue's origin, signed with its key:
// checkpoints that contradict its own.
func (r *rogue) fork() *testLog { return &testLog{origin: r.origin, signer: r.log.signer} }

func (r *rogue) publish(tp *pubsub.Topic, data []byte) {
	r.t.Helper()
	if err := tp.Publish(context.Background(), data); err != nil {
		r.t.Fatal(err)
	}
}

// stateCounts is what a node's round loop holds, counted.
type stateCounts struct {
	rounds, ballots, earlyCheckpoints, earlyVotes int
	results                                       int
	ballotsSignedBy                               map[string]int // ballots holding a member's signature
	roundOf                                       map[uint64]bool
}

func (n *node) counts(t *testing.T) stateCounts {
	t.Helper()
	c := stateCounts{ballotsSignedBy: map[string]int{}, roundOf: map[uint64]bool{}}
	err := n.do(context.Background(), func(st *state) {
		c.rounds = len(st.rounds)
		for r, rs := range st.rounds {
			c.roundOf[r] = true
			c.ballots += len(rs.ballots)
			for _, b := range rs.ballots {
				for s := range b.sigs {
					c.ballotsSignedBy[s]++
				}
			}
		}
		c.earlyCheckpoints, c.earlyVotes = st.earlyHeld()
	})
	if err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	c.results = len(n.results)
	n.mu.Unlock()
	return c
}

// honestAndRogue starts three honest members and a rogue with member 3's
// key, all connected.
func honestAndRogue(t *testing.T) (*config.Federation, []*node, *rogue, *clock) {
	fed, keys := testFederation(t, 4)
	clk := newClock()
	var nodes []*node
	for i := range 3 {
		nodes = append(nodes, startNode(t, fed, keys, i, nil, clk, nil))
	}
	connect(t, nodes)
	return fed, nodes, joinRogue(t, fed, keys, 3, nodes), clk
}

// waitClockStopped waits until the test clock has run past every deadline
// of the round it closed last (it stops clockRun after being set).
func waitClockStopped(t *testing.T, clk *clock) {
	t.Helper()
	waitFor(t, 5*time.Second, "the test clock past every deadline", func() bool {
		_, set := clk.round.read()
		return time.Since(set) >= clockRun
	})
}

// coversHonest fails unless every honest node's certificate of round r
// covers the checkpoint of every honest node, and its committed result
// is a certificate covering them too.
func coversHonest(t *testing.T, nodes []*node, r uint64) {
	t.Helper()
	for _, n := range nodes {
		waitFor(t, 5*time.Second, "round "+strconv.FormatUint(r, 10)+" committed", func() bool { _, ok := n.result(r); return ok })
		res, _ := n.result(r)
		cert, _ := n.Certificate(r)
		for _, h := range nodes {
			prefix := []byte(h.origin + "\n")
			has := func(cps [][]byte) bool {
				return slices.ContainsFunc(cps, func(c []byte) bool { return bytes.HasPrefix(c, prefix) })
			}
			if res.Outcome != OutcomeCertificate || !has(res.Checkpoints) || !has(cert.Checkpoints) {
				t.Fatalf("%s: round %d committed %q over %d checkpoints (certificate over %d), without %s's",
					n.origin, r, res.Outcome, len(res.Checkpoints), len(cert.Checkpoints), h.origin)
			}
		}
		if ev := n.Evidence(); slices.ContainsFunc(ev, func(e Evidence) bool {
			return slices.ContainsFunc(nodes, func(h *node) bool { return h.origin == e.Origin })
		}) {
			t.Fatalf("%s holds evidence against an honest member: %v", n.origin, ev)
		}
	}
}

// TestAnEarlyCheckpointIsHeldUntilItsRoundCloses: the attacker publishes
// its checkpoint of round r while round r is still running. Honest members
// hold it (no round, no vote, no outcome) past every deadline the round
// would have had if it had started then; once r closes they certify every
// member's checkpoint, the early one included.
func TestAnEarlyCheckpointIsHeldUntilItsRoundCloses(t *testing.T) {
	t.Parallel()
	_, nodes, rg, clk := honestAndRogue(t)
	r := clk.round.Load() + 1 // running, not closed
	rg.publish(rg.cp, rg.log.close(t, r, 2))
	for _, n := range nodes {
		waitFor(t, 5*time.Second, "the early checkpoint held", func() bool { return n.counts(t).earlyCheckpoints == 1 })
	}
	waitClockStopped(t, clk)
	for _, n := range nodes {
		if c := n.counts(t); c.roundOf[r] || c.results != 0 || c.earlyCheckpoints > maxEarlyPerOrigin {
			t.Fatalf("%s: before round %d closed: round state %v, %d results, %d early checkpoints held", n.origin, r, c.roundOf[r], c.results, c.earlyCheckpoints)
		}
	}
	clk.round.Add(1) // round r closes
	publish(t, nodes, r)
	coversHonest(t, nodes, r)
	sameCertificate(t, nodes, r, 4)
}

// TestAVoteForARoundNotClosedCreatesNothing: votes for the running round
// are held (one per signer) and create nothing before the round closes;
// votes for a round that has not begun are rejected.
func TestAVoteForARoundNotClosedCreatesNothing(t *testing.T) {
	t.Parallel()
	fed, nodes, rg, clk := honestAndRogue(t)
	r := clk.round.Load() + 1
	rg.publish(rg.vote, makeVote(t, fed.Name, r, [][]byte{rg.log.close(t, r, 2)}, nil, rg.log.signer))
	before := make([]float64, len(nodes))
	for i, n := range nodes {
		before[i] = counter(t, n.Mesh, topicMaster, "reject")
	}
	rg.publish(rg.vote, makeVote(t, fed.Name, r+1, [][]byte{rg.log.close(t, r+1, 1)}, nil, rg.log.signer))
	for i, n := range nodes {
		waitFor(t, 5*time.Second, "the vote of a round not begun rejected", func() bool { return counter(t, n.Mesh, topicMaster, "reject") > before[i] })
		waitFor(t, 5*time.Second, "the early vote held", func() bool { return n.counts(t).earlyVotes == 1 })
	}
	waitClockStopped(t, clk)
	for _, n := range nodes {
		if c := n.counts(t); c.roundOf[r] || c.roundOf[r+1] || c.results != 0 || c.earlyVotes > 1 || c.ballots != 0 {
			t.Fatalf("%s: before round %d closed: rounds %v, %d results, %d ballots, %d early votes", n.origin, r, c.roundOf, c.results, c.ballots, c.earlyVotes)
		}
	}
	clk.round.Add(1)
	publish(t, nodes, r)
	coversHonest(t, nodes, r)
}

// TestVotesOfAnExcludedMemberCreateNoState: once the attacker is caught
// equivocating, its votes (here 200, each over a fresh checkpoint of its
// own, so 200 different texts) create no round state and no ballot; they
// cost it its score until gossipsub graylists it; the honest members
// still certify each other.
func TestVotesOfAnExcludedMemberCreateNoState(t *testing.T) {
	t.Parallel()
	fed, nodes, rg, clk := honestAndRogue(t)
	r := clk.round.Load()
	other := rg.fork()
	rg.publish(rg.cp, rg.log.close(t, r, 1))
	rg.publish(rg.cp, other.close(t, r, 2))
	for _, n := range nodes {
		if ev := n.waitEvidence(t, 1); ev[0].Origin != rg.origin {
			t.Fatalf("%s: evidence against %s", n.origin, ev[0].Origin)
		}
	}
	base := make([]stateCounts, len(nodes))
	ignoredBefore := make([]float64, len(nodes))
	for i, n := range nodes {
		base[i] = n.counts(t)
		ignoredBefore[i] = counter(t, n.Mesh, topicMaster, "ignore")
	}
	for i := range 200 {
		forged := rg.fork()
		rg.publish(rg.vote, makeVote(t, fed.Name, r, [][]byte{forged.close(t, r, uint64(3+i))}, nil, rg.log.signer))
	}
	for i, n := range nodes {
		// Every vote validated, unless gossipsub graylisted the sender.
		graylisted := func() bool { return counterValue(t, n.metrics.graylistings.WithLabelValues(rg.origin)) >= 1 }
		waitFor(t, 20*time.Second, "the votes handled", func() bool {
			return counter(t, n.Mesh, topicMaster, "ignore") >= ignoredBefore[i]+200 || graylisted()
		})
		if c := n.counts(t); c.rounds != base[i].rounds || c.ballots != base[i].ballots || c.ballotsSignedBy[rg.origin] != 0 {
			t.Fatalf("%s: after 200 votes of an excluded member: %d rounds (was %d), %d ballots (was %d), %d with its signature",
				n.origin, c.rounds, base[i].rounds, c.ballots, base[i].ballots, c.ballotsSignedBy[rg.origin])
		}
		waitFor(t, 10*time.Second, "the excluded member graylisted", graylisted)
	}
	r = clk.round.Add(1)
	publish(t, nodes, r)
	coversHonest(t, nodes, r)
}

// TestAFloodOfValidVotesIsBounded: the attacker, counted and not
// equivocating, signs a vote over every subset of the round's checkpoints
// (15 texts for 4 members). Each member counts at most
// maxTextsPerSigner texts of one signer per round, so its ballots stay
// within the bound; the votes past it cost the attacker score; the honest
// certificate covers everyone.
func TestAFloodOfValidVotesIsBounded(t *testing.T) {
	t.Parallel()
	fed, nodes, rg, clk := honestAndRogue(t)
	r := clk.round.Load()
	own := rg.log.close(t, r, 1)
	rg.publish(rg.cp, own)
	publish(t, nodes, r)
	sameCertificate(t, nodes, r, 4)
	cps := [][]byte{}
	for _, n := range nodes {
		cps = append(cps, n.LatestCheckpoints()[n.origin])
	}
	cps = append(cps, own) // origin order: node0..node3
	validated := func(n *node) float64 {
		return counter(t, n.Mesh, topicMaster, "accept") + counter(t, n.Mesh, topicMaster, "ignore")
	}
	before := make([]float64, len(nodes))
	for i, n := range nodes {
		before[i] = validated(n)
	}
	sent := 0
	for mask := 1; mask < 1<<len(cps); mask++ {
		var sub [][]byte
		for i, c := range cps {
			if mask&(1<<i) != 0 {
				sub = append(sub, c)
			}
		}
		rg.publish(rg.vote, makeVote(t, fed.Name, r, sub, nil, rg.log.signer))
		sent++
	}
	bound := len(fed.Members) + 1 // the documented bound, n+1 texts per member and round
	for i, n := range nodes {
		waitFor(t, 10*time.Second, "every flooded vote validated", func() bool { return validated(n) >= before[i]+float64(sent) })
		c := n.counts(t)
		if got := c.ballotsSignedBy[rg.origin]; got > bound {
			t.Fatalf("%s: %d ballots hold the attacker's signature, bound %d", n.origin, got, bound)
		}
		if c.ballots > len(fed.Members)*bound {
			t.Fatalf("%s: %d ballots, bound %d", n.origin, c.ballots, len(fed.Members)*bound)
		}
		if counterValue(t, n.metrics.penalties.WithLabelValues(rg.origin)) == 0 {
			t.Fatalf("%s: the flood cost the attacker nothing", n.origin)
		}
	}
	coversHonest(t, nodes, r)
}

// TestAnHonestMemberWithASkewedClockIsCertified: a member whose clock runs
// a quarter period fast publishes its checkpoint a quarter period early;
// one whose clock runs a quarter period slow, a quarter period late. In
// both cases the others hold or accept it, and every member ends with a
// certificate of the round over all four checkpoints, without blaming
// anyone. (The fast member's checkpoint is in every committed result; the
// slow one's arrives after the others' QuorumGrace, so it is in the
// certificate that replaces the committed one.)
func TestAnHonestMemberWithASkewedClockIsCertified(t *testing.T) {
	t.Parallel()
	for _, skew := range []time.Duration{250 * time.Millisecond, -250 * time.Millisecond} {
		t.Run(skew.String(), func(t *testing.T) {
			t.Parallel()
			fed, keys := testFederation(t, 4)
			clk := newClock()
			var nodes []*node
			skewed := clk.skewed(skew)
			for i := range 4 {
				c := clk
				if i == 3 {
					c = skewed
				}
				nodes = append(nodes, startNode(t, fed, keys, i, nil, c, nil))
			}
			connect(t, nodes)
			odd, punctual := nodes[3], nodes[:3]
			r := clk.round.Load() + 1
			closeOf := time.Unix(int64(r+1), 0)
			if skew > 0 {
				waitFor(t, 5*time.Second, "the fast clock at the round's close", func() bool { return !skewed.now().Before(closeOf) })
				publish(t, []*node{odd}, r)
				clk.round.Add(1)
				publish(t, punctual, r)
				coversHonest(t, nodes, r)
			} else {
				clk.round.Add(1)
				publish(t, punctual, r)
				waitFor(t, 5*time.Second, "the slow clock at the round's close", func() bool { return !skewed.now().Before(closeOf) })
				publish(t, []*node{odd}, r)
				coversHonest(t, punctual, r)
			}
			auditCertificate(t, fed, sameCertificate(t, nodes, r, 4))
			for _, n := range nodes {
				if ev := n.Evidence(); len(ev) != 0 {
					t.Fatalf("%s blames %v", n.origin, ev)
				}
			}
		})
	}
}

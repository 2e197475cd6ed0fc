package intermesh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/intermesh/intermesh/merkle"
)

// rogueHost is a plain libp2p host with gossipsub and no validators, to
// publish whatever a test wants on the federation's topics.
func rogueHost(t *testing.T, key ed25519.PrivateKey) host.Host {
	t.Helper()
	sk, err := crypto.UnmarshalEd25519PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(sk), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestRogueMemberGossipIsRejectedAndNeverCounts runs three honest members
// and a fourth member's key in a rogue host that publishes forged, oversized,
// replayed, far-future, non-member-signed and equivocating gossip.
func TestRogueMemberGossipIsRejectedAndNeverCounts(t *testing.T) {
	fed, keys := testFederation(t, 4)
	clk := newClock()
	var nodes []*node
	for i := range 3 {
		nodes = append(nodes, startNode(t, fed, keys, i, nil, clk, nil))
	}
	connect(t, nodes)

	// A host whose key is not a member's cannot connect at all.
	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	sh := rogueHost(t, strangerKey)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sh.Connect(ctx, peer.AddrInfo{ID: nodes[0].ID(), Addrs: nodes[0].Host().Addrs()}); err == nil {
		waitFor(t, 2*time.Second, "the stranger disconnected", func() bool { return len(sh.Network().ConnsToPeer(nodes[0].ID())) == 0 })
	}
	for _, p := range nodes[0].Host().Network().Peers() {
		if p == sh.ID() {
			t.Fatal("a non-member is connected")
		}
	}

	// The rogue holds member 3's key, so the gater admits it.
	rh := rogueHost(t, keys[3])
	ps, err := pubsub.NewGossipSub(context.Background(), rh,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign), pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(messageID), pubsub.WithFloodPublish(true))
	if err != nil {
		t.Fatal(err)
	}
	cpTopic, err := ps.Join(TopicName(fed.Name, topicCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	voteTopic, err := ps.Join(TopicName(fed.Name, topicMaster))
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range []*pubsub.Topic{cpTopic, voteTopic} {
		if _, err := tp.Relay(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		if err := rh.Connect(ctx, peer.AddrInfo{ID: n.ID(), Addrs: n.Host().Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the rogue sees the members on both topics", func() bool {
		return len(cpTopic.ListPeers()) == 3 && len(voteTopic.ListPeers()) == 3
	})

	r := clk.round.Load()
	rogue := newTestLog(t, fed.Members[3].Origin, keys[3])
	stranger := outsider(t, "test/stranger")
	signAs := func(s *noteSigner, origin string, round uint64) []byte {
		c := merkle.Checkpoint{Origin: origin, Size: 1, Root: rogue.root(1), Round: round, Time: 1}
		msg, err := merkle.SignCheckpoint(c, s)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	bad := []struct {
		name  string
		topic *pubsub.Topic
		kind  string
		data  []byte
	}{
		{"forged signature", cpTopic, topicCheckpoint, forge(t, signAs(rogue.signer, rogue.origin, r))},
		{"oversized", cpTopic, topicCheckpoint, bytes.Repeat([]byte("y"), maxCheckpointSize+10)},
		{"replayed old round", cpTopic, topicCheckpoint, signAs(rogue.signer, rogue.origin, r-4)},
		{"far-future round", cpTopic, topicCheckpoint, signAs(rogue.signer, rogue.origin, r+4)},
		{"non-member signed", cpTopic, topicCheckpoint, signAs(stranger, "test/stranger", r)},
		{"forged vote", voteTopic, topicMaster, forgeVote(t, makeVote(t, fed.Name, r, [][]byte{signAs(rogue.signer, rogue.origin, r)}, nil, rogue.signer))},
	}
	for _, b := range bad {
		before := make([]float64, len(nodes))
		for i, n := range nodes {
			before[i] = counter(t, n.Mesh, b.kind, "reject")
		}
		if err := b.topic.Publish(ctx, b.data); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, b.name+" rejected by every member", func() bool {
			for i, n := range nodes {
				if counter(t, n.Mesh, b.kind, "reject") <= before[i] {
					return false
				}
			}
			return true
		})
	}
	for _, n := range nodes {
		if cps := n.LatestCheckpoints(); len(cps) != 0 {
			t.Fatalf("%s counted %d checkpoints of rejected gossip", n.origin, len(cps))
		}
	}

	// Equivocation: two valid, different round-r checkpoints of member 3.
	other := newTestLog(t, rogue.origin, keys[3])
	for _, c := range [][]byte{rogue.close(t, r, 1), other.close(t, r, 2)} {
		if err := cpTopic.Publish(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		ev := n.waitEvidence(t, 1)
		if ev[0].Origin != rogue.origin {
			t.Fatalf("%s: evidence against %s", n.origin, ev[0].Origin)
		}
	}
	// The honest three certify rounds without member 3, whose vote for its
	// own round-r+1 checkpoint never counts.
	r = clk.round.Add(1)
	cp := rogue.close(t, r, 1)
	if err := voteTopic.Publish(ctx, makeVote(t, fed.Name, r, [][]byte{cp}, nil, rogue.signer)); err != nil {
		t.Fatal(err)
	}
	publish(t, nodes, r)
	cert := sameCertificate(t, nodes, r, 3)
	auditCertificate(t, fed, cert)
	for _, c := range cert.Checkpoints {
		if bytes.HasPrefix(c, []byte(rogue.origin+"\n")) {
			t.Fatal("the equivocating member's checkpoint was certified")
		}
	}
	if bytes.Contains(cert.Note, []byte("— "+rogue.origin+" ")) {
		t.Fatal("the equivocating member's signature is on the certificate")
	}
}

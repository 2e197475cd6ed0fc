package intermesh

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestMembersReconnectedAfterTheCloseGetTheRound: a federation of four cut
// in two halves around a round's close publishes each half's checkpoints to
// that half only. The halves reconnect before the vote deadline but after
// gossipsub's own retransmission window, so no gossip brings the other
// half's checkpoints again. Each side's resync hands them over, and every
// member certifies the round over all four. Without resync each half holds
// two checkpoints, under the quorum of three, and the round ends without a
// certificate (what the chaos test saw when a member restarted and another
// was partitioned at a round's close).
func TestMembersReconnectedAfterTheCloseGetTheRound(t *testing.T) {
	period := 20 * time.Second // vote deadline 10 s, commit deadline 15 s after the close
	fed, keys := testFederationOf(t, 4, period)
	clk := newClockOf(period)
	nodes := make([]*node, 4)
	for i := range nodes {
		nodes[i] = startNode(t, fed, keys, i, nil, clk, nil)
	}
	connect(t, nodes)

	halves := [2][]*node{nodes[:2], nodes[2:]}
	cut := func(on bool) {
		for _, a := range halves[0] {
			for _, b := range halves[1] {
				if on {
					a.Block(b.ID())
					b.Block(a.ID())
				} else {
					a.Unblock(b.ID())
					b.Unblock(a.ID())
				}
			}
		}
	}
	cut(true)
	waitFor(t, 10*time.Second, "the halves disconnected", func() bool {
		for _, a := range halves[0] {
			for _, b := range halves[1] {
				if a.Host().Network().Connectedness(b.ID()) == network.Connected {
					return false
				}
			}
		}
		return true
	})
	r := clk.round.Add(1)
	publish(t, nodes, r)
	// gossipsub offers a message again for 3 heartbeats (3 s) after it was
	// seen; wait past that, well before the vote deadline.
	time.Sleep(4 * time.Second)
	cut(false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, a := range halves[0] {
		for _, b := range halves[1] {
			if err := a.AddPeer(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Host().Addrs()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The round ends by its commit deadline, 15 s after its close.
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range nodes {
		for {
			if _, ok := n.result(r); ok || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, n := range nodes {
		res, ok := n.result(r)
		if !ok {
			t.Errorf("%s: round %d has not ended 20 s after its vote deadline", n.origin, r)
			continue
		}
		if res.Outcome != OutcomeCertificate || len(res.Checkpoints) != len(nodes) {
			t.Errorf("%s: round %d ended %s over %d checkpoints, want a certificate over all %d",
				n.origin, r, res.Outcome, len(res.Checkpoints), len(nodes))
		}
	}
}

// TestResyncRefusesHostileStreams: a member's resync stream that breaks the
// rules (a frame of another kind, empty, over the size limit, too many
// frames, a checkpoint whose signature does not verify) is cut and costs
// the member, and what it carried is not held; one cut short costs
// nothing, and a valid one is taken.
func TestResyncRefusesHostileStreams(t *testing.T) {
	fed, keys := testFederation(t, 4)
	clk := newClock()
	a := startNode(t, fed, keys, 0, nil, clk, nil)
	rogue := rogueHost(t, keys[1])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rogue.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	origin := fed.Members[1].Origin
	r := clk.round.Add(1)
	good := newTestLog(t, origin, keys[1]).close(t, r, 1)
	forged := append([]byte(nil), good...)
	forged[len(forged)-3] ^= 1 // in the signature
	fr := func(kind byte, size int, data []byte) []byte {
		b := []byte{kind, byte(size >> 24), byte(size >> 16), byte(size >> 8), byte(size)}
		return append(b, data...)
	}
	var tooMany []byte
	for range a.maxResyncFrames() + 1 {
		tooMany = append(tooMany, fr(resyncCheckpoint, len(good), good)...)
	}
	for _, c := range []struct {
		name   string
		stream []byte
		costs  bool
	}{
		{"unknown kind", fr(9, len(good), good), true},
		{"empty frame", fr(resyncCheckpoint, 0, nil), true},
		{"over the size limit", fr(resyncCheckpoint, maxCheckpointSize+1, make([]byte, maxCheckpointSize+1)), true},
		{"vote over its limit", fr(resyncVote, a.maxVoteSize+1, nil), true},
		{"forged signature", fr(resyncCheckpoint, len(forged), forged), true},
		{"cut short", fr(resyncCheckpoint, len(good), good[:10]), false},
		{"too many frames", tooMany, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := a.penalties.of(rogue.ID())
			s, err := rogue.NewStream(ctx, a.ID(), ResyncProtocol)
			if err != nil {
				t.Fatal(err)
			}
			s.Write(c.stream) // the node may reset the stream before reading it all
			s.CloseWrite()
			io.ReadAll(s) // until the node closes or resets it
			after := a.penalties.of(rogue.ID())
			if c.costs && after < before+penaltyBadRelay/2 {
				t.Errorf("penalty %.0f after the stream, %.0f before: the stream cost nothing", after, before)
			}
			if !c.costs && after > before {
				t.Errorf("penalty %.0f after the stream, %.0f before: a stream cut short cost the member", after, before)
			}
			if held, ok := a.LatestCheckpoints()[origin]; ok && string(held) != string(good) {
				t.Fatalf("the node holds a checkpoint of %s it was not sent validly:\n%s", origin, held)
			}
		})
	}
	if _, ok := a.LatestCheckpoints()[origin]; !ok {
		t.Error("the first frame of the stream of too many frames, a valid checkpoint, was not taken")
	}
}

package intermesh

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// TestCheckpointsArrivingTogetherCostOneReVote: a member that voted over a
// quorum and then receives the last checkpoints one after the other signs
// one more vote over the grown set, not one per arrival. Every vote carries
// every checkpoint it covers, so on slow, lossy paths a re-vote per arrival
// was most of a member's traffic.
func TestCheckpointsArrivingTogetherCostOneReVote(t *testing.T) {
	// 10 s rounds: QuorumGrace is 1 s, time enough for the arrivals below
	// to fall inside it on a loaded machine.
	fed, keys := testFederationOf(t, 7, 10*time.Second) // quorum 5
	clk := newClockOf(10 * time.Second)
	a := startNode(t, fed, keys, 0, nil, clk, nil)

	// A rogue host holding member 1's key relays the others' checkpoints
	// and listens to the votes.
	rg := joinRogue(t, fed, keys, 1, []*node{a})
	cpTopic := rg.cp
	votes, err := rg.vote.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	r := clk.round.Add(1)
	logs := make([]*testLog, len(keys))
	for i := 1; i < len(keys); i++ {
		logs[i] = newTestLog(t, fed.Members[i].Origin, keys[i])
	}
	send := func(i int) {
		if err := cpTopic.Publish(ctx, logs[i].close(t, r, 1)); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, []*node{a}, r)
	for i := 1; i <= 4; i++ {
		send(i)
	}
	count := func(want int) []int { // the sizes of the member's votes, in order
		t.Helper()
		var sizes []int
		for len(sizes) < want {
			msg, err := votes.Next(ctx)
			if err != nil {
				t.Fatalf("after %d votes of %s: %v", len(sizes), a.origin, err)
			}
			var w voteWire
			if err := json.Unmarshal(msg.Data, &w); err != nil {
				t.Fatal(err)
			}
			n, err := note.Open([]byte(w.Note), a.verifiers)
			if err != nil || len(n.Sigs) != 1 || n.Sigs[0].Name != a.origin {
				continue
			}
			sizes = append(sizes, len(w.Covers))
		}
		return sizes
	}
	if first := count(1); first[0] != 5 {
		t.Fatalf("the first vote covers %d checkpoints, want the quorum of 5", first[0])
	}
	// The last two checkpoints arrive one after the other.
	send(5)
	waitFor(t, 5*time.Second, "the member holding the sixth checkpoint", func() bool {
		_, ok := a.LatestCheckpoints()[fed.Members[5].Origin]
		return ok
	})
	send(6)
	if next := count(1); next[0] != 7 {
		t.Fatalf("the re-vote covers %d checkpoints, want all 7 (one re-vote for both arrivals)", next[0])
	}
}

package intermesh

import (
	"testing"
	"time"
)

// TestAQuorumSplitBetweenTwoSetsCertifiesTheSmaller: of four members, two
// run here and hold all four checkpoints, so they vote over four; member 2
// (whose replica of member 3 lags, say) votes over the three it holds, and
// member 3 does not vote. Two signatures over four, one over three: no
// quorum of three on either text, and without endorsement the round ends
// without a certificate. From the vote deadline the two members also sign
// member 2's set, which they hold every checkpoint of, and certify it.
func TestAQuorumSplitBetweenTwoSetsCertifiesTheSmaller(t *testing.T) {
	period := 10 * time.Second // vote deadline 5 s, commit deadline 7.5 s after the close
	fed, keys := testFederationOf(t, 4, period)
	clk := newClockOf(period)
	nodes := []*node{startNode(t, fed, keys, 0, nil, clk, nil), startNode(t, fed, keys, 1, nil, clk, nil)}
	connect(t, nodes)
	lagging, silent := joinRogue(t, fed, keys, 2, nodes), joinRogue(t, fed, keys, 3, nodes)

	r := clk.round.Add(1)
	publish(t, nodes, r)
	three := lagging.log.close(t, r, 1)
	lagging.publish(lagging.cp, three)
	silent.publish(silent.cp, silent.log.close(t, r, 1))
	waitFor(t, 5*time.Second, "both members holding all four checkpoints", func() bool {
		return len(nodes[0].LatestCheckpoints()) == 4 && len(nodes[1].LatestCheckpoints()) == 4
	})
	held := nodes[0].LatestCheckpoints()
	vote, err := SignVote(fed.Name, r, [][]byte{held[fed.Members[0].Origin], held[fed.Members[1].Origin], three}, lagging.log.signer)
	if err != nil {
		t.Fatal(err)
	}
	lagging.publish(lagging.vote, vote)

	for _, n := range nodes {
		waitFor(t, 10*time.Second, "the round's result", func() bool { _, ok := n.result(r); return ok })
		res, _ := n.result(r)
		if res.Outcome != OutcomeCertificate || len(res.Checkpoints) != 3 {
			t.Fatalf("%s: round %d ended %s over %d checkpoints, want a certificate over member 2's three", n.origin, r, res.Outcome, len(res.Checkpoints))
		}
	}
}

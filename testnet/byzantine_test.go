package testnet

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/node"
	"github.com/intermesh/intermesh/portal"
)

// The Byzantine member in a testnet of real nodes: node 3 is stopped and its
// key runs a Byzantine member (byzantine.go) that the test drives.

// byzantineTestnet starts four nodes, waits until they agree, and replaces
// node 3 by a Byzantine member. It returns node 3's latest checkpoint as
// the honest nodes hold it.
func byzantineTestnet(t *testing.T) (*Testnet, *Byzantine, merkle.Checkpoint) {
	t.Helper()
	tn := startTestnet(t, 4)
	waitForAgreement(t, tn, 20*time.Second, 4)
	if err := tn.StopNode(3); err != nil {
		t.Fatal(err)
	}
	b, err := tn.StartByzantine(t.Context(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := WaitFor(t.Context(), 10*time.Second, "the Byzantine member in the gossip mesh", func() bool {
		return b.Peers(KindCheckpoint) == 3 && b.Peers(KindMaster) == 3
	}); err != nil {
		t.Fatal(err)
	}
	signed := tn.Node(0).Mesh().LatestCheckpoints()[b.Origin]
	cp, _, err := merkle.OpenCheckpoint(signed, federationVerifiers(t, tn))
	if err != nil {
		t.Fatal(err)
	}
	return tn, b, cp
}

// honestAgree waits for a round after `after` that nodes 0-2 certified
// with the same certificate covering at least covered checkpoints, and
// checks that no honest node holds evidence against an honest one.
func honestAgree(t *testing.T, tn *Testnet, after uint64, covered int) RoundReport {
	t.Helper()
	s := node.Schedule{Period: tn.Period()}
	var rep RoundReport
	err := WaitFor(t.Context(), 20*time.Second, "a round the honest nodes certified", func() bool {
		for r := s.Round(time.Now()) - 1; r > after; r-- {
			rep = tn.RoundReport(r)
			if rep.Agreed() && coveredBy(rep) >= covered {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("%v; last report:\n%s", err, rep)
	}
	for i := range 3 {
		for _, e := range tn.Node(i).Mesh().Evidence() {
			if e.Origin != tn.opts.Origin(3) {
				t.Fatalf("node %d holds evidence against honest %s: %s", i, e.Origin, e.Reason)
			}
		}
	}
	return rep
}

// TestAByzantineMembersEarlyCheckpointDoesNotDecideTheRound is the attack
// of the issue: the member publishes its round-r checkpoint half a period
// before round r closes. The honest nodes hold it until the close, and
// certify round r over every member's checkpoint, not over that one alone.
func TestAByzantineMembersEarlyCheckpointDoesNotDecideTheRound(t *testing.T) {
	t.Parallel()
	tn, b, last := byzantineTestnet(t)
	s := node.Schedule{Period: tn.Period()}
	r := s.Round(time.Now()) + 1
	if err := WaitFor(t.Context(), 5*time.Second, "the middle of round r", func() bool {
		return !time.Now().Before(s.Close(r - 1).Add(tn.Period() / 2))
	}); err != nil {
		t.Fatal(err)
	}
	early, err := b.Checkpoint(merkle.Checkpoint{Size: last.Size, Root: last.Root, Round: r, Time: time.Now().Unix(), Map: last.Map})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(t.Context(), KindCheckpoint, early); err != nil {
		t.Fatal(err)
	}
	var rep RoundReport
	if err := WaitFor(t.Context(), 10*time.Second, "round r certified by the honest nodes", func() bool {
		rep = tn.RoundReport(r)
		return rep.Agreed()
	}); err != nil {
		t.Fatalf("%v\n%s", err, rep)
	}
	for i := range 3 {
		if rep.Nodes[i].Covered != 4 {
			t.Fatalf("node %d certified round %d over %d checkpoints, want all 4:\n%s", i, r, rep.Nodes[i].Covered, rep)
		}
	}
	honestAgree(t, tn, r, 3)
}

// TestAByzantineMemberThatWithholdsItsRecordsDoesNotStopTheOthers: the
// member keeps publishing checkpoints of a log nobody can fetch. The honest
// nodes keep certifying every round, over their own three checkpoints only
// (a member's checkpoint counts once the replica reproduces it, and these
// never can be), their replicas of each other verify, and nobody is
// blamed: withholding is not a contradiction.
func TestAByzantineMemberThatWithholdsItsRecordsDoesNotStopTheOthers(t *testing.T) {
	t.Parallel()
	tn, b, last := byzantineTestnet(t)
	runTraffic(t, tn, 200*time.Millisecond)
	s := node.Schedule{Period: tn.Period()}
	start := s.Round(time.Now())
	prev := tn.Node(0).Mesh().LatestCheckpoints()[b.Origin]
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	published := make(chan struct{})
	go func() { // every round, a checkpoint of a larger tree it never serves
		defer close(published)
		size := last.Size
		for r := start; ctx.Err() == nil; r++ {
			if WaitFor(ctx, 5*time.Second, "the round's close", func() bool { return !time.Now().Before(s.Close(r)) }) != nil {
				return
			}
			size += 10
			root := make([]byte, 32)
			copy(root, fmt.Sprint(size))
			cp := merkle.Checkpoint{Size: size, Root: root, Round: r, Time: time.Now().Unix()}
			if pc, err := merkle.ParseCheckpoint(noteText(prev)); err == nil && pc.Round == r-1 {
				cp.Prev = merkle.NoteHash(prev)
			}
			signed, err := b.Checkpoint(cp)
			if err != nil || b.Publish(ctx, KindCheckpoint, signed) != nil {
				return
			}
			prev = signed
		}
	}()
	rep := honestAgree(t, tn, start+2, 3)
	for i := range 3 {
		if rep.Nodes[i].Covered != 3 {
			t.Fatalf("node %d certified round %d over %d checkpoints, want the 3 it can check:\n%s", i, rep.Round, rep.Nodes[i].Covered, rep)
		}
	}
	if err := waitForReplicas(t, tn, checkpointSizes(t, tn), "the honest replicas verified"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		st := tn.Node(i).Mesh().Replicas()[b.Origin]
		if st.Untrusted != "" {
			t.Fatalf("node %d distrusts the withheld replica: %s", i, st.Untrusted)
		}
	}
	cancel()
	<-published
}

// relayLie is what the Byzantine relay serves of another member's log.
type relayLie struct {
	name     string
	answer   func(tn *Testnet, req TransferRequest) TransferAnswer
	penalty  bool // the relay is counted as a liar
	progress bool // it serves the checkpointed records honestly: node 1 progresses through it
}

// forged returns records of origin from `from`, with payloads no one
// signed.
func forged(origin string, from uint64, n int) []log.Record {
	recs := make([]log.Record, n)
	for i := range recs {
		recs[i] = log.Record{Seq: from + uint64(i), Origin: origin, Kind: portal.KindProfile, Identifier: fmt.Sprint("forged", from+uint64(i)),
			Payload: []byte("{}"), Time: time.Unix(1, 0).UTC()}
	}
	return recs
}

// honestUpTo returns origin's records [from, end) from node i's log or
// replica.
func honestUpTo(tn *Testnet, i int, origin string, from, end uint64) []log.Record {
	var recs []log.Record
	l := tn.Node(i).Log()
	for from < end {
		var page log.Page
		var err error
		if origin == l.Origin() {
			page, err = l.Range(context.Background(), log.Constraints{From: from, MaxEntries: int(end - from)})
		} else {
			rep, rerr := l.Replica(origin)
			if rerr != nil {
				return recs
			}
			page, err = rep.Range(context.Background(), log.Constraints{From: from, MaxEntries: int(end - from)})
		}
		if err != nil || len(page.Records) == 0 {
			return recs
		}
		recs = append(recs, page.Records...)
		from += uint64(len(page.Records))
	}
	return recs
}

// TestAByzantineRelayIsPenalizedNeverTheOrigin cuts node 1 off from nodes 0
// and 2, so that only the Byzantine member relays their records to it, and
// lets it lie: forged records inside the range the origin's checkpoint
// covers, honest records up to the checkpoint and forged ones past it
// (with a huge claimed size), or frames without end. Node 1 never appends
// a record its origin did not sign, counts the relay (where its pages
// contradict a checkpoint or break the page limits), and once it can reach
// node 2 again every replica verifies: no origin is blamed.
func TestAByzantineRelayIsPenalizedNeverTheOrigin(t *testing.T) {
	t.Parallel()
	lies := []relayLie{
		{"forged records inside the checkpointed range", func(tn *Testnet, req TransferRequest) TransferAnswer {
			return TransferAnswer{Size: req.From + 50, Records: forged(req.Origin, req.From, 50)}
		}, true, false},
		{"forged records past the checkpointed range", func(tn *Testnet, req TransferRequest) TransferAnswer {
			i := 0
			if req.Origin == tn.opts.Origin(2) {
				i = 2
			}
			cp, _, _ := latestCheckpointOf(tn, i)
			recs := honestUpTo(tn, i, req.Origin, req.From, max(req.From, cp.Size))
			return TransferAnswer{Size: 1 << 40, Records: append(recs, forged(req.Origin, req.From+uint64(len(recs)), 20)...)}
		}, false, true},
		{"frames without end", func(tn *Testnet, req TransferRequest) TransferAnswer {
			return TransferAnswer{Size: 1 << 40, Records: forged(req.Origin, req.From, 10), Endless: true}
		}, true, false},
	}
	for _, lie := range lies {
		t.Run(lie.name, func(t *testing.T) {
			t.Parallel()
			tn, b, _ := byzantineTestnet(t)
			b.ServeTransfer(func(req TransferRequest) TransferAnswer { return lie.answer(tn, req) })
			n1 := tn.Node(1).Mesh()
			for _, i := range []int{0, 2} {
				tn.Node(i).Mesh().Block(n1.ID())
			}
			runTraffic(t, tn, 100*time.Millisecond)
			liar := tn.opts.Origin(3)
			if lie.penalty {
				if err := WaitFor(t.Context(), 20*time.Second, "the lying relay counted by node 1", func() bool {
					return metric(t, tn, 1, fmt.Sprintf("intermesh_relay_pages_rejected_total{relay=%q}", liar)) >= 1
				}); err != nil {
					t.Fatal(err)
				}
			}
			trusted := func() {
				for _, o := range []int{0, 2} {
					if st := n1.Replicas()[tn.opts.Origin(o)]; st.Untrusted != "" {
						t.Fatalf("node 1 distrusts honest %s after the relay's lie: %s", st.Origin, st.Untrusted)
					}
				}
			}
			if lie.progress {
				// Node 1 verifies node 0's checkpoints through the liar
				// three times over, each with the liar's forged records
				// past it on offer, and never takes them.
				origin := tn.opts.Origin(0)
				seen := map[uint64]bool{}
				if err := WaitFor(t.Context(), 20*time.Second, "node 1 progressing through the relay", func() bool {
					trusted()
					seen[n1.Replicas()[origin].VerifiedSize] = true
					return len(seen) >= 4
				}); err != nil {
					t.Fatal(err)
				}
			}
			trusted()
			tn.Node(2).Mesh().Unblock(n1.ID())
			tn.Node(0).Mesh().Unblock(n1.ID())
			if err := waitForReplicas(t, tn, checkpointSizes(t, tn), "node 1's replicas verified past the lies"); err != nil {
				t.Fatal(err)
			}
			if ev := n1.Evidence(); len(ev) != 0 {
				t.Fatalf("node 1 blames %s: %s", ev[0].Origin, ev[0].Reason)
			}
		})
	}
}

// latestCheckpointOf is latestCheckpoint without a testing.T, for a
// Transfer handler.
func latestCheckpointOf(tn *Testnet, i int) (merkle.Checkpoint, []byte, bool) {
	signed, err := tn.Node(i).Tree().LatestCheckpoint()
	if err != nil || len(signed) == 0 {
		return merkle.Checkpoint{}, nil, false
	}
	cp, err := merkle.ParseCheckpoint(noteText(signed))
	return cp, signed, err == nil
}

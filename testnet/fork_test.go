package testnet

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/node"
)

func TestANodeRestartedWithALongerForkedLogIsCaughtWithAConsistencyProof(t *testing.T) {
	tn := startTestnet(t, 4)
	fed := tn.Federation()
	liar := tn.opts.Origin(3)
	waitForAgreement(t, tn, 15*time.Second, 4)
	if err := WaitFor(t.Context(), 10*time.Second, "node 3's log to grow", func() bool {
		return tn.Node(3).Log().Size() >= 3
	}); err != nil {
		t.Fatal(err)
	}
	// The honest nodes verify a checkpoint of node 3's log against their
	// replicas: the checkpoint the rewritten log will contradict.
	sizes := checkpointSizes(t, tn)
	if err := waitForReplicas(t, tn, sizes, "every replica verified"); err != nil {
		t.Fatal(err)
	}
	grown := int(tn.Node(3).Log().Size()) + 20
	if err := tn.StopNode(3); err != nil {
		t.Fatal(err)
	}
	s := node.Schedule{Period: time.Second}
	stopped := s.Round(time.Now())
	forkNode(t, tn, 3, grown)
	// Restart two rounds later at least, so that the rewritten log's first
	// checkpoint does not follow the last honest one's round: its prev line
	// cannot give it away, only its records can.
	if err := WaitFor(t.Context(), 5*time.Second, "two rounds to pass", func() bool {
		return s.Round(time.Now()) >= stopped+2
	}); err != nil {
		t.Fatal(err)
	}
	if err := tn.StartNode(t.Context(), 3); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()

	waitForEvidence(t, tn, 3, 5*time.Second, restarted)
	found := 0.0
	for i := range 3 {
		e := checkEvidence(t, tn, fed, i, liar)
		if e.Root1 == nil || len(e.Proof) == 0 || !strings.HasPrefix(e.Reason, "not-consistent") {
			t.Errorf("node %d's evidence is not consistency evidence: %q", i, e.Reason)
		}
		if got := metric(t, tn, i, "intermesh_evidence "); got != 1 {
			t.Errorf("node %d: intermesh_evidence is %v, want 1", i, got)
		}
		found += metric(t, tn, i, `intermesh_fork_investigations_total{result="evidence"}`)
	}
	if found == 0 {
		t.Error("no honest node counted a fork investigation that found evidence")
	}
	checkUncounted(t, tn, 3)
}

// checkUncounted checks that node liar's votes no longer count: a later
// certificate of the honest nodes (all but liar, which is the last node)
// carries neither its checkpoint nor its signature.
func checkUncounted(t *testing.T, tn *Testnet, liar int) {
	t.Helper()
	origin := tn.opts.Origin(liar)
	rep := waitForHonestCertificate(t, tn, liar)
	for i := range liar {
		cert, ok := tn.Node(i).Mesh().Certificate(rep)
		if !ok {
			continue
		}
		n, err := note.Open(cert.Note, federationVerifiers(t, tn))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range n.Sigs {
			if s.Name == origin {
				t.Errorf("node %d's certificate of round %d counts %s's signature", i, rep, origin)
			}
		}
		for _, c := range cert.Checkpoints {
			if strings.HasPrefix(string(c), origin+"\n") {
				t.Errorf("node %d's certificate of round %d covers %s's checkpoint", i, rep, origin)
			}
		}
	}
}

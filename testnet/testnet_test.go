package testnet

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/intermesh"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/node"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
)

// startTestnet starts n nodes with 1 s rounds on free ports.
func startTestnet(t testing.TB, n int) *Testnet {
	t.Helper()
	httpBase, err := FreeBasePort(n)
	if err != nil {
		t.Fatal(err)
	}
	p2pBase, err := FreeBasePort(n, httpBase)
	if err != nil {
		t.Fatal(err)
	}
	tn, err := Start(t.Context(), Options{Layout: Layout{
		Dir: t.TempDir(), Nodes: n, HTTPBasePort: httpBase, P2PBasePort: p2pBase, Period: time.Second,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tn.Close(); err != nil {
			t.Errorf("closing the testnet: %v", err)
		}
	})
	return tn
}

// federationVerifiers are the note verifiers of every member.
func federationVerifiers(t *testing.T, tn *Testnet) note.Verifiers {
	t.Helper()
	vs, err := tn.Federation().Verifiers()
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// waitForAgreement waits until some round after the current one has a
// certificate that every running node holds, and returns that round.
func waitForAgreement(t *testing.T, tn *Testnet, within time.Duration, covered int) RoundReport {
	t.Helper()
	s := node.Schedule{Period: time.Second}
	start := s.Round(time.Now())
	var rep RoundReport
	err := WaitFor(t.Context(), within, "a round every running node certified", func() bool {
		for r := s.Round(time.Now()) - 1; r > start; r-- {
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
	return rep
}

func coveredBy(rep RoundReport) int {
	for _, n := range rep.Nodes {
		if n.Running {
			return n.Covered
		}
	}
	return 0
}

func TestFourNodesAgreeOnEveryRoundAndCommitTheCertificate(t *testing.T) {
	tn := startTestnet(t, 4)
	rep := waitForAgreement(t, tn, 15*time.Second, 4)
	verifiers := federationVerifiers(t, tn)

	// Every node holds the same certificate, which verifies with the
	// federation's keys alone.
	for i := range 4 {
		cert, ok := tn.Node(i).Mesh().Certificate(rep.Round)
		if !ok {
			t.Fatalf("node %d has no certificate for round %d", i, rep.Round)
		}
		n, err := note.Open(cert.Note, verifiers)
		if err != nil {
			t.Fatalf("node %d: certificate does not verify: %v", i, err)
		}
		if len(n.Sigs) < tn.Federation().EffectiveQuorum() {
			t.Errorf("node %d: %d signatures, quorum %d", i, len(n.Sigs), tn.Federation().EffectiveQuorum())
		}
		if err := intermesh.VerifyCertificate(&cert, tn.Federation()); err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}

	// Each node commits its rounds to its own log, and Status proves it.
	for i := range 4 {
		n := tn.Node(i)
		if err := WaitFor(t.Context(), 5*time.Second, "a MasterHash record", func() bool {
			return countKind(t, n.Log(), intermesh.KindMasterHash) > 0
		}); err != nil {
			t.Fatal(err)
		}
	}
	checkStatusProofs(t, tn, 0)

	// The status page shows the same to a person.
	resp, err := http.Get(tn.PortalURL(1) + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Master-hash certificate", "testnet/master", "testnet/node0", "testnet/node3"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the status page lacks %q", want)
		}
	}
}

// countKind counts the records of a kind in a log.
func countKind(t *testing.T, l *log.Log, kind log.Kind) int {
	t.Helper()
	count := 0
	c := log.Constraints{MaxEntries: log.MaxPageEntries}
	for {
		page, err := l.Range(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Records {
			if r.Kind == kind {
				count++
			}
		}
		if page.PageKey == "" {
			return count
		}
		c.PageKey = page.PageKey
	}
}

// checkStatusProofs asks node i's Status (over HTTP) for its proof chains
// and verifies them with transparency-dev/merkle and sumdb/note alone.
func checkStatusProofs(t *testing.T, tn *Testnet, i int) {
	t.Helper()
	c, err := client.New(tn.PortalURL(i))
	if err != nil {
		t.Fatal(err)
	}
	verifiers := federationVerifiers(t, tn)
	err = WaitFor(t.Context(), 5*time.Second, "Status with proof chains", func() bool {
		resp, err := c.Status(context.Background())
		if err != nil || len(resp.Peers) == 0 {
			return false
		}
		own, _, err := merkle.OpenCheckpoint([]byte(resp.CheckpointValue), verifiers)
		if err != nil {
			t.Fatalf("node %d's CheckpointValue: %v", i, err)
		}
		for _, p := range resp.Peers {
			cp, _, err := merkle.OpenCheckpoint([]byte(p.Checkpoint), verifiers)
			if err != nil {
				t.Fatalf("peer %s checkpoint: %v", p.Origin, err)
			}
			cert, err := note.Open([]byte(p.MasterHash), verifiers)
			if err != nil {
				t.Fatalf("master hash of %s: %v", p.Origin, err)
			}
			// The certificate text: "<fed>/master", count, base64 M_r, "round r".
			lines := strings.Split(cert.Text, "\n")
			if len(lines) < 4 || lines[0] != tn.Federation().Name+"/master" || lines[1] != strconv.Itoa(len(resp.Peers)) {
				t.Fatalf("master hash text %q", cert.Text)
			}
			masterHash, err := base64.StdEncoding.DecodeString(lines[2])
			if err != nil {
				t.Fatalf("master hash text %q: %v", cert.Text, err)
			}
			leaf := rfc6962.DefaultHasher.HashLeaf(intermesh.MasterLeaf(cp.Origin, []byte(p.Checkpoint)))
			idx := originIndex(t, resp.Peers, p.Origin)
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, idx, uint64(len(resp.Peers)), leaf, p.MasterHashInclusion, masterHash); err != nil {
				t.Fatalf("%s is not in the master hash: %v", p.Origin, err)
			}
			if p.MasterRecordIndex == nil {
				t.Fatalf("%s: no MasterHash record index", p.Origin)
			}
			rec, err := tn.Node(i).Log().Get(*p.MasterRecordIndex)
			if err != nil || rec.Kind != intermesh.KindMasterHash {
				t.Fatalf("record %d: %v %v", *p.MasterRecordIndex, rec.Kind, err)
			}
			recLeaf := rfc6962.DefaultHasher.HashLeaf(rec.MarshalLeaf())
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, rec.Seq, own.Size, recLeaf, p.MasterRecordInclusion, own.Root); err != nil {
				t.Fatalf("the MasterHash record is not in node %d's checkpoint: %v", i, err)
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
}

// originIndex is the position of origin among the peers, in origin order.
func originIndex(t *testing.T, peers []portal.PeerProof, origin string) uint64 {
	t.Helper()
	for i, p := range peers {
		if p.Origin == origin {
			return uint64(i)
		}
	}
	t.Fatalf("%s not among the peers", origin)
	return 0
}

func TestAStoppedNodeDoesNotStopTheOthersAndRejoinsWhenRestarted(t *testing.T) {
	tn := startTestnet(t, 4)
	waitForAgreement(t, tn, 15*time.Second, 4)
	if err := tn.StopNode(3); err != nil {
		t.Fatal(err)
	}
	rep := waitForAgreement(t, tn, 10*time.Second, 3)
	for i := range 3 {
		if rep.Nodes[i].Signatures < 3 {
			t.Errorf("node %d: certificate with %d signatures while node 3 is down", i, rep.Nodes[i].Signatures)
		}
	}
	if err := tn.StartNode(t.Context(), 3); err != nil {
		t.Fatal(err)
	}
	rep = waitForAgreement(t, tn, 15*time.Second, 4)
	if !rep.Nodes[3].Running || rep.Nodes[3].MasterHash == nil {
		t.Fatalf("node 3 did not rejoin:\n%s", rep)
	}
}

func TestAPartitionedNodeMissesRoundsAndRejoinsWhenHealed(t *testing.T) {
	tn := startTestnet(t, 4)
	waitForAgreement(t, tn, 15*time.Second, 4)
	if err := tn.Partition(3); err != nil {
		t.Fatal(err)
	}
	// The three others certify without node 3's checkpoint.
	rep := waitForAgreementOf(t, tn, 10*time.Second, []int{0, 1, 2}, 3)
	for _, i := range []int{0, 1, 2} {
		if rep.Nodes[i].Covered != 3 {
			t.Errorf("node %d certified %d checkpoints while node 3 was cut off", i, rep.Nodes[i].Covered)
		}
	}
	if err := tn.Heal(3); err != nil {
		t.Fatal(err)
	}
	waitForAgreement(t, tn, 20*time.Second, 4)
}

// waitForAgreementOf waits for a round in which the given nodes hold the
// same certificate, covering exactly covered checkpoints.
func waitForAgreementOf(t *testing.T, tn *Testnet, within time.Duration, nodes []int, covered int) RoundReport {
	t.Helper()
	s := node.Schedule{Period: time.Second}
	start := s.Round(time.Now())
	var rep RoundReport
	err := WaitFor(t.Context(), within, "a round certified by the connected nodes", func() bool {
		for r := s.Round(time.Now()) - 1; r > start; r-- {
			rep = tn.RoundReport(r)
			first := rep.Nodes[nodes[0]].MasterHash
			ok := first != nil
			for _, i := range nodes {
				ok = ok && rep.Nodes[i].Covered == covered && bytes.Equal(rep.Nodes[i].MasterHash, first)
			}
			if ok {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("%v; last report:\n%s", err, rep)
	}
	return rep
}

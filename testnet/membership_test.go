package testnet

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/intermesh"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/node"
	"github.com/intermesh/intermesh/portal"
)

// propose makes version 1 of tn's federation with the given members and
// quorum (0: the default), in force inRounds rounds from now.
func propose(t *testing.T, tn *Testnet, members []config.Member, quorum int, inRounds uint64) *config.FederationVersion {
	t.Helper()
	g := config.Genesis(tn.Federation())
	next := &config.Federation{Name: g.Name, EpochPeriod: g.EpochPeriod, Quorum: quorum, Members: members}
	now := node.Schedule{Period: tn.Period()}.Round(time.Now())
	v, err := g.Next(next, now+inRounds)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// signBy signs text with the keys of the given nodes.
func signBy(t *testing.T, tn *Testnet, msg []byte, nodes ...int) []byte {
	t.Helper()
	for _, i := range nodes {
		s, err := tn.Signer(i)
		if err != nil {
			t.Fatal(err)
		}
		if msg, err = config.SignFederationUpdate(msg, s); err != nil {
			t.Fatal(err)
		}
	}
	return msg
}

// submit hands signed to the given running nodes as their operators would.
func submit(t *testing.T, tn *Testnet, signed []byte, nodes ...int) []node.FederationSubmission {
	t.Helper()
	var out []node.FederationSubmission
	for _, i := range nodes {
		sub, err := tn.Node(i).SubmitFederationUpdate(t.Context(), signed)
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		out = append(out, sub)
	}
	return out
}

func without(ms []config.Member, origin string) []config.Member {
	return slices.DeleteFunc(slices.Clone(ms), func(m config.Member) bool { return m.Origin == origin })
}

// waitCertifiedUnder waits for a round at or after v's effective round that
// every node of nodes certified with a certificate valid under v (its
// members and quorum) that covers every origin of want, and returns it.
func waitCertifiedUnder(t *testing.T, tn *Testnet, v *config.FederationVersion, nodes []int, want []string, within time.Duration) uint64 {
	t.Helper()
	s := node.Schedule{Period: tn.Period()}
	var found uint64
	var last string
	err := WaitFor(t.Context(), within, fmt.Sprintf("a round certified under federation version %d", v.Version), func() bool {
		for r := s.Round(time.Now()); r >= v.Effective && r > 0; r-- {
			ok := true
			for _, i := range nodes {
				n := tn.Node(i)
				if n == nil || n.Mesh() == nil {
					ok, last = false, fmt.Sprintf("node %d runs no Mesh", i)
					break
				}
				cert, has := n.Mesh().Certificate(r)
				if !has {
					ok, last = false, fmt.Sprintf("node %d has no certificate of round %d", i, r)
					break
				}
				if err := intermesh.VerifyCertificate(&cert, &v.Federation); err != nil {
					ok, last = false, fmt.Sprintf("node %d round %d: %v", i, r, err)
					break
				}
				if !covers(cert, want) {
					ok, last = false, fmt.Sprintf("node %d round %d: certificate does not cover %v", i, r, want)
					break
				}
			}
			if ok {
				found = r
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("%v (last: %s)", err, last)
	}
	return found
}

// covers reports whether cert holds a checkpoint of each origin.
func covers(cert intermesh.Certificate, origins []string) bool {
	have := map[string]bool{}
	for _, c := range cert.Checkpoints {
		if cp, err := merkle.ParseCheckpoint(noteText(c)); err == nil {
			have[cp.Origin] = true
		}
	}
	for _, o := range origins {
		if !have[o] {
			return false
		}
	}
	return true
}

// hasUpdateRecord reports whether node n's own log holds the
// FederationUpdate record of version v.
func hasUpdateRecord(t *testing.T, n *node.Node, v uint64) bool {
	t.Helper()
	c := log.Constraints{MaxEntries: log.MaxPageEntries}
	for {
		page, err := n.Log().Range(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range page.Records {
			if rec.Kind == node.KindFederationUpdate && rec.Identifier == fmt.Sprintf("federation/%d", v) {
				return true
			}
		}
		if page.PageKey == "" {
			return false
		}
		c.PageKey = page.PageKey
	}
}

func chainVersion(n *node.Node) uint64 {
	c := n.FederationChain()
	return c[len(c)-1].Version
}

func TestAFifthMemberJoinsARunningFederationAndItsCheckpointsAreCertified(t *testing.T) {
	tn := startTestnet(t, 4)
	waitForAgreement(t, tn, 15*time.Second, 4)
	i, fifth, err := tn.AddNodeDir()
	if err != nil {
		t.Fatal(err)
	}
	v1 := propose(t, tn, append(slices.Clone(tn.Federation().Members), fifth), 0, 6)
	signed := signBy(t, tn, v1.Text(), 0, 1)
	subs := submit(t, tn, signed, 0, 1, 2, 3)
	if subs[0].Accepted {
		t.Fatal("two of four signatures took effect")
	}
	signed = signBy(t, tn, signed, 2)
	if subs = submit(t, tn, signed, 0); subs[0].Accepted || !slices.Equal(subs[0].Proposal.Missing, []string{fifth.Origin}) {
		t.Fatalf("a quorum without the new member's own signature: %+v", subs[0])
	}
	signed = signBy(t, tn, signed, i)
	for _, sub := range submit(t, tn, signed, 0, 1, 2, 3) {
		if !sub.Accepted {
			t.Fatalf("the certified update was not accepted: %+v", sub)
		}
	}
	// The new node is given only the genesis file: it bootstraps the chain
	// of updates from the members and verifies it.
	if err := tn.StartNode(t.Context(), i); err != nil {
		t.Fatal(err)
	}
	r := waitCertifiedUnder(t, tn, v1, []int{0, 1, 2, 3, 4}, []string{fifth.Origin, tn.Federation().Members[0].Origin}, 30*time.Second)
	if r < v1.Effective {
		t.Fatalf("round %d certified before the effective round %d", r, v1.Effective)
	}
	// The round report counts the new member from its effective round on,
	// and its signature with its key.
	if rep := tn.RoundReport(r); !rep.Agreed() || !rep.Nodes[i].Member || rep.Nodes[0].Signatures < v1.Quorum {
		t.Errorf("the round report of round %d under version 1:\n%s", r, rep)
	}
	if rep := tn.RoundReport(v1.Effective - 1); rep.Nodes[i].Member {
		t.Errorf("the round report of round %d counts the new member before it joined:\n%s", v1.Effective-1, rep)
	}
	// The status page lists the five, and the new member's cells before
	// it joined read "not a member", not "missing".
	fs, err := tn.Node(0).FederationStatus(t.Context())
	if err != nil || fs == nil || !slices.Contains(fs.Members, fifth.Origin) || len(fs.Members) != 5 {
		t.Fatalf("node 0's status page after the join: %+v, %v", fs, err)
	}
	col := slices.Index(fs.Members, fifth.Origin)
	for _, rs := range fs.Rounds {
		if rs.Round < v1.Effective && rs.Cells[col] != portal.CellNotMember && rs.Cells[col] != portal.CellUnknown {
			t.Errorf("round %d, before the join: the new member's cell reads %q", rs.Round, rs.Cells[col])
		}
	}
	for j := range 5 {
		n := tn.Node(j)
		if chainVersion(n) != 1 || !hasUpdateRecord(t, n, 1) {
			t.Errorf("node %d: chain at version %d, FederationUpdate record: %v", j, chainVersion(n), hasUpdateRecord(t, n, 1))
		}
	}
	// The round before the effective round was certified by the four
	// alone: rounds never mix member sets.
	g := config.Genesis(tn.Federation())
	for j := range 4 {
		cert, ok := tn.Node(j).Mesh().Certificate(v1.Effective - 1)
		if !ok {
			continue // committed as no-quorum on this node: nothing to check
		}
		if err := intermesh.VerifyCertificate(&cert, &g.Federation); err != nil || covers(cert, []string{fifth.Origin}) {
			t.Errorf("node %d: round %d (before the change): %v, covers the new member: %v", j, cert.Round, err, covers(cert, []string{fifth.Origin}))
		}
	}
}

func TestARemovedMemberIsNoLongerCountedNorConnected(t *testing.T) {
	tn := startTestnet(t, 4)
	waitForAgreement(t, tn, 15*time.Second, 4)
	gone := tn.Federation().Members[3]
	v1 := propose(t, tn, without(tn.Federation().Members, gone.Origin), 0, 4)
	signed := signBy(t, tn, v1.Text(), 0, 1, 2)
	submit(t, tn, signed, 0, 1, 2) // node 3 learns it from the others' logs
	rest := []string{tn.Federation().Members[0].Origin, tn.Federation().Members[1].Origin, tn.Federation().Members[2].Origin}
	r := waitCertifiedUnder(t, tn, v1, []int{0, 1, 2}, rest, 30*time.Second)
	for j := range 3 {
		cert, _ := tn.Node(j).Mesh().Certificate(r)
		if covers(cert, []string{gone.Origin}) {
			t.Errorf("node %d: round %d's certificate covers the removed member", j, r)
		}
	}
	id, err := peer.Decode(gone.PeerID)
	if err != nil {
		t.Fatal(err)
	}
	err = WaitFor(t.Context(), 20*time.Second, "the removed member out of the mesh", func() bool {
		for j := range 3 {
			if slices.Contains(tn.Node(j).Mesh().Peers(), id) {
				return false
			}
		}
		return tn.Node(3).Mesh() == nil && chainVersion(tn.Node(3)) == 1
	})
	if err != nil {
		t.Fatal(err)
	}
	// Its connections are refused by the members' gaters from now on.
	if err := tn.Node(0).Mesh().Host().Connect(t.Context(), peer.AddrInfo{ID: id}); err == nil {
		t.Error("a member connected to the removed member")
	}
	if !hasUpdateRecord(t, tn.Node(3), 1) {
		t.Error("the removed member did not record the update that removed it")
	}
	// The status page no longer lists it.
	if fs, err := tn.Node(0).FederationStatus(t.Context()); err != nil || fs == nil || slices.Contains(fs.Members, gone.Origin) {
		t.Errorf("node 0's status page after the removal: %+v, %v", fs, err)
	}
	// The round report leaves the removed member, still running, out.
	rep := tn.RoundReport(r)
	if !rep.Agreed() || rep.Nodes[3].Member || !rep.Nodes[0].Member {
		t.Errorf("the round report of round %d under version 1:\n%s", r, rep)
	}
}

func TestAProposalSignedByLessThanAQuorumNeverTakesEffect(t *testing.T) {
	tn := startTestnet(t, 4)
	waitForAgreement(t, tn, 15*time.Second, 4)
	v1 := propose(t, tn, without(tn.Federation().Members, tn.Federation().Members[3].Origin), 0, 3)
	signed := signBy(t, tn, v1.Text(), 0, 1)
	for _, sub := range submit(t, tn, signed, 0, 1, 2, 3) {
		if sub.Accepted || len(sub.Proposal.Signers) != 2 {
			t.Fatalf("%+v", sub)
		}
	}
	// Well past the effective round, the four still certify under the genesis.
	g := config.Genesis(tn.Federation())
	after := &config.FederationVersion{Federation: g.Federation, Effective: v1.Effective + 2}
	waitCertifiedUnder(t, tn, after, []int{0, 1, 2, 3}, []string{tn.Federation().Members[3].Origin}, 30*time.Second)
	for j := range 4 {
		if v := chainVersion(tn.Node(j)); v != 0 {
			t.Errorf("node %d is at version %d", j, v)
		}
		if p := tn.Node(j).FederationPending(); len(p) != 1 || len(p[0].Signers) != 2 {
			t.Errorf("node %d pending: %+v", j, p)
		}
	}
}

func TestOfTwoConflictingProposalsOnlyOneTakesEffectEverywhere(t *testing.T) {
	tn := startTestnet(t, 4)
	waitForAgreement(t, tn, 15*time.Second, 4)
	ms := tn.Federation().Members
	a := propose(t, tn, without(ms, ms[3].Origin), 0, 5)
	b := propose(t, tn, without(ms, ms[2].Origin), 0, 5)
	// Each member's operator submits to its own node first: node 1 signed
	// a, so its node refuses its signature on b.
	sa := signBy(t, tn, a.Text(), 1)
	submit(t, tn, sa, 1)
	sb := signBy(t, tn, b.Text(), 1, 3)
	if _, err := tn.Node(1).SubmitFederationUpdate(t.Context(), sb); !errors.Is(err, node.ErrFederationConflict) {
		t.Fatalf("node 1 took its own signature on a second text for version 1: %v", err)
	}
	submit(t, tn, signBy(t, tn, b.Text(), 3), 3)
	sa = signBy(t, tn, sa, 0, 2)
	submit(t, tn, sa, 0, 2) // a is certified; b has one honest signature
	err := WaitFor(t.Context(), 30*time.Second, "every node at version 1", func() bool {
		for j := range 4 {
			if chainVersion(tn.Node(j)) != 1 {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	for j := range 4 {
		c := tn.Node(j).FederationChain()
		if c[1].Hash() != a.Hash() {
			t.Errorf("node %d took the other proposal", j)
		}
	}
	waitCertifiedUnder(t, tn, a, []int{0, 1, 2}, []string{ms[0].Origin, ms[1].Origin, ms[2].Origin}, 30*time.Second)
}

func TestAMemberOfflineDuringAChangeRejoinsUnderTheNewVersion(t *testing.T) {
	tn := startTestnet(t, 4)
	waitForAgreement(t, tn, 15*time.Second, 4)
	if err := tn.StopNode(3); err != nil {
		t.Fatal(err)
	}
	// Version 1 needs all four: certificates after it prove node 3 follows it.
	v1 := propose(t, tn, tn.Federation().Members, 4, 3)
	submit(t, tn, signBy(t, tn, v1.Text(), 0, 1, 2), 0, 1, 2)
	s := node.Schedule{Period: tn.Period()}
	if err := WaitFor(t.Context(), 20*time.Second, "the effective round to pass", func() bool {
		return s.Round(time.Now()) > v1.Effective+1
	}); err != nil {
		t.Fatal(err)
	}
	if err := tn.StartNode(t.Context(), 3); err != nil {
		t.Fatal(err)
	}
	if v, ok := tn.Node(3).FederationVersion(); !ok || v != 1 {
		t.Errorf("the rejoined member runs version %d (%v), want 1 from its start", v, ok)
	}
	waitCertifiedUnder(t, tn, v1, []int{0, 1, 2, 3}, []string{tn.Federation().Members[3].Origin}, 40*time.Second)
	if !hasUpdateRecord(t, tn.Node(3), 1) {
		t.Error("the rejoined member did not record the update")
	}
}

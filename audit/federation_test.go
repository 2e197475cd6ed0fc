package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/merkle"
)

// TestTheAuditJudgesEachRoundByTheMembersInForce builds a chain (genesis
// of four; version 1 removes node3 from round 100 with a quorum of 3 of 3;
// version 2 rotates node2's key from round 200) and checks the signature
// count of master-hash notes around each change.
func TestTheAuditJudgesEachRoundByTheMembersInForce(t *testing.T) {
	type key struct {
		member config.Member
		signer note.Signer
	}
	newKey := func(origin string) key {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		vkey, _ := config.VerifierKey(origin, pub)
		id, _ := config.PeerIDFromKey(pub)
		s, err := merkle.NewSigner(origin, priv)
		if err != nil {
			t.Fatal(err)
		}
		return key{config.Member{Origin: origin, PeerID: id.String(), Key: vkey}, s}
	}
	var ks []key
	fed := &config.Federation{Name: "f", EpochPeriod: config.Duration{Duration: time.Second}}
	for i := range 4 {
		ks = append(ks, newKey(fmt.Sprintf("f/node%d", i)))
		fed.Members = append(fed.Members, ks[i].member)
	}
	g := config.Genesis(fed)
	v1, err := g.Next(&config.Federation{Name: "f", EpochPeriod: fed.EpochPeriod, Members: fed.Members[:3]}, 100)
	if err != nil {
		t.Fatal(err)
	}
	new2 := newKey("f/node2")
	v2, err := v1.Next(&config.Federation{Name: "f", EpochPeriod: fed.EpochPeriod, Members: []config.Member{ks[0].member, ks[1].member, new2.member}}, 200)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := NewKeys(fed)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.setChain([]*config.FederationVersion{g, v1, v2}); err != nil {
		t.Fatal(err)
	}
	vote := func(round uint64, signers ...note.Signer) string {
		text := fmt.Sprintf("f/master\n1\n%s\nround %d\n", base64.StdEncoding.EncodeToString(make([]byte, 32)), round)
		msg, err := note.Sign(&note.Note{Text: text}, signers...)
		if err != nil {
			t.Fatal(err)
		}
		return string(msg)
	}
	tests := []struct {
		name       string
		round      uint64
		signers    []note.Signer
		quorumFail bool
	}{
		{"three of four before the removal make the genesis quorum", 99, []note.Signer{ks[0].signer, ks[1].signer, ks[3].signer}, false},
		{"the removed member's signature does not count from its round", 100, []note.Signer{ks[0].signer, ks[1].signer, ks[3].signer}, true},
		{"the three remaining make the new quorum", 100, []note.Signer{ks[0].signer, ks[1].signer, ks[2].signer}, false},
		{"the old key still counts before the rotation's round", 199, []note.Signer{ks[0].signer, ks[1].signer, ks[2].signer}, false},
		{"the old key no longer counts from the rotation's round", 200, []note.Signer{ks[0].signer, ks[1].signer, ks[2].signer}, true},
		{"the new key counts from the rotation's round", 200, []note.Signer{ks[0].signer, ks[1].signer, new2.signer}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := keys.verifyMasterNote(vote(tc.round, tc.signers...), nil, tc.round, true)
			if err == nil {
				t.Fatal("a note with no checkpoints verified")
			}
			if got := strings.Contains(err.Error(), "the quorum is"); got != tc.quorumFail {
				t.Fatalf("quorum failure %v, want %v: %v", got, tc.quorumFail, err)
			}
		})
	}
	if q := keys.quorumAt(99); q != 3 {
		t.Errorf("quorum in round 99: %d", q)
	}
	if _, ok := keys.verifierAt("f/node3", 150); ok {
		t.Error("node3 is a member after its removal")
	}
	if v, ok := keys.keyOf("f/node2", 250); !ok || v.KeyHash() != new2.signer.KeyHash() {
		t.Error("node2's key after the rotation is not the new one")
	}
	if v, ok := keys.keyOf("f/node3", 150); !ok || v.KeyHash() != ks[3].signer.KeyHash() {
		t.Error("the removed node3's own log (still auditable) is not read with its last key")
	}
	if v, ok := keys.keyOf("f/node2", 150); !ok || v.KeyHash() != ks[2].signer.KeyHash() {
		t.Error("node2's key before the rotation is not the old one")
	}
}

// TestTheAuditFailsALogThatTookABackdatedUpdate walks a log's records in
// order: a certified FederationUpdate record is backdated when the log
// certified a round from its effective round on before it.
func TestTheAuditFailsALogThatTookABackdatedUpdate(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	vkey, _ := config.VerifierKey("f/node0", pub)
	id, _ := config.PeerIDFromKey(pub)
	fed := &config.Federation{Name: "f", EpochPeriod: config.Duration{Duration: time.Second},
		Members: []config.Member{{Origin: "f/node0", PeerID: id.String(), Key: vkey}}}
	g := config.Genesis(fed)
	next := *fed
	next.Name = "f"
	next.Quorum = 1
	v1, err := g.Next(&next, 100)
	if err != nil {
		t.Fatal(err)
	}
	s, err := merkle.NewSigner("f/node0", priv)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := config.SignFederationUpdate(v1.Text(), s)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		certified int    // certificates before the record
		last      uint64 // the latest round they certified
		backdated bool
	}{
		{"no round certified before it", 0, 0, false},
		{"the log certified up to the round before the effective one", 5, 99, false},
		{"the log certified the effective round", 5, 100, true},
		{"the log certified rounds after the effective one", 5, 150, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &auditor{chain: []*config.FederationVersion{g, v1}, report: &Report{Failures: []Failure{}}}
			n := &nodeAudit{rep: &NodeReport{Origin: "f/node0", RoundsCertified: tc.certified, LastRound: tc.last}}
			a.checkFederationRecord(n, 7, &Leaf{Kind: "FederationUpdate", Identifier: "federation/1", Payload: signed})
			failed := n.rep.Checks[CheckFederationRecords].Failed == 1
			if failed != tc.backdated {
				t.Fatalf("failed %v, want %v: %+v", failed, tc.backdated, a.report.Failures)
			}
			if failed && !strings.Contains(a.report.Failures[0].Detail, "backdated") || failed && !strings.Contains(a.report.Failures[0].Detail, "f/node0") {
				t.Fatalf("the failure does not say it is backdated, nor who signed: %s", a.report.Failures[0].Detail)
			}
		})
	}
}

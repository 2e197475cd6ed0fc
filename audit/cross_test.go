package audit

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/intermesh"
	"github.com/intermesh/intermesh/merkle"
)

// certifyNotes makes the certificate of round over the given checkpoint
// notes (origin order), signed by every signer.
func certifyNotes(t *testing.T, keys *Keys, signers []note.Signer, round uint64, notes []string) *Certificate {
	t.Helper()
	var origins []string
	for _, n := range notes {
		origins = append(origins, strings.SplitN(n, "\n", 2)[0])
	}
	mh, err := intermesh.MasterHash(origins, stringsToBytes(notes))
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: fmt.Sprintf("fed/master\n%d\n%s\nround %d\n", len(notes), b64(mh), round)}, signers...)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := keys.verifyMasterNote(string(msg), notes, round, true)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestCertificatesOfOneRoundAgreeUnlessTheyHoldDifferentCheckpoints(t *testing.T) {
	fed, signers := testMembers(t, 4)
	keys := mustKeys(t, fed)
	checkpoint := func(i int, rootByte byte) string {
		b, err := merkle.SignCheckpoint(merkle.Checkpoint{Origin: signers[i].Name(), Size: 5, Root: bytes.Repeat([]byte{rootByte}, 32), Round: 9, Time: 9}, signers[i])
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	all := []string{checkpoint(0, 0), checkpoint(1, 1), checkpoint(2, 2), checkpoint(3, 3)}
	full := certifyNotes(t, keys, signers, 9, all)
	if why := disagreement(full, certifyNotes(t, keys, signers, 9, all)); why != "" {
		t.Errorf("the same certificate disagrees: %s", why)
	}
	early := certifyNotes(t, keys, signers, 9, all[:3])
	if why := disagreement(full, early); why != "" {
		t.Errorf("a certificate formed before the last checkpoint arrived disagrees: %s", why)
	}
	forked := certifyNotes(t, keys, signers, 9, []string{all[0], checkpoint(1, 7), all[2], all[3]})
	if why := disagreement(full, forked); !strings.Contains(why, "fed/node1") {
		t.Errorf("certificates with two checkpoints of fed/node1: %q", why)
	}
}

func TestTheAuditFindsEquivocationAcrossNodes(t *testing.T) {
	fed, signers := testMembers(t, 2)
	keys := mustKeys(t, fed)
	open := func(size uint64, rootByte byte, round uint64, prev []byte) Checkpoint {
		b, err := merkle.SignCheckpoint(merkle.Checkpoint{Origin: signers[1].Name(), Size: size, Root: bytes.Repeat([]byte{rootByte}, 32), Round: round, Time: 1, Prev: prev}, signers[1])
		if err != nil {
			t.Fatal(err)
		}
		cp, err := keys.OpenCheckpoint(string(b))
		if err != nil {
			t.Fatal(err)
		}
		return cp
	}
	a := &auditor{keys: keys, report: &Report{}}
	honest := &nodeAudit{rep: &NodeReport{Origin: "fed/node0", URL: "http://a"}}
	r5 := open(10, 1, 5, nil)
	honest.observe(r5, "certificate of round 5")
	honest.observe(open(12, 1, 6, noteDigest(r5.Note)), "certificate of round 6")
	liar := &nodeAudit{rep: &NodeReport{Origin: "fed/node1", URL: "http://b"}}
	liar.observe(open(10, 2, 8, nil), "/checkpoint")
	a.nodes = []*nodeAudit{honest, liar}
	a.report.Nodes = []*NodeReport{honest.rep, liar.rep}
	a.checkEquivocation()
	if len(a.report.Failures) != 1 || a.report.Failures[0].Origin != "fed/node1" || a.report.Failures[0].Check != CheckEquivocation {
		t.Fatalf("failures %v", a.report.Failures)
	}
	// Two pieces of evidence: two roots for size 10, and a tree that shrank
	// from 12 (round 6) to 10 (round 8).
	if len(a.report.Evidence) != 2 || !strings.Contains(a.report.Evidence[0].Reason+a.report.Evidence[1].Reason, "two roots for tree size 10") {
		t.Fatalf("evidence %+v", a.report.Evidence)
	}
	// The same pair found again (say, in Status) is the same evidence.
	e := a.report.Evidence[0]
	a.report.addEvidence(e.Origin, e.Reason, [2]string{e.Notes[1], e.Notes[0]}, "Status of somebody")
	if len(a.report.Evidence) != 2 || len(a.report.Failures) != 1 || len(a.report.Evidence[0].Found) != 2 {
		t.Fatalf("evidence counted twice: %+v", a.report.Evidence)
	}
}

package intermesh

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/intermesh/intermesh/merkle"
)

// forkedLogs returns the leaf hashes of an honest log of n leaves and of a
// rewritten one of m > n leaves that differs at leaf 2.
func forkedLogs(n, m int) (honest, rewritten [][]byte) {
	for i := range m {
		h := rfc6962.DefaultHasher.HashLeaf(fmt.Appendf(nil, "record %d", i))
		if i < n {
			honest = append(honest, h)
		}
		if i == 2 {
			h = rfc6962.DefaultHasher.HashLeaf([]byte("rewritten"))
		}
		rewritten = append(rewritten, h)
	}
	return honest, rewritten
}

// signedCheckpoint signs the checkpoint of origin's tree over leaves.
func signedCheckpoint(t *testing.T, s *noteSigner, leaves [][]byte, round uint64) []byte {
	t.Helper()
	root, err := merkle.LeafRoot(leaves, uint64(len(leaves)))
	if err != nil {
		t.Fatal(err)
	}
	n, err := merkle.SignCheckpoint(merkle.Checkpoint{Origin: s.Name(), Size: uint64(len(leaves)), Root: root, Round: round, Time: int64(round)}, s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// notConsistent returns consistency evidence against the member of s: a
// checkpoint of 5 leaves, one of a rewritten log of 12, the rewritten log's
// root at 5 and the proof.
func notConsistent(t *testing.T, s *noteSigner) Evidence {
	t.Helper()
	honest, rewritten := forkedLogs(5, 12)
	root1, err := merkle.LeafRoot(rewritten, 5)
	if err != nil {
		t.Fatal(err)
	}
	p, err := merkle.LeafConsistencyProof(rewritten, 5, 12)
	if err != nil {
		t.Fatal(err)
	}
	return Evidence{
		Origin: s.Name(),
		Notes:  [2][]byte{signedCheckpoint(t, s, honest, 100), signedCheckpoint(t, s, rewritten, 103)},
		Root1:  root1,
		Proof:  p,
	}
}

func TestVerifyEvidenceOfALogThatIsNotAnExtension(t *testing.T) {
	fed, keys := testFederation(t, 2)
	s0 := newTestLog(t, fed.Members[0].Origin, keys[0]).signer
	s1 := newTestLog(t, fed.Members[1].Origin, keys[1]).signer
	valid := notConsistent(t, s0)
	other := notConsistent(t, s1)
	honest, _ := forkedLogs(12, 12)
	extension := Evidence{Origin: s0.Name(), Notes: [2][]byte{valid.Notes[0], signedCheckpoint(t, s0, honest, 103)}}
	extension.Root1, _ = merkle.LeafRoot(honest, 5)
	extension.Proof, _ = merkle.LeafConsistencyProof(honest, 5, 12)
	empty := signedCheckpoint(t, s0, nil, 99)

	with := func(f func(e *Evidence)) Evidence {
		e := valid
		e.Proof = append([][]byte(nil), valid.Proof...)
		f(&e)
		return e
	}
	tests := []struct {
		name string
		e    Evidence
		fail string // in the error; "" if the evidence is valid
	}{
		{"a root at the earlier size that the later tree proves is evidence", valid, ""},
		{"the same evidence of another member is evidence", other, ""},
		{"a log that extends the earlier checkpoint is not evidence", extension, "root of the first checkpoint"},
		{"root1 equal to the earlier checkpoint's root is not evidence", with(func(e *Evidence) { e.Root1 = extension.Root1 }), "root of the first checkpoint"},
		{"a proof with a changed hash is not evidence", with(func(e *Evidence) {
			e.Proof[0] = bytes.Clone(e.Proof[0])
			e.Proof[0][0] ^= 1
		}), "consistency proof"},
		{"a proof with a hash left out is not evidence", with(func(e *Evidence) { e.Proof = e.Proof[1:] }), "consistency proof"},
		{"root1 without a proof is not evidence", with(func(e *Evidence) { e.Proof = nil }), "consistency proof"},
		{"a root1 of the wrong length is not evidence", with(func(e *Evidence) { e.Root1 = e.Root1[:31] }), "root1 of 31 bytes"},
		{"notes of another member under this member's name are not evidence", with(func(e *Evidence) { e.Notes = other.Notes }), "note 0"},
		{"evidence against a non-member is not evidence", with(func(e *Evidence) { e.Origin = "test/stranger" }), "not a member"},
		{"a note of another member with one of this member is not evidence", with(func(e *Evidence) { e.Notes[1] = other.Notes[1] }), "note 1"},
		{"the larger tree first is not evidence", with(func(e *Evidence) { e.Notes[0], e.Notes[1] = e.Notes[1], e.Notes[0] }), "not larger"},
		{"two notes of the same size are not consistency evidence", with(func(e *Evidence) { e.Notes[1] = signedCheckpoint(t, s0, honest[:5], 104) }), "not larger"},
		{"a proof from the empty tree is not evidence", with(func(e *Evidence) { e.Notes[0], e.Proof = empty, nil }), "empty tree"},
		{"a tampered earlier note is not evidence", with(func(e *Evidence) { e.Notes[0] = forge(t, e.Notes[0]) }), "note 0"},
		{"a tampered later note is not evidence", with(func(e *Evidence) { e.Notes[1] = forge(t, e.Notes[1]) }), "note 1"},
		{"the same note twice is not evidence", with(func(e *Evidence) { e.Notes[1] = e.Notes[0] }), "the same note twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			why, err := VerifyEvidence(tc.e, fed)
			if tc.fail == "" {
				if err != nil {
					t.Fatalf("VerifyEvidence: %v", err)
				}
				if !strings.HasPrefix(why, reasonNotConsistent+": ") {
					t.Errorf("reason %q does not start with %q", why, reasonNotConsistent)
				}
				return
			}
			if !errors.Is(err, ErrInvalidEvidence) || !strings.Contains(err.Error(), tc.fail) {
				t.Fatalf("VerifyEvidence: %v (%s), want ErrInvalidEvidence saying %q", err, why, tc.fail)
			}
		})
	}
}

func TestConsistencyEvidenceJSONCarriesRoot1AndTheProofInBase64(t *testing.T) {
	fed, keys := testFederation(t, 1)
	e := notConsistent(t, newTestLog(t, fed.Members[0].Origin, keys[0]).signer)
	e.Reason = "not-consistent: ..."
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"origin", "reason", "notes", "root1", "proof"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("JSON %s lacks %q", b, k)
		}
	}
	var back Evidence
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyEvidence(back, fed); err != nil {
		t.Fatalf("decoded evidence: %v", err)
	}
	face := Evidence{Origin: e.Origin, Reason: "x", Notes: e.Notes}
	if b, _ := json.Marshal(face); bytes.Contains(b, []byte("root1")) || bytes.Contains(b, []byte("proof")) {
		t.Errorf("evidence of another kind carries consistency fields: %s", b)
	}
}

func TestTheEvidenceValidatorAcceptsConsistencyEvidenceAndStopsCountingTheMember(t *testing.T) {
	fed, keys := testFederation(t, 3)
	clk := newClock()
	n := startNode(t, fed, keys, 0, nil, clk, nil)
	from, err := peer.Decode(fed.Members[1].PeerID)
	if err != nil {
		t.Fatal(err)
	}
	e := notConsistent(t, newTestLog(t, fed.Members[2].Origin, keys[2]).signer)
	bad := e
	bad.Root1 = bytes.Clone(e.Root1)
	bad.Root1[0] ^= 1
	ctx := context.Background()
	steps := []struct {
		name string
		e    Evidence
		want pubsub.ValidationResult
	}{
		{"consistency evidence with a wrong root1 is rejected", bad, pubsub.ValidationReject},
		{"valid consistency evidence is accepted", e, pubsub.ValidationAccept},
		{"the same evidence again is ignored", e, pubsub.ValidationIgnore},
	}
	for _, s := range steps {
		if got := n.checkEvidenceMsg(ctx, from, mustJSON(t, s.e)); got.result != s.want {
			t.Fatalf("%s: verdict %v (%s), want %v", s.name, got.result, got.reason, s.want)
		}
	}
	ev := n.waitEvidence(t, 1)
	if ev[0].Origin != e.Origin || !bytes.Equal(ev[0].Root1, e.Root1) || !strings.HasPrefix(ev[0].Reason, reasonNotConsistent) {
		t.Fatalf("evidence held: %+v", ev[0])
	}
	if got := n.checkCheckpointMsg(ctx, from, newTestLog(t, e.Origin, keys[2]).close(t, clk.round.Load(), 1)); got.result != pubsub.ValidationIgnore {
		t.Fatalf("a checkpoint of the member after the evidence: verdict %v (%s), want ignore", got.result, got.reason)
	}
}

// TestTwoMapLinesAtOneSizeAreEvidence: two checkpoints of one origin with
// the same records but different map lines are evidence (the map is a
// function of the records); the same map line, or a checkpoint without
// one, is not.
func TestTwoMapLinesAtOneSizeAreEvidence(t *testing.T) {
	fed, keys := testFederation(t, 1)
	s := newTestLog(t, fed.Members[0].Origin, keys[0]).signer
	leaves, _ := forkedLogs(5, 5)
	root, err := merkle.LeafRoot(leaves, 5)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(round uint64, mapRoot []byte) []byte {
		n, err := merkle.SignCheckpoint(merkle.Checkpoint{Origin: s.Name(), Size: 5, Root: root, Round: round, Time: int64(round), Map: mapRoot}, s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	m1, m2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	for _, c := range []struct {
		name     string
		a, b     []byte
		evidence bool
	}{
		{"two map lines at one size", sign(100, m1), sign(103, m2), true},
		{"the same map line at one size", sign(100, m1), sign(103, m1), false},
		{"no map line, then one", sign(100, nil), sign(103, m2), false},
	} {
		why, err := VerifyEvidence(Evidence{Origin: s.Name(), Notes: [2][]byte{c.a, c.b}}, fed)
		if c.evidence && (err != nil || !strings.Contains(why, "two map roots at size 5")) {
			t.Errorf("%s: %q, %v; want evidence", c.name, why, err)
		}
		if !c.evidence && err == nil {
			t.Errorf("%s: taken as evidence (%q)", c.name, why)
		}
	}
}

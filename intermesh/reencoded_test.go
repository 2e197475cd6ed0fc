package intermesh

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/merkle"
)

// reencodings returns copies of signed, a checkpoint note of its origin,
// that differ from it byte for byte but still open with the origin's key
// (note.Open): what anyone who saw the note can make of it without any
// key of the origin's. cosigner is another member's signer.
func reencodings(t *testing.T, signed []byte, origin note.Verifier, cosigner note.Signer) map[string][]byte {
	t.Helper()
	n, err := note.Open(signed, note.VerifierList(origin))
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(n, cosigner)
	if err != nil {
		t.Fatal(err)
	}
	sigLine := signed[bytes.LastIndex(signed, []byte("\n\n"))+2:]
	stranger := "— stranger.example " + base64.StdEncoding.EncodeToString(make([]byte, 4+ed25519.SignatureSize)) + "\n"
	// The signature line's base64 ends in "x=": x carries 2 bits that
	// decoding ignores.
	loose := bytes.Clone(signed)
	i := len(loose) - len("=\n") - 1
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	loose[i] = alphabet[strings.IndexByte(alphabet, loose[i])|1]
	out := map[string][]byte{
		"cosigned by another member":                 cosigned,
		"with the origin's signature line twice":     append(bytes.Clone(signed), sigLine...),
		"with a signature by a key nobody knows":     append(bytes.Clone(signed), stranger...),
		"with its signature in non-canonical base64": loose,
	}
	for name, re := range out {
		if bytes.Equal(re, signed) {
			t.Fatalf("%s: the same bytes", name)
		}
		if _, _, err := merkle.OpenCheckpoint(re, note.VerifierList(origin)); err != nil {
			t.Fatalf("%s: does not open with the origin's key: %v", name, err)
		}
	}
	return out
}

// TestAReencodedCopyOfAnHonestCheckpointFramesNobody: the attacker, a
// member, takes an honest member's checkpoint of round r, as every member
// received it, and republishes it re-encoded (cosigned, its signature
// line repeated, a stranger's signature added, its base64 loosened): on
// the checkpoint topic, inside a vote it signs, and as Evidence next to
// the original. Every copy still opens with the honest member's key, but
// none is a second checkpoint of the member: the honest members refuse
// them all, nobody holds evidence against an honest member, and the
// round's certificate covers every honest checkpoint.
func TestAReencodedCopyOfAnHonestCheckpointFramesNobody(t *testing.T) {
	t.Parallel()
	fed, nodes, rg, clk := honestAndRogue(t)
	victim := nodes[0]
	r := clk.round.Load()
	publish(t, nodes, r)
	var signed []byte
	for _, n := range nodes {
		waitFor(t, 5*time.Second, "the victim's checkpoint held", func() bool {
			signed = n.LatestCheckpoints()[victim.origin]
			return signed != nil
		})
	}
	v, err := note.NewVerifier(fed.Members[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	for name, re := range reencodings(t, signed, v, rg.log.signer) {
		ev := mustJSON(t, Evidence{Origin: victim.origin, Notes: [2][]byte{signed, re}})
		vote := makeVote(t, fed.Name, r, [][]byte{re}, nil, rg.log.signer)
		for _, send := range []struct {
			topic string
			data  []byte
			into  func([]byte)
		}{
			{topicCheckpoint, re, func(d []byte) { rg.publish(rg.cp, d) }},
			{topicMaster, vote, func(d []byte) { rg.publish(rg.vote, d) }},
			{topicEvidence, ev, func(d []byte) { rg.publish(rg.ev, d) }},
		} {
			handled := func(n *node) float64 {
				return counter(t, n.Mesh, send.topic, "reject") + counter(t, n.Mesh, send.topic, "accept") + counter(t, n.Mesh, send.topic, "ignore")
			}
			before := make([]float64, len(nodes))
			for i, n := range nodes {
				before[i] = handled(n)
			}
			send.into(send.data)
			for i, n := range nodes {
				waitFor(t, 5*time.Second, send.topic+" message validated", func() bool { return handled(n) > before[i] })
				if ev := n.Evidence(); len(ev) != 0 {
					t.Fatalf("%s: a copy %s, on the %s topic: evidence %q against %s", n.origin, name, send.topic, ev[0].Reason, ev[0].Origin)
				}
			}
		}
	}
	coversHonest(t, nodes, r)
}

// TestEvidenceOfACheckpointAndAReencodingOfItDoesNotVerify: an auditor
// with the federation file alone (VerifyEvidence) does not take a
// checkpoint and a re-encoded copy of it for equivocation.
func TestEvidenceOfACheckpointAndAReencodingOfItDoesNotVerify(t *testing.T) {
	t.Parallel()
	fed, keys := testFederation(t, 2)
	origin := newTestLog(t, fed.Members[0].Origin, keys[0])
	signed := origin.close(t, 100, 3)
	v, err := note.NewVerifier(fed.Members[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	cosigner := newTestLog(t, fed.Members[1].Origin, keys[1]).signer
	for name, re := range reencodings(t, signed, v, cosigner) {
		for _, notes := range [][2][]byte{{signed, re}, {re, signed}} {
			if why, err := VerifyEvidence(Evidence{Origin: origin.origin, Notes: notes}, fed); err == nil {
				t.Errorf("a checkpoint and its copy %s verify as evidence: %s", name, why)
			}
		}
	}
}

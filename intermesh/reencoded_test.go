package intermesh

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/config"
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

// TestStoredEvidenceOfAReencodedCheckpointIsForgottenAtStart: a member
// whose database holds evidence stored by a version that took a checkpoint
// and a re-encoded copy of it for equivocation (the four copies that
// reencodings makes) restarts under the current rules. It verifies its
// stored evidence again at start: the bogus pieces are deleted from its
// database and counted in intermesh_evidence_forgotten_total, the honest
// member they blamed is counted again (the next round's certificates
// cover its checkpoint), and genuine evidence against another member is
// kept.
func TestStoredEvidenceOfAReencodedCheckpointIsForgottenAtStart(t *testing.T) {
	t.Parallel()
	fed, keys := testFederation(t, 4) // quorum 3: nodes 0, 1 and 2 run, 3 equivocated
	clk := newClock()
	victimLog, signed, v, db := victimAndStore(t, fed, keys, clk)
	old := &store{db: db}
	bogus := reencodings(t, signed, v, newTestLog(t, fed.Members[2].Origin, keys[2]).signer)
	for name, re := range bogus {
		e := Evidence{Origin: fed.Members[0].Origin, Reason: "two different checkpoints for round", Notes: [2][]byte{signed, re}}
		if err := old.write(storeJob{evidence: &e}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	liar := newTestLog(t, fed.Members[3].Origin, keys[3])
	r0 := clk.round.Load()
	genuine := Evidence{Origin: liar.origin, Notes: [2][]byte{liar.close(t, r0, 1), (&testLog{origin: liar.origin, signer: liar.signer}).close(t, r0, 2)}}
	if _, err := VerifyEvidence(genuine, fed); err != nil {
		t.Fatalf("the genuine evidence does not verify: %v", err)
	}
	if err := old.write(storeJob{evidence: &genuine}); err != nil {
		t.Fatal(err)
	}

	nodes := []*node{
		startNode(t, fed, keys, 0, nil, clk, victimLog),
		startNode(t, fed, keys, 1, nil, clk, nil),
		startNode(t, fed, keys, 2, db, clk, nil),
	}
	restarted := nodes[2]
	ev := restarted.Evidence()
	if len(ev) != 1 || ev[0].Origin != liar.origin {
		var against []string
		for _, e := range ev {
			against = append(against, e.Origin)
		}
		t.Errorf("after the restart the member holds evidence against %q, want only the genuine piece against %s", against, liar.origin)
	}
	if got := counterValue(t, restarted.metrics.forgotten.WithLabelValues(fed.Members[0].Origin)); got != float64(len(bogus)) {
		t.Errorf("intermesh_evidence_forgotten_total{member=%q} = %v, want %d", fed.Members[0].Origin, got, len(bogus))
	}
	stored := 0
	if err := restarted.store.scan(evidenceKind, func(_, _ []byte) error { stored++; return nil }); err != nil {
		t.Fatal(err)
	}
	if stored != 1 {
		t.Errorf("the database still holds %d pieces of evidence, want 1", stored)
	}
	connect(t, nodes)
	r := clk.round.Add(1)
	publish(t, nodes, r)
	coversHonest(t, nodes, r)
}

// TestAStoredReencodedLatestCheckpointFramesNobodyAtStart: a member's
// latest checkpoint stored by an earlier version as a re-encoded copy (taken
// before only canonical notes were) is forgotten at start. Kept, it would
// not be the note the honest member's next checkpoint chains to (prev is
// the SHA-256 of the note as signed), and the restarted node would record
// evidence against an honest member.
func TestAStoredReencodedLatestCheckpointFramesNobodyAtStart(t *testing.T) {
	t.Parallel()
	fed, keys := testFederation(t, 4) // quorum 3: nodes 0, 1 and 2 run
	clk := newClock()
	victimLog, signed, v, db := victimAndStore(t, fed, keys, clk)
	bogus := reencodings(t, signed, v, newTestLog(t, fed.Members[2].Origin, keys[2]).signer)
	names := slices.Sorted(maps.Keys(bogus))
	re := bogus[names[0]]
	if err := (&store{db: db}).write(storeJob{latest: map[string][]byte{victimLog.origin: re}}); err != nil {
		t.Fatal(err)
	}

	nodes := []*node{
		startNode(t, fed, keys, 0, nil, clk, victimLog),
		startNode(t, fed, keys, 1, nil, clk, nil),
		startNode(t, fed, keys, 2, db, clk, nil),
	}
	if held, ok := nodes[2].LatestCheckpoints()[victimLog.origin]; ok {
		t.Errorf("the restarted member holds %q's stored copy (%s) as its latest checkpoint:\n%s", victimLog.origin, names[0], held)
	}
	connect(t, nodes)
	r := clk.round.Add(1)
	publish(t, nodes, r)
	coversHonest(t, nodes, r)
}

// victimAndStore returns member 0's log with its checkpoint of the clock's
// round closed (signed), member 0's verifier, and an empty Badger store for
// the member that restarts.
func victimAndStore(t *testing.T, fed *config.Federation, keys []ed25519.PrivateKey, clk *clock) (*testLog, []byte, note.Verifier, *badger.DB) {
	t.Helper()
	victimLog := newTestLog(t, fed.Members[0].Origin, keys[0])
	signed := victimLog.close(t, clk.round.Load(), 3)
	v, err := note.NewVerifier(fed.Members[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return victimLog, signed, v, db
}

package intermesh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/merkle"
)

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// counter reads a gossip verdict counter.
func counter(t testing.TB, m *Mesh, topic, verdict string) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.metrics.messages.WithLabelValues(topic, verdict).Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetCounter().GetValue()
}

// forge flips a bit of the first signature of a signed note.
func forge(t testing.TB, msg []byte) []byte {
	t.Helper()
	i := bytes.LastIndex(msg, []byte("\n\n")) + 2
	line := msg[i : len(msg)-1]
	sp := bytes.LastIndexByte(line, ' ')
	sig, err := base64.StdEncoding.DecodeString(string(line[sp+1:]))
	if err != nil {
		t.Fatal(err)
	}
	sig[len(sig)-1] ^= 1
	out := append([]byte(nil), msg[:i]...)
	out = append(out, line[:sp+1]...)
	out = append(out, base64.StdEncoding.EncodeToString(sig)...)
	return append(out, '\n')
}

// makeVote returns a gossiped vote over the given checkpoints (in origin
// order), signed by signers; mutate may change the text before signing.
func makeVote(t testing.TB, fed string, r uint64, cps [][]byte, mutate func(string) string, signers ...note.Signer) []byte {
	t.Helper()
	covers := coversOf(t, cps)
	mh, err := masterHashOf(covers)
	if err != nil {
		t.Fatal(err)
	}
	text := voteText(fed, r, len(cps), mh)
	if mutate != nil {
		text = mutate(text)
	}
	msg, err := note.Sign(&note.Note{Text: text}, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return mustVote(t, r, msg, covers)
}

// coversOf returns the covers of checkpoint notes, in the order given.
func coversOf(t testing.TB, cps [][]byte) []cover {
	t.Helper()
	covers := make([]cover, len(cps))
	for i, c := range cps {
		cp, err := merkle.ParseCheckpoint(c[:bytes.LastIndex(c, []byte("\n\n"))+1])
		if err != nil {
			t.Fatal(err)
		}
		covers[i] = cover{origin: cp.Origin, hash: sha256.Sum256(c)}
	}
	return covers
}

// mustVote is encodeVote for tests.
func mustVote(t testing.TB, r uint64, msg []byte, covers []cover) []byte {
	t.Helper()
	data, err := encodeVote(r, msg, covers)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func outsider(t testing.TB, name string) *noteSigner {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := newNoteSigner(name, priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestValidators feeds one node a story of gossip, step by step, and checks
// each verdict and what the node counts afterwards.
func TestValidators(t *testing.T) {
	fed, keys := testFederation(t, 4)
	clk := newClock()
	n := startNode(t, fed, keys, 0, nil, clk, nil)
	r := clk.round.Load() - 1 // rounds r and r+1 have closed
	logs := make([]*testLog, 4)
	signers := make([]*noteSigner, 4)
	for i := range logs {
		logs[i] = newTestLog(t, fed.Members[i].Origin, keys[i])
		signers[i] = logs[i].signer
	}
	from, err := peer.Decode(fed.Members[1].PeerID)
	if err != nil {
		t.Fatal(err)
	}
	// Fixed checkpoints used by several steps.
	cp1 := logs[1].close(t, r, 5)
	cp2 := logs[2].close(t, r, 5)
	cp3 := logs[3].close(t, r, 5)
	cp1b := newTestLog(t, logs[1].origin, keys[1]).close(t, r, 7) // a second round-r checkpoint of node1
	stranger := outsider(t, "test/stranger")
	impostor := outsider(t, logs[2].origin) // node2's name, another key

	sign := func(s note.Signer, c merkle.Checkpoint) []byte {
		msg, err := note.Sign(&note.Note{Text: string(c.Marshal())}, s)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	cpOf := func(origin string, size, round uint64, prev []byte) merkle.Checkpoint {
		return merkle.Checkpoint{Origin: origin, Size: size, Root: logs[0].root(size), Round: round, Time: 1, Prev: prev}
	}
	checkpointSteps := []struct {
		name string
		data []byte
		want pubsub.ValidationResult
	}{
		{"a member's valid checkpoint is accepted", cp2, pubsub.ValidationAccept},
		{"the same checkpoint again is ignored", cp2, pubsub.ValidationIgnore},
		{"a checkpoint with a forged signature is rejected", forge(t, logs[3].close(t, r, 1)), pubsub.ValidationReject},
		{"an oversized message is rejected", bytes.Repeat([]byte("x"), maxCheckpointSize+1), pubsub.ValidationReject},
		{"garbage is rejected", []byte("not a note"), pubsub.ValidationReject},
		{"a non-member's checkpoint is rejected", sign(stranger, cpOf("test/stranger", 1, r, nil)), pubsub.ValidationReject},
		{"a checkpoint of a member signed by another key of its name is rejected", sign(impostor, cpOf(logs[2].origin, 9, r+1, nil)), pubsub.ValidationReject},
		{"a checkpoint whose origin is not its signer is rejected", sign(signers[3], cpOf(logs[2].origin, 9, r+1, nil)), pubsub.ValidationReject},
		{"a replayed checkpoint of an old round is rejected", sign(signers[3], cpOf(logs[3].origin, 1, r-3, nil)), pubsub.ValidationReject},
		{"a checkpoint of a far-future round is rejected", sign(signers[3], cpOf(logs[3].origin, 1, r+3, nil)), pubsub.ValidationReject},
		{"a valid checkpoint of node3 is accepted", cp3, pubsub.ValidationAccept},
		{"a next checkpoint whose tree shrank is rejected", sign(signers[3], cpOf(logs[3].origin, 2, r+1, merkle.NoteHash(cp3))), pubsub.ValidationReject},
		{"after its inconsistency node3's valid checkpoints are ignored", logs[3].close(t, r+1, 1), pubsub.ValidationIgnore},
		{"node1's checkpoint is accepted", cp1, pubsub.ValidationAccept},
		{"a second, different round-r checkpoint of node1 is equivocation", cp1b, pubsub.ValidationReject},
		{"after equivocating node1's checkpoints are ignored", logs[1].close(t, r+1, 1), pubsub.ValidationIgnore},
		{"node2's next checkpoint with a wrong prev is rejected", sign(signers[2], cpOf(logs[2].origin, 50, r+1, make([]byte, 32))), pubsub.ValidationReject},
	}
	ctx := context.Background()
	for _, s := range checkpointSteps {
		if got := n.checkCheckpointMsg(ctx, from, s.data); got.result != s.want {
			t.Fatalf("%s: verdict %v (%s), want %v", s.name, got.result, got.reason, s.want)
		}
	}
	ev := n.waitEvidence(t, 3)
	if ev[0].Origin != logs[3].origin || ev[1].Origin != logs[1].origin || ev[2].Origin != logs[2].origin {
		t.Fatalf("evidence against %s, %s, %s; want node3, node1, node2", ev[0].Origin, ev[1].Origin, ev[2].Origin)
	}
	if !bytes.Equal(ev[1].Notes[0], cp1) || !bytes.Equal(ev[1].Notes[1], cp1b) {
		t.Fatal("equivocation evidence does not hold both notes")
	}

	// Votes, on a fresh node that has seen no equivocation.
	n2 := startNode(t, fed, keys, 0, nil, clk, nil)
	cps := [][]byte{cp1, cp2, cp3}
	voteSteps := []struct {
		name string
		data []byte
		want pubsub.ValidationResult
	}{
		{"a member's vote is accepted", makeVote(t, fed.Name, r, cps, nil, signers[1]), pubsub.ValidationAccept},
		{"the same vote again is ignored", makeVote(t, fed.Name, r, cps, nil, signers[1]), pubsub.ValidationIgnore},
		{"another member's signature on the same text is accepted", makeVote(t, fed.Name, r, cps, nil, signers[2]), pubsub.ValidationAccept},
		{"a vote with a forged signature is rejected", forgeVote(t, makeVote(t, fed.Name, r, cps, nil, signers[3])), pubsub.ValidationReject},
		{"a vote signed by a non-member only is rejected", makeVote(t, fed.Name, r, cps, nil, stranger), pubsub.ValidationReject},
		{"a vote signed by an impostor of a member is rejected", makeVote(t, fed.Name, r, cps, nil, impostor), pubsub.ValidationReject},
		{"a vote whose master hash is not its checkpoints' is rejected", makeVote(t, fed.Name, r, cps, func(s string) string {
			return voteText(fed.Name, r, 3, make([]byte, 32))
		}, signers[3]), pubsub.ValidationReject},
		{"a vote counting other than the checkpoints it carries is rejected", makeVote(t, fed.Name, r, cps, func(s string) string {
			b, _ := parseVoteText(fed.Name, s)
			return voteText(fed.Name, r, 2, b.masterHash)
		}, signers[3]), pubsub.ValidationReject},
		{"a vote of another federation is rejected", makeVote(t, "other", r, cps, nil, signers[3]), pubsub.ValidationReject},
		{"a vote of a far-future round is rejected", makeVote(t, fed.Name, r+3, nil, nil, signers[3]), pubsub.ValidationReject},
		{"a vote covering a non-member is rejected", signCovers(t, fed.Name, r, []cover{{origin: "test/stranger", hash: sha256.Sum256(cp1)}}, signers[3]), pubsub.ValidationReject},
		{"a vote covering a hash in loose base64 is rejected", loosenHash(t, makeVote(t, fed.Name, r, cps, nil, signers[3])), pubsub.ValidationReject},
		{"a vote with checkpoints out of origin order is rejected", makeVoteUnordered(t, fed.Name, r, [][]byte{cp2, cp1}, signers[3]), pubsub.ValidationReject},
		{"an oversized vote is rejected", bytes.Repeat([]byte(" "), n2.maxVoteSize+1), pubsub.ValidationReject},
		{"a vote over node1's other checkpoint is accepted", makeVote(t, fed.Name, r, [][]byte{cp1b}, nil, signers[3]), pubsub.ValidationAccept},
	}
	for _, s := range voteSteps {
		if got := n2.checkVoteMsg(ctx, from, s.data); got.result != s.want {
			t.Fatalf("%s: verdict %v (%s), want %v", s.name, got.result, got.reason, s.want)
		}
	}
	// Votes carry no checkpoint: a quorum of signatures (node1's, node2's
	// and now node3's) waits for the notes, and certifies once they arrive.
	if got := n2.checkVoteMsg(ctx, from, makeVote(t, fed.Name, r, cps, nil, signers[3])); got.result != pubsub.ValidationAccept {
		t.Fatalf("node3's signature on the covered set: verdict %v (%s)", got.result, got.reason)
	}
	if held := n2.LatestCheckpoints(); len(held) != 0 {
		t.Fatalf("votes gave the node checkpoints of %d members", len(held))
	}
	if _, ok := n2.Certificate(r); ok {
		t.Fatal("a certificate formed before the node held the checkpoints it covers")
	}
	for _, c := range cps {
		if got := n2.checkCheckpointMsg(ctx, from, c); got.result != pubsub.ValidationAccept {
			t.Fatalf("checkpoint: verdict %v (%s)", got.result, got.reason)
		}
	}
	waitFor(t, 3*time.Second, "the certificate once the notes arrived", func() bool {
		c, ok := n2.Certificate(r)
		return ok && len(c.Checkpoints) == 3
	})
	if got := n2.checkCheckpointMsg(ctx, from, cp1b); got.result != pubsub.ValidationReject {
		t.Fatalf("node1's second checkpoint: verdict %v (%s), want reject", got.result, got.reason)
	}
	if ev := n2.waitEvidence(t, 1); ev[0].Origin != logs[1].origin {
		t.Fatalf("evidence against %s, want node1", ev[0].Origin)
	}
	if got := n2.checkVoteMsg(ctx, from, makeVote(t, fed.Name, r, [][]byte{cp2}, nil, signers[1])); got.result != pubsub.ValidationIgnore {
		t.Fatalf("after equivocating node1's vote: verdict %v (%s), want ignore", got.result, got.reason)
	}
}

// signCovers returns a vote of round r over covers, with their master
// hash, signed by signer.
func signCovers(t testing.TB, fed string, r uint64, covers []cover, signer note.Signer) []byte {
	t.Helper()
	mh, err := masterHashOf(covers)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: voteText(fed, r, len(covers), mh)}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return mustVote(t, r, msg, covers)
}

// loosenHash rewrites the first covered hash of a gossiped vote with its
// last base64 padding bits set: the same bytes, in a form not canonical.
func loosenHash(t testing.TB, data []byte) []byte {
	t.Helper()
	var w voteWire
	if err := json.Unmarshal(data, &w); err != nil {
		t.Fatal(err)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	h := []byte(w.Covers[0].Hash)
	i := strings.IndexByte(alphabet, h[len(h)-2]) // the 43rd character carries 2 unused bits
	h[len(h)-2] = alphabet[i^1]
	w.Covers[0].Hash = string(h)
	return mustJSON(t, w)
}

// forgeVote flips a bit of the signature of a gossiped vote.
func forgeVote(t testing.TB, data []byte) []byte {
	var w voteWire
	if err := json.Unmarshal(data, &w); err != nil {
		t.Fatal(err)
	}
	w.Note = string(forge(t, []byte(w.Note)))
	return mustJSON(t, w)
}

// makeVoteUnordered signs a vote over checkpoints in the order given,
// computing the tree without MasterHash's ordering check.
func makeVoteUnordered(t testing.TB, fed string, r uint64, cps [][]byte, s note.Signer) []byte {
	t.Helper()
	msg, err := note.Sign(&note.Note{Text: voteText(fed, r, len(cps), make([]byte, 32))}, s)
	if err != nil {
		t.Fatal(err)
	}
	return mustVote(t, r, msg, coversOf(t, cps))
}

// waitEvidence returns the node's evidence once it holds n items.
func (n *node) waitEvidence(t testing.TB, want int) []Evidence {
	t.Helper()
	var ev []Evidence
	waitFor(t, 2*time.Second, "evidence", func() bool { ev = n.Evidence(); return len(ev) >= want })
	return ev
}

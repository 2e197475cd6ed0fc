package intermesh

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/merkle"
)

// MasterLeaf returns the leaf of one checkpoint in the master-hash tree:
// the origin's bytes followed by the 32-byte SHA-256 of its signed
// checkpoint note. (The hash has a fixed size, so the leaf is unambiguous.)
func MasterLeaf(origin string, signedCheckpoint []byte) []byte {
	h := sha256.Sum256(signedCheckpoint)
	return append([]byte(origin), h[:]...)
}

// MasterHash returns M_r, the RFC 6962 root over the MasterLeaf of each
// checkpoint, given in origin order.
func MasterHash(origins []string, signedCheckpoints [][]byte) ([]byte, error) {
	if len(origins) != len(signedCheckpoints) {
		return nil, fmt.Errorf("intermesh: master hash: %d origins for %d checkpoints", len(origins), len(signedCheckpoints))
	}
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	for i, o := range origins {
		if i > 0 && origins[i-1] >= o {
			return nil, fmt.Errorf("intermesh: master hash: origins not in strictly increasing order at %q", o)
		}
		if err := r.Append(rfc6962.DefaultHasher.HashLeaf(MasterLeaf(o, signedCheckpoints[i])), nil); err != nil {
			return nil, fmt.Errorf("intermesh: master hash: %w", err)
		}
	}
	if len(origins) == 0 {
		return rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		return nil, fmt.Errorf("intermesh: master hash: %w", err)
	}
	return root, nil
}

// voteText is the text of a vote note (see the package comment).
func voteText(federation string, round uint64, count int, masterHash []byte) string {
	return fmt.Sprintf("%s/master\n%d\n%s\nround %d\n",
		federation, count, base64.StdEncoding.EncodeToString(masterHash), round)
}

// voteBody is a parsed vote text.
type voteBody struct {
	round      uint64
	count      int
	masterHash []byte
}

// parseVoteText parses the text of a vote note of federation fed, in
// exactly the form voteText writes.
func parseVoteText(fed, text string) (voteBody, error) {
	lines := strings.Split(text, "\n")
	if len(lines) != 5 || lines[4] != "" {
		return voteBody{}, fmt.Errorf("%w: want 4 lines", ErrInvalidVote)
	}
	if lines[0] != fed+"/master" {
		return voteBody{}, fmt.Errorf("%w: origin line %q, want %q", ErrInvalidVote, lines[0], fed+"/master")
	}
	count, err := strconv.Atoi(lines[1])
	if err != nil || count < 1 || strconv.Itoa(count) != lines[1] {
		return voteBody{}, fmt.Errorf("%w: count %q", ErrInvalidVote, lines[1])
	}
	mh, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(mh) != sha256.Size || base64.StdEncoding.EncodeToString(mh) != lines[2] {
		return voteBody{}, fmt.Errorf("%w: master hash %q", ErrInvalidVote, lines[2])
	}
	rs, ok := strings.CutPrefix(lines[3], "round ")
	r, err := strconv.ParseUint(rs, 10, 64)
	if !ok || err != nil || strconv.FormatUint(r, 10) != rs {
		return voteBody{}, fmt.Errorf("%w: round line %q", ErrInvalidVote, lines[3])
	}
	return voteBody{round: r, count: count, masterHash: mh}, nil
}

// voteWire is the JSON form of a gossiped vote, and of a Certificate: the
// signed vote note and the signed checkpoint notes it covers, in origin
// order.
type voteWire struct {
	Round       uint64   `json:"round"`
	Note        string   `json:"note"`
	Checkpoints []string `json:"checkpoints"`
}

// vote is a gossiped vote whose signatures, checkpoints and master hash
// have been verified.
type vote struct {
	voteBody
	text        string
	sigs        []note.Signature // verified member signatures
	checkpoints []heldCheckpoint // origin order
}

// origins returns the origins of the checkpoints the vote covers.
func (v vote) origins() []string {
	out := make([]string, len(v.checkpoints))
	for i, hc := range v.checkpoints {
		out[i] = hc.cp.Origin
	}
	return out
}

// parseVote is the stateless check of a gossiped vote: size, JSON form,
// note format, at least one valid member signature (and no invalid one),
// round in the window, and checkpoints that are valid, of that round, in
// strictly increasing origin order, as many as the note says, and whose
// master hash is the note's.
func (m *Mesh) parseVote(data []byte) (vote, error) {
	if lim := maxVoteSize(len(m.members)); len(data) > lim {
		return vote{}, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidVote, len(data), lim)
	}
	var w voteWire
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return vote{}, fmt.Errorf("%w: %w", ErrInvalidVote, err)
	}
	n, err := note.Open([]byte(w.Note), m.verifiers)
	if err != nil {
		return vote{}, fmt.Errorf("%w: %w", ErrInvalidVote, err)
	}
	body, err := parseVoteText(m.fed.Name, n.Text)
	if err != nil {
		return vote{}, err
	}
	if body.round != w.Round {
		return vote{}, fmt.Errorf("%w: note is for round %d, message for round %d", ErrInvalidVote, body.round, w.Round)
	}
	if !m.inWindow(body.round) {
		return vote{}, fmt.Errorf("%w: %s", ErrInvalidVote, m.windowError(body.round))
	}
	if body.count != len(w.Checkpoints) || body.count > len(m.members) {
		return vote{}, fmt.Errorf("%w: note counts %d checkpoints, message carries %d", ErrInvalidVote, body.count, len(w.Checkpoints))
	}
	v := vote{voteBody: body, text: n.Text, sigs: n.Sigs}
	notes := make([][]byte, len(w.Checkpoints))
	for i, c := range w.Checkpoints {
		hc, err := m.verifyCheckpoint([]byte(c))
		if err != nil {
			return vote{}, fmt.Errorf("%w: checkpoint %d: %w", ErrInvalidVote, i, err)
		}
		if hc.cp.Round != body.round {
			return vote{}, fmt.Errorf("%w: checkpoint of %q is for round %d", ErrInvalidVote, hc.cp.Origin, hc.cp.Round)
		}
		v.checkpoints = append(v.checkpoints, hc)
		notes[i] = hc.note
	}
	mh, err := MasterHash(v.origins(), notes)
	if err != nil {
		return vote{}, fmt.Errorf("%w: %w", ErrInvalidVote, err)
	}
	if !bytes.Equal(mh, body.masterHash) {
		return vote{}, fmt.Errorf("%w: master hash of the checkpoints differs from the note's", ErrInvalidVote)
	}
	return v, nil
}

// ballot collects the member signatures over one vote text.
type ballot struct {
	text        string
	body        voteBody
	checkpoints []heldCheckpoint
	sigs        map[string]note.Signature // by signer (member origin)
}

// signedNote returns the vote note with the signatures of the given signers,
// ordered by name: votes of several members merged into one note.
func (b *ballot) signedNote(signers []string) ([]byte, error) {
	slices.Sort(signers)
	n := &note.Note{Text: b.text}
	for _, s := range signers {
		n.Sigs = append(n.Sigs, b.sigs[s])
	}
	msg, err := note.Sign(n)
	if err != nil {
		return nil, fmt.Errorf("intermesh: merge vote signatures: %w", err)
	}
	return msg, nil
}

// wire returns the JSON message of the ballot's note with the given signers.
func (b *ballot) wire(signers []string) ([]byte, error) {
	msg, err := b.signedNote(signers)
	if err != nil {
		return nil, err
	}
	w := voteWire{Round: b.body.round, Note: string(msg)}
	for _, hc := range b.checkpoints {
		w.Checkpoints = append(w.Checkpoints, string(hc.note))
	}
	return json.Marshal(w)
}

// SignVote returns the gossiped JSON form of a vote of a federation for a
// round over signed checkpoint notes (in any order; the vote lists them in
// origin order), signed by signer: what a member publishes on the master
// topic. It checks the notes' form, not their signatures.
func SignVote(federation string, round uint64, checkpoints [][]byte, signer note.Signer) ([]byte, error) {
	type held struct {
		origin string
		note   []byte
	}
	hs := make([]held, len(checkpoints))
	for i, c := range checkpoints {
		j := bytes.LastIndex(c, []byte("\n\n"))
		if j < 0 {
			return nil, fmt.Errorf("%w: checkpoint %d is not a signed note", ErrInvalidVote, i)
		}
		cp, err := merkle.ParseCheckpoint(c[:j+1])
		if err != nil {
			return nil, fmt.Errorf("%w: checkpoint %d: %w", ErrInvalidVote, i, err)
		}
		hs[i] = held{cp.Origin, c}
	}
	slices.SortFunc(hs, func(a, b held) int { return strings.Compare(a.origin, b.origin) })
	origins, notes := make([]string, len(hs)), make([][]byte, len(hs))
	w := voteWire{Round: round}
	for i, h := range hs {
		origins[i], notes[i] = h.origin, h.note
		w.Checkpoints = append(w.Checkpoints, string(h.note))
	}
	mh, err := MasterHash(origins, notes)
	if err != nil {
		return nil, err
	}
	msg, err := note.Sign(&note.Note{Text: voteText(federation, round, len(notes), mh)}, signer)
	if err != nil {
		return nil, fmt.Errorf("intermesh: sign vote: %w", err)
	}
	w.Note = string(msg)
	return json.Marshal(w)
}

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
	return cover{origin: origin, hash: sha256.Sum256(signedCheckpoint)}.leaf()
}

// MasterHash returns M_r, the RFC 6962 root over the MasterLeaf of each
// checkpoint, given in origin order.
func MasterHash(origins []string, signedCheckpoints [][]byte) ([]byte, error) {
	if len(origins) != len(signedCheckpoints) {
		return nil, fmt.Errorf("intermesh: master hash: %d origins for %d checkpoints", len(origins), len(signedCheckpoints))
	}
	covers := make([]cover, len(origins))
	for i, o := range origins {
		covers[i] = cover{origin: o, hash: sha256.Sum256(signedCheckpoints[i])}
	}
	return masterHashOf(covers)
}

// cover is one checkpoint a vote covers: its origin and the SHA-256 of its
// signed note, the two halves of its MasterLeaf.
type cover struct {
	origin string
	hash   [sha256.Size]byte
}

// leaf is the cover's MasterLeaf: the origin's bytes, then the hash.
func (c cover) leaf() []byte { return append([]byte(c.origin), c.hash[:]...) }

// masterHashOf returns M_r over the covered checkpoints, given in strictly
// increasing origin order.
func masterHashOf(covers []cover) ([]byte, error) {
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	for i, c := range covers {
		if i > 0 && covers[i-1].origin >= c.origin {
			return nil, fmt.Errorf("intermesh: master hash: origins not in strictly increasing order at %q", c.origin)
		}
		if err := r.Append(rfc6962.DefaultHasher.HashLeaf(c.leaf()), nil); err != nil {
			return nil, fmt.Errorf("intermesh: master hash: %w", err)
		}
	}
	if len(covers) == 0 {
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

// voteWire is the JSON form of a gossiped vote: the signed vote note and
// the checkpoints it covers, in origin order, each as its origin and the
// base64 SHA-256 of its signed note. A vote does not carry the notes: the
// checkpoint topic delivers them, and a receiver counts a vote's signatures
// at once but certifies only once it holds every note covered.
type voteWire struct {
	Round  uint64      `json:"round"`
	Note   string      `json:"note"`
	Covers []coverWire `json:"covers"`
}

// coverWire is the JSON form of a cover.
type coverWire struct {
	Origin string `json:"origin"`
	Hash   string `json:"hash"`
}

// vote is a gossiped vote whose signatures, covers and master hash have
// been verified.
type vote struct {
	voteBody
	text   string
	sigs   []note.Signature // verified member signatures
	covers []cover          // origin order
}

// parseVote is the stateless check of a gossiped vote: size, JSON form,
// note format, at least one valid member signature (and no invalid one),
// round in the window, and covers of members, in strictly increasing origin
// order, as many as the note says, whose master hash is the note's.
func (m *Mesh) parseVote(data []byte) (vote, error) {
	if lim := m.maxVoteSize; len(data) > lim {
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
	if body.count != len(w.Covers) || body.count > len(m.members) {
		return vote{}, fmt.Errorf("%w: note counts %d checkpoints, message covers %d", ErrInvalidVote, body.count, len(w.Covers))
	}
	v := vote{voteBody: body, text: n.Text, sigs: n.Sigs, covers: make([]cover, len(w.Covers))}
	for i, c := range w.Covers {
		if _, ok := m.members[c.Origin]; !ok {
			return vote{}, fmt.Errorf("%w: covers %q, not a member", ErrInvalidVote, c.Origin)
		}
		h, err := base64.StdEncoding.DecodeString(c.Hash)
		if err != nil || len(h) != sha256.Size || base64.StdEncoding.EncodeToString(h) != c.Hash {
			return vote{}, fmt.Errorf("%w: hash %q of %q", ErrInvalidVote, c.Hash, c.Origin)
		}
		v.covers[i] = cover{origin: c.Origin, hash: [sha256.Size]byte(h)}
	}
	mh, err := masterHashOf(v.covers)
	if err != nil {
		return vote{}, fmt.Errorf("%w: %w", ErrInvalidVote, err)
	}
	if !bytes.Equal(mh, body.masterHash) {
		return vote{}, fmt.Errorf("%w: master hash of the covered checkpoints differs from the note's", ErrInvalidVote)
	}
	return v, nil
}

// ballot collects the member signatures over one vote text.
type ballot struct {
	text        string
	body        voteBody
	covers      []cover
	checkpoints []heldCheckpoint          // the notes covered, once all are held; nil until then
	sigs        map[string]note.Signature // by signer (member origin)
}

// resolve finds the notes b covers among the checkpoints of round rs that
// the node counted (with replication: verified against its replicas), and
// reports whether it holds them all.
func (b *ballot) resolve(st *state, rs *roundState) bool {
	if b.checkpoints != nil {
		return true
	}
	cps := make([]heldCheckpoint, len(b.covers))
	for i, c := range b.covers {
		hc, ok := rs.held[c.origin]
		if !ok || hc.hash != c.hash {
			if os := st.origins[c.origin]; os != nil && os.counted[rs.round] == c.hash {
				hc, ok = os.notes[rs.round]
			}
		}
		if !ok || hc.hash != c.hash {
			return false
		}
		cps[i] = hc
	}
	b.checkpoints = cps
	return true
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
	return encodeVote(b.body.round, msg, b.covers)
}

// encodeVote returns the gossiped JSON form of a signed vote note.
func encodeVote(round uint64, msg []byte, covers []cover) ([]byte, error) {
	w := voteWire{Round: round, Note: string(msg), Covers: make([]coverWire, len(covers))}
	for i, c := range covers {
		w.Covers[i] = coverWire{Origin: c.origin, Hash: base64.StdEncoding.EncodeToString(c.hash[:])}
	}
	return json.Marshal(w)
}

// SignVote returns the gossiped JSON form of a vote of a federation for a
// round over signed checkpoint notes (in any order; the vote covers them in
// origin order), signed by signer: what a member publishes on the master
// topic. It checks the notes' form, not their signatures.
func SignVote(federation string, round uint64, checkpoints [][]byte, signer note.Signer) ([]byte, error) {
	covers := make([]cover, len(checkpoints))
	for i, c := range checkpoints {
		j := bytes.LastIndex(c, []byte("\n\n"))
		if j < 0 {
			return nil, fmt.Errorf("%w: checkpoint %d is not a signed note", ErrInvalidVote, i)
		}
		cp, err := merkle.ParseCheckpoint(c[:j+1])
		if err != nil {
			return nil, fmt.Errorf("%w: checkpoint %d: %w", ErrInvalidVote, i, err)
		}
		covers[i] = cover{origin: cp.Origin, hash: sha256.Sum256(c)}
	}
	slices.SortFunc(covers, func(a, b cover) int { return strings.Compare(a.origin, b.origin) })
	mh, err := masterHashOf(covers)
	if err != nil {
		return nil, err
	}
	msg, err := note.Sign(&note.Note{Text: voteText(federation, round, len(covers), mh)}, signer)
	if err != nil {
		return nil, fmt.Errorf("intermesh: sign vote: %w", err)
	}
	return encodeVote(round, msg, covers)
}

package intermesh

import (
	"bytes"
	"encoding/json"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/merkle"
)

// Certificate is a master-hash certificate: the vote note of a round signed
// by at least a quorum of members, and the checkpoints it covers.
//
// Its JSON form (a gossiped vote is the same note with one signature, and
// covers the checkpoints by hash instead of carrying them; see voteWire) is
//
//	{"round": 172800000,
//	 "note": "testnet/master\n3\n<base64 M_r>\nround 172800000\n\n— testnet/node0 <sig>\n— testnet/node1 <sig>\n— testnet/node2 <sig>\n",
//	 "checkpoints": ["testnet/node0\n12\n...", "testnet/node1\n7\n...", "testnet/node2\n9\n..."]}
//
// MasterHash is not part of the JSON: VerifyCertificate recomputes it.
type Certificate struct {
	// Round is the round the certificate is for.
	Round uint64
	// Note is the signed vote note with every member signature collected.
	Note []byte
	// Checkpoints are the signed checkpoint notes covered, in origin order.
	Checkpoints [][]byte
	// MasterHash is M_r, the RFC 6962 root over the checkpoints (MasterHash).
	MasterHash []byte
}

// certWire is the JSON form of a Certificate.
type certWire struct {
	Round       uint64   `json:"round"`
	Note        string   `json:"note"`
	Checkpoints []string `json:"checkpoints"`
}

// MarshalJSON encodes the certificate in the documented JSON form.
func (c Certificate) MarshalJSON() ([]byte, error) {
	w := certWire{Round: c.Round, Note: string(c.Note), Checkpoints: notesToStrings(c.Checkpoints)}
	return json.Marshal(w)
}

// UnmarshalJSON decodes the documented JSON form; it verifies nothing (see
// VerifyCertificate) and leaves MasterHash empty.
func (c *Certificate) UnmarshalJSON(b []byte) error {
	var w certWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*c = Certificate{Round: w.Round, Note: []byte(w.Note), Checkpoints: stringsToNotes(w.Checkpoints)}
	return nil
}

// VerifyCertificate checks a certificate as an auditor does, from the
// federation file alone: the note's text is a vote of fed for cert.Round,
// every checkpoint is signed by its origin (a member), is for that round,
// and the origins are in strictly increasing order; the recomputed M_r and
// the number of checkpoints are the note's; and the note carries valid
// signatures of at least the federation's quorum of members. On success it
// sets cert.MasterHash.
func VerifyCertificate(cert *Certificate, fed *config.Federation) error {
	verifiers, err := fed.Verifiers()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidVote, err)
	}
	n, err := note.Open(cert.Note, verifiers)
	if err != nil {
		return fmt.Errorf("%w: round %d: %w", ErrInvalidVote, cert.Round, err)
	}
	body, err := parseVoteText(fed.Name, n.Text)
	if err != nil {
		return err
	}
	if body.round != cert.Round {
		return fmt.Errorf("%w: note is for round %d, certificate for round %d", ErrInvalidVote, body.round, cert.Round)
	}
	if body.count != len(cert.Checkpoints) {
		return fmt.Errorf("%w: note counts %d checkpoints, certificate holds %d", ErrInvalidVote, body.count, len(cert.Checkpoints))
	}
	origins := make([]string, len(cert.Checkpoints))
	for i, c := range cert.Checkpoints {
		cp, _, err := merkle.OpenCheckpoint(c, verifiers)
		if err != nil {
			return fmt.Errorf("%w: checkpoint %d: %w", ErrInvalidVote, i, err)
		}
		if cp.Round != cert.Round {
			return fmt.Errorf("%w: checkpoint of %q is for round %d", ErrInvalidVote, cp.Origin, cp.Round)
		}
		origins[i] = cp.Origin
	}
	mh, err := MasterHash(origins, cert.Checkpoints)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidVote, err)
	}
	if !bytes.Equal(mh, body.masterHash) {
		return fmt.Errorf("%w: round %d: recomputed master hash differs from the note's", ErrInvalidVote, cert.Round)
	}
	signers := map[string]bool{}
	for _, s := range n.Sigs {
		signers[s.Name] = true
	}
	if q := fed.EffectiveQuorum(); len(signers) < q {
		return fmt.Errorf("%w: round %d: %d member signatures, quorum %d", ErrInvalidVote, cert.Round, len(signers), q)
	}
	cert.MasterHash = mh
	return nil
}

// Outcome says how a round ended.
type Outcome string

// The outcomes of a round.
const (
	// OutcomeCertificate: a quorum of members signed one master hash.
	OutcomeCertificate Outcome = "certificate"
	// OutcomeNoQuorum: the commit deadline passed without a certificate.
	OutcomeNoQuorum Outcome = "no-quorum"
)

// RoundResult is the outcome of one round, which the node appends to its
// log as a MasterHash record. Its JSON form is
//
//	{"round": 172800000,
//	 "outcome": "certificate",
//	 "note": "testnet/master\n3\n<base64 M_r>\nround 172800000\n\n— testnet/node0 <sig>\n...",
//	 "checkpoints": ["<signed checkpoint note>", ...]}
//
// With outcome "certificate", note and checkpoints form the Certificate.
// With "no-quorum", note is this node's own last vote of the round (one
// signature) and checkpoints the ones it covers; both are empty if the node
// held no checkpoint of the round and so never voted.
type RoundResult struct {
	// Round is the round.
	Round uint64
	// Outcome is OutcomeCertificate or OutcomeNoQuorum.
	Outcome Outcome
	// Note is the certificate note, or this node's vote.
	Note []byte
	// Checkpoints are the signed checkpoint notes Note covers, origin order.
	Checkpoints [][]byte
}

type roundResultWire struct {
	Round       uint64   `json:"round"`
	Outcome     Outcome  `json:"outcome"`
	Note        string   `json:"note"`
	Checkpoints []string `json:"checkpoints"`
}

// MarshalJSON encodes the result in the documented JSON form.
func (r RoundResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(roundResultWire{r.Round, r.Outcome, string(r.Note), notesToStrings(r.Checkpoints)})
}

// UnmarshalJSON decodes the documented JSON form.
func (r *RoundResult) UnmarshalJSON(b []byte) error {
	var w roundResultWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = RoundResult{Round: w.Round, Outcome: w.Outcome, Note: []byte(w.Note), Checkpoints: stringsToNotes(w.Checkpoints)}
	return nil
}

// Evidence is proof that a member misbehaved: two checkpoint notes, both
// validly signed by Origin, that cannot both be honest, or one whose
// records break the map's rules (rule evidence, see MapRule). Two notes conflict
// on their face (two different checkpoints for one round, a tree that
// shrank, a changed root at the same size, or a prev line that skips the
// previous round's checkpoint), or the later, larger tree is not an
// extension of the earlier one: Root1 and Proof then show it (consistency
// evidence, see VerifyEvidence). Its JSON form is
//
//	{"origin":"...","reason":"...","notes":["<earlier>","<later>"]}
//	{"origin":"...","reason":"not-consistent: ...","notes":["<smaller>","<larger>"],
//	 "root1":"<base64>","proof":["<base64>",...]}
//	{"origin":"...","reason":"map-rule: ...","notes":["<checkpoint>",""],
//	 "records":[{"index":N,"leaf":"<base64>","proof":["<base64>",...]},...]}
type Evidence struct {
	// Origin is the member that signed both notes.
	Origin string
	// Reason says in words why the notes conflict.
	Reason string
	// Notes are the two signed checkpoint notes, the earlier held first;
	// for consistency evidence, the smaller tree first.
	Notes [2][]byte
	// Root1 is, for consistency evidence, the root that the later tree
	// has at the size of the earlier one: not the earlier note's root.
	// Nil for the other kinds.
	Root1 []byte
	// Proof is, for consistency evidence, the RFC 6962 consistency proof
	// from Root1 at the earlier size to the later note's root at its size.
	Proof [][]byte
	// Records are, for rule evidence (see MapRule), the records that break
	// the map's rules, under the first note; the second is then empty.
	Records []EvidenceRecord
}

type evidenceWire struct {
	Origin string    `json:"origin"`
	Reason string    `json:"reason"`
	Notes  [2]string `json:"notes"`
	Root1  []byte    `json:"root1,omitempty"`
	Proof  [][]byte  `json:"proof,omitempty"`
	// Records are rule evidence's records.
	Records []EvidenceRecord `json:"records,omitempty"`
}

// MarshalJSON encodes the evidence in the documented JSON form.
func (e Evidence) MarshalJSON() ([]byte, error) {
	return json.Marshal(evidenceWire{e.Origin, e.Reason, [2]string{string(e.Notes[0]), string(e.Notes[1])}, e.Root1, e.Proof, e.Records})
}

// UnmarshalJSON decodes the documented JSON form.
func (e *Evidence) UnmarshalJSON(b []byte) error {
	var w evidenceWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*e = Evidence{Origin: w.Origin, Reason: w.Reason, Notes: [2][]byte{[]byte(w.Notes[0]), []byte(w.Notes[1])}, Root1: w.Root1, Proof: w.Proof, Records: w.Records}
	return nil
}

func notesToStrings(notes [][]byte) []string {
	out := make([]string, len(notes))
	for i, n := range notes {
		out[i] = string(n)
	}
	return out
}

func stringsToNotes(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

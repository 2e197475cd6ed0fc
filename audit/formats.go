package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The auditor's own readers of the documented wire formats (docs/formats.md;
// docs/design.md, "The log", "Epochs and rounds", "The quorum master hash"). They are written
// from the documentation, not shared with the node, so that a bug in the
// node's encoders cannot hide behind the same bug in its decoders; tests
// check them against vectors made by the node's code.

// ErrMalformed is wrapped by every error of the readers of the wire formats
// ([ParseLeaf], [ParseVoteText], [ParseRoundResult], and the checkpoint
// text [Keys.OpenCheckpoint] reads) for input not in the documented form.
var ErrMalformed = errors.New("malformed")

// Leaf is a log record decoded from its leaf encoding: version byte
// 0x01, seq (8 bytes), time (8 bytes, signed ns since the Unix epoch), then
// kind, identifier, account and origin each as a 2-byte length and bytes,
// then the payload as a 4-byte length and bytes; integers big-endian.
type Leaf struct {
	Seq        uint64
	Time       time.Time
	Kind       string
	Identifier string
	Account    string
	Origin     string
	Payload    []byte
}

// maxLeafPayload is the largest payload the leaf encoding allows (16 MiB).
const maxLeafPayload = 16 << 20

// ParseLeaf decodes a leaf encoding, rejecting anything but the exact
// encoding of one record (wrong version, short fields, trailing bytes, an
// empty kind).
func ParseLeaf(b []byte) (Leaf, error) {
	var l Leaf
	rest := b
	take := func(n int, field string) ([]byte, error) {
		if len(rest) < n {
			return nil, fmt.Errorf("%w leaf: %s: need %d bytes, have %d", ErrMalformed, field, n, len(rest))
		}
		v := rest[:n]
		rest = rest[n:]
		return v, nil
	}
	v, err := take(17, "header")
	if err != nil {
		return l, err
	}
	if v[0] != 1 {
		return l, fmt.Errorf("%w leaf: version %d, want 1", ErrMalformed, v[0])
	}
	l.Seq = binary.BigEndian.Uint64(v[1:9])
	l.Time = time.Unix(0, int64(binary.BigEndian.Uint64(v[9:17]))).UTC()
	for _, f := range []struct {
		name string
		dst  *string
	}{{"kind", &l.Kind}, {"identifier", &l.Identifier}, {"account", &l.Account}, {"origin", &l.Origin}} {
		n, err := take(2, f.name+" length")
		if err != nil {
			return l, err
		}
		s, err := take(int(binary.BigEndian.Uint16(n)), f.name)
		if err != nil {
			return l, err
		}
		*f.dst = string(s)
	}
	n, err := take(4, "payload length")
	if err != nil {
		return l, err
	}
	size := binary.BigEndian.Uint32(n)
	if size > maxLeafPayload {
		return l, fmt.Errorf("%w leaf: payload length %d over the limit of %d", ErrMalformed, size, maxLeafPayload)
	}
	p, err := take(int(size), "payload")
	if err != nil {
		return l, err
	}
	l.Payload = bytes.Clone(p)
	if len(rest) != 0 {
		return l, fmt.Errorf("%w leaf: %d trailing bytes", ErrMalformed, len(rest))
	}
	if l.Kind == "" {
		return l, fmt.Errorf("%w leaf: empty kind", ErrMalformed)
	}
	return l, nil
}

// Checkpoint is a checkpoint note of a member's log. Its text is
//
//	<origin>
//	<size>
//	<base64 root>
//	round <r>
//	time <unix seconds>
//	prev <base64 SHA-256 of the previous signed note>   (absent for the first)
//	map <base64 root of the log's verifiable map>       (absent without a map)
//
// followed by a blank line and the signatures; map, when present, is the
// last line. [Keys.OpenCheckpoint]
// returns it only once the signature of its origin's member key verified.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	Round  uint64
	Time   uint64 // unix seconds
	Prev   []byte // nil for the first checkpoint
	Map    []byte // nil for a checkpoint without a map line
	// Note is the whole signed note.
	Note string
}

// parseCheckpointText parses the text (not the signatures) of a checkpoint
// note in exactly the documented form.
func parseCheckpointText(text string) (Checkpoint, error) {
	var c Checkpoint
	body, ok := strings.CutSuffix(text, "\n")
	if !ok || !utf8.ValidString(text) {
		return c, fmt.Errorf("%w checkpoint: not UTF-8 text ending in a newline", ErrMalformed)
	}
	lines := strings.Split(body, "\n")
	if len(lines) < 5 || len(lines) > 7 {
		return c, fmt.Errorf("%w checkpoint: %d lines, want 5 to 7", ErrMalformed, len(lines))
	}
	if !validKeyName(lines[0]) {
		return c, fmt.Errorf("%w checkpoint: origin %q", ErrMalformed, lines[0])
	}
	c.Origin = lines[0]
	var err error
	if c.Size, err = canonicalDecimal(lines[1]); err != nil {
		return c, fmt.Errorf("%w checkpoint: size: %w", ErrMalformed, err)
	}
	if c.Root, err = canonicalHash(lines[2]); err != nil {
		return c, fmt.Errorf("%w checkpoint: root: %w", ErrMalformed, err)
	}
	if c.Round, err = keywordDecimal(lines[3], "round"); err != nil {
		return c, fmt.Errorf("%w checkpoint: %w", ErrMalformed, err)
	}
	if c.Time, err = keywordDecimal(lines[4], "time"); err != nil {
		return c, fmt.Errorf("%w checkpoint: %w", ErrMalformed, err)
	}
	rest := lines[5:]
	if len(rest) > 0 && strings.HasPrefix(rest[len(rest)-1], "map ") {
		if c.Map, err = canonicalHash(strings.TrimPrefix(rest[len(rest)-1], "map ")); err != nil {
			return c, fmt.Errorf("%w checkpoint: map: %w", ErrMalformed, err)
		}
		rest = rest[:len(rest)-1]
	}
	switch {
	case len(rest) > 1:
		return c, fmt.Errorf("%w checkpoint: line 7 %q is not a map line", ErrMalformed, rest[1])
	case len(rest) == 1:
		v, ok := strings.CutPrefix(rest[0], "prev ")
		if !ok {
			return c, fmt.Errorf("%w checkpoint: line 6 %q is not a prev line", ErrMalformed, rest[0])
		}
		if c.Prev, err = canonicalHash(v); err != nil {
			return c, fmt.Errorf("%w checkpoint: prev: %w", ErrMalformed, err)
		}
	}
	return c, nil
}

// Vote is the text of a master-hash vote or certificate note:
//
//	<federation>/master
//	<number of checkpoints>
//	<base64 M_r>
//	round <r>
type Vote struct {
	Count      uint64
	MasterHash []byte
	Round      uint64
}

// ParseVoteText parses the text of a vote note of the federation fed.
func ParseVoteText(fed, text string) (Vote, error) {
	var v Vote
	body, ok := strings.CutSuffix(text, "\n")
	lines := strings.Split(body, "\n")
	if !ok || len(lines) != 4 {
		return v, fmt.Errorf("%w master-hash note: want 4 lines ending in newlines", ErrMalformed)
	}
	if lines[0] != fed+"/master" {
		return v, fmt.Errorf("%w master-hash note: origin line %q, want %q", ErrMalformed, lines[0], fed+"/master")
	}
	var err error
	if v.Count, err = canonicalDecimal(lines[1]); err != nil || v.Count == 0 {
		return v, fmt.Errorf("%w master-hash note: count %q", ErrMalformed, lines[1])
	}
	if v.MasterHash, err = canonicalHash(lines[2]); err != nil {
		return v, fmt.Errorf("%w master-hash note: master hash: %w", ErrMalformed, err)
	}
	if v.Round, err = keywordDecimal(lines[3], "round"); err != nil {
		return v, fmt.Errorf("%w master-hash note: %w", ErrMalformed, err)
	}
	return v, nil
}

// NoteText returns the text of a signed note, everything up to and
// including the newline before the blank line that starts the signatures,
// without verifying anything.
func NoteText(signed string) string {
	if i := strings.Index(signed, "\n\n"); i >= 0 {
		return signed[:i+1]
	}
	return signed
}

// RoundResult is the payload of a MasterHash record:
// {"round":r,"outcome":"certificate"|"no-quorum","note":"...","checkpoints":["...",...]}.
type RoundResult struct {
	Round       uint64   `json:"round"`
	Outcome     string   `json:"outcome"`
	Note        string   `json:"note"`
	Checkpoints []string `json:"checkpoints"`
}

// The outcomes of a round in a MasterHash record.
const (
	OutcomeCertificate = "certificate"
	OutcomeNoQuorum    = "no-quorum"
)

// ParseRoundResult decodes a MasterHash record's payload.
func ParseRoundResult(payload []byte) (RoundResult, error) {
	var r RoundResult
	if err := json.Unmarshal(payload, &r); err != nil {
		return r, fmt.Errorf("%w MasterHash payload: %w", ErrMalformed, err)
	}
	return r, nil
}

// evidencePayload is the payload of an Evidence record:
// {"origin":"...","reason":"...","notes":["<earlier note>","<later note>"]},
// and for consistency evidence also "root1" (base64) and "proof" (a list of
// base64 hashes): the later note's tree has root1 at the earlier note's size;
// rule evidence has an empty second note and "records".
type evidencePayload struct {
	Origin string    `json:"origin"`
	Reason string    `json:"reason"`
	Notes  [2]string `json:"notes"`
	Root1  []byte    `json:"root1,omitempty"`
	Proof  [][]byte  `json:"proof,omitempty"`
	// Records are, for rule evidence (an empty second note), the records
	// that break the map's rules under the first note.
	Records []evidenceRecord `json:"records,omitempty"`
}

// maxEvidenceProof bounds the hashes of a consistency proof in evidence: a
// tree of 2^64 leaves needs fewer than 128.
const maxEvidenceProof = 128

// parseEvidence decodes an Evidence record's payload.
func parseEvidence(payload []byte) (evidencePayload, error) {
	var e evidencePayload
	if err := json.Unmarshal(payload, &e); err != nil {
		return e, fmt.Errorf("%w Evidence payload: %w", ErrMalformed, err)
	}
	if len(e.Proof) > maxEvidenceProof {
		return e, fmt.Errorf("%w Evidence payload: a proof of %d hashes", ErrMalformed, len(e.Proof))
	}
	return e, nil
}

// noteDigest is the SHA-256 of a whole signed note: a checkpoint's prev
// line, and the second half of its leaf in the master-hash tree.
func noteDigest(signed string) []byte {
	h := sha256.Sum256([]byte(signed))
	return h[:]
}

// validKeyName reports whether s can be an origin (a note key name).
func validKeyName(s string) bool {
	return s != "" && utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == '+'
	})
}

// keywordDecimal parses a "<keyword> <decimal>" line.
func keywordDecimal(line, keyword string) (uint64, error) {
	v, ok := strings.CutPrefix(line, keyword+" ")
	if !ok {
		return 0, fmt.Errorf("line %q is not a %s line", line, keyword)
	}
	n, err := canonicalDecimal(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", keyword, err)
	}
	return n, nil
}

// canonicalDecimal parses an unsigned decimal without sign or leading zeros.
func canonicalDecimal(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != s {
		return 0, fmt.Errorf("%q is not a canonical decimal", s)
	}
	return n, nil
}

// canonicalHash parses the canonical standard base64 of 32 bytes.
func canonicalHash(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != sha256.Size || base64.StdEncoding.EncodeToString(b) != s {
		return nil, fmt.Errorf("%q is not the base64 of 32 bytes", s)
	}
	return b, nil
}

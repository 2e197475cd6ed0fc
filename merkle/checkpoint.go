package merkle

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a signed commitment to the state of a log at the close of an
// epoch: a C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint) with up to
// four extension lines. Its text (the body of the signed note) is exactly
//
//	<origin>
//	<size, decimal>
//	<root hash, standard base64 with padding>
//	round <round, decimal>
//	time <Unix seconds, decimal>
//	prev <standard base64 SHA-256 of the previous signed checkpoint note>
//	map <standard base64 root of the log's verifiable map over the size records>
//
// with every line ending in a newline, decimals without sign or leading
// zeros, the prev line absent for a log's first checkpoint, and the map line
// (package vmap) absent from the checkpoints of logs closed without a map;
// when present it is the last line. For example
// the checkpoint of a log named example.org/node1 whose 4 leaves are the
// bytes "a", "b", "c" and "d", closed in round 172800000 at Unix time
// 1728000000, after a previous note whose SHA-256 is that of "previous":
//
//	example.org/node1
//	4
//	MzdqO9Y+mZNwioTd/mworli4NQXdH+1xG9kk7FpiOfA=
//	round 172800000
//	time 1728000000
//	prev baBjNSjeqgFE57BYMV8LdT7AuUUWOnK/lqDRgYD53g0=
//
// The origin is also the name of the key that signs the note, so it is
// non-empty and holds no Unicode spaces and no plus sign.
type Checkpoint struct {
	// Origin names the log (and its signing key).
	Origin string
	// Size is the number of leaves in the tree.
	Size uint64
	// Root is the 32-byte RFC 6962 root hash of the tree of Size leaves.
	Root []byte
	// Round is the epoch round the checkpoint closes.
	Round uint64
	// Time is when the epoch was closed, in Unix seconds.
	Time int64
	// Prev is NoteHash of the previous signed checkpoint of the same log, or
	// empty for the first.
	Prev []byte
	// Map is the 32-byte root of the log's verifiable map over its first
	// Size records, or empty for a checkpoint closed without a map.
	Map []byte
}

// Marshal returns the checkpoint text, the body of the signed note. It does
// not check the fields; SignCheckpoint does.
func (c Checkpoint) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(c.Origin + "\n")
	b.WriteString(strconv.FormatUint(c.Size, 10) + "\n")
	b.WriteString(base64.StdEncoding.EncodeToString(c.Root) + "\n")
	b.WriteString("round " + strconv.FormatUint(c.Round, 10) + "\n")
	b.WriteString("time " + strconv.FormatInt(c.Time, 10) + "\n")
	if len(c.Prev) > 0 {
		b.WriteString("prev " + base64.StdEncoding.EncodeToString(c.Prev) + "\n")
	}
	if len(c.Map) > 0 {
		b.WriteString("map " + base64.StdEncoding.EncodeToString(c.Map) + "\n")
	}
	return b.Bytes()
}

// Validate reports whether c can be marshalled into a checkpoint that
// ParseCheckpoint accepts.
func (c Checkpoint) Validate() error {
	switch {
	case !validOrigin(c.Origin):
		return fmt.Errorf("%w: origin %q is empty, or has spaces, control characters or '+'", ErrMalformedCheckpoint, c.Origin)
	case len(c.Root) != hashSize:
		return fmt.Errorf("%w: root is %d bytes, want %d", ErrMalformedCheckpoint, len(c.Root), hashSize)
	case c.Time < 0:
		return fmt.Errorf("%w: negative time %d", ErrMalformedCheckpoint, c.Time)
	case len(c.Prev) != 0 && len(c.Prev) != sha256.Size:
		return fmt.Errorf("%w: prev is %d bytes, want %d", ErrMalformedCheckpoint, len(c.Prev), sha256.Size)
	case len(c.Map) != 0 && len(c.Map) != hashSize:
		return fmt.Errorf("%w: map root is %d bytes, want %d", ErrMalformedCheckpoint, len(c.Map), hashSize)
	}
	return nil
}

// ParseCheckpoint parses checkpoint text in the exact format documented on
// Checkpoint; anything else (a missing, extra, reordered or empty line, a
// non-canonical number or base64 string) is an ErrMalformedCheckpoint naming
// the line. Marshal of the result gives text back byte for byte.
func ParseCheckpoint(text []byte) (Checkpoint, error) {
	if !utf8.Valid(text) {
		return Checkpoint{}, fmt.Errorf("%w: not UTF-8", ErrMalformedCheckpoint)
	}
	if len(text) == 0 || text[len(text)-1] != '\n' {
		return Checkpoint{}, fmt.Errorf("%w: does not end with a newline", ErrMalformedCheckpoint)
	}
	lines := strings.Split(string(text[:len(text)-1]), "\n")
	if len(lines) < 5 {
		return Checkpoint{}, fmt.Errorf("%w: %d lines, want 5 to 7", ErrMalformedCheckpoint, len(lines))
	}
	if len(lines) > 7 {
		return Checkpoint{}, fmt.Errorf("%w: line 8: unexpected extra line", ErrMalformedCheckpoint)
	}
	names := []string{"origin", "size", "root hash", "round", "time"}
	var c Checkpoint
	for i, line := range lines[:5] {
		if err := c.parseLine(i, line); err != nil {
			return Checkpoint{}, fmt.Errorf("%w: line %d (%s): %w", ErrMalformedCheckpoint, i+1, names[i], err)
		}
	}
	if err := c.parseExtensions(lines[5:]); err != nil {
		return Checkpoint{}, err
	}
	return c, nil
}

// parseExtensions parses the lines after time: an optional prev line, then
// an optional map line, nothing else.
func (c *Checkpoint) parseExtensions(lines []string) error {
	for j, line := range lines {
		n := 6 + j
		var err error
		switch {
		case strings.HasPrefix(line, "prev ") && j == 0:
			c.Prev, err = parseHash(line[len("prev "):])
		case strings.HasPrefix(line, "map ") && j == len(lines)-1:
			c.Map, err = parseHash(line[len("map "):])
		case j == 0 && len(lines) == 1:
			err = fmt.Errorf("%q is neither a prev nor a map line", line)
		case j == 0:
			err = fmt.Errorf("%q is not a prev line", line)
		default:
			err = fmt.Errorf("%q is not a map line", line)
		}
		if err != nil {
			return fmt.Errorf("%w: line %d: %w", ErrMalformedCheckpoint, n, err)
		}
	}
	return nil
}

// parseLine parses line i (from 0) of a checkpoint into c.
func (c *Checkpoint) parseLine(i int, line string) error {
	var err error
	switch i {
	case 0:
		if !validOrigin(line) {
			return errors.New("empty, or has spaces, control characters or '+'")
		}
		c.Origin = line
	case 1:
		c.Size, err = parseDecimal(line)
	case 2:
		c.Root, err = parseHash(line)
	case 3:
		if line, err = keywordValue(line, "round"); err == nil {
			c.Round, err = parseDecimal(line)
		}
	case 4:
		var t uint64
		if line, err = keywordValue(line, "time"); err == nil {
			t, err = parseDecimal(line)
		}
		if err == nil && t > math.MaxInt64 {
			err = fmt.Errorf("%d is out of range", t)
		}
		c.Time = int64(t)
	}
	return err
}

// validOrigin reports whether s can be an origin and key name.
func validOrigin(s string) bool {
	return s != "" && utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == '+'
	})
}

// keywordValue returns the value of a "<keyword> <value>" line.
func keywordValue(line, keyword string) (string, error) {
	v, ok := strings.CutPrefix(line, keyword+" ")
	if !ok {
		return "", fmt.Errorf("%q does not start with %q", line, keyword+" ")
	}
	return v, nil
}

// parseDecimal parses a canonical unsigned decimal: digits only, no leading
// zeros, within uint64.
func parseDecimal(s string) (uint64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a decimal number", s)
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%q has leading zeros", s)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return v, nil
}

// parseHash parses a canonical standard base64 encoding of 32 bytes.
func parseHash(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not standard base64: %w", s, err)
	}
	if len(b) != hashSize {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), hashSize)
	}
	if base64.StdEncoding.EncodeToString(b) != s {
		return nil, fmt.Errorf("%q is not canonical base64", s)
	}
	return b, nil
}

// NoteHash returns the SHA-256 of a whole signed checkpoint note (text and
// signature lines), the value of the next checkpoint's prev line.
func NoteHash(signedNote []byte) []byte {
	h := sha256.Sum256(signedNote)
	return h[:]
}

// SignCheckpoint checks c and returns it as a note signed by s, whose key
// name must be c.Origin: the text, a blank line, then one signature line
// "— <key name> <base64 of 4-byte key hash || Ed25519 signature>". Signed
// with the Ed25519 key whose seed is 32 zero bytes, the example checkpoint
// on Checkpoint becomes
//
//	example.org/node1
//	4
//	MzdqO9Y+mZNwioTd/mworli4NQXdH+1xG9kk7FpiOfA=
//	round 172800000
//	time 1728000000
//	prev baBjNSjeqgFE57BYMV8LdT7AuUUWOnK/lqDRgYD53g0=
//
//	— example.org/node1 BSN6q9TaYo+DFoC7OYBDaDm6WbbYvnVeAM2bC5OnZAM6R99M/dGzHYVBa4KIAuZwjBYoKi/zXooBiG+xllLaPR47PgM=
func SignCheckpoint(c Checkpoint, s note.Signer) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if s.Name() != c.Origin {
		return nil, fmt.Errorf("merkle: sign checkpoint of origin %q with key %q: %w", c.Origin, s.Name(), ErrSignature)
	}
	msg, err := note.Sign(&note.Note{Text: string(c.Marshal())}, s)
	if err != nil {
		return nil, fmt.Errorf("merkle: sign checkpoint of %q at size %d: %w", c.Origin, c.Size, err)
	}
	return msg, nil
}

// OpenCheckpoint verifies a signed checkpoint note against the known
// verifiers and parses it. The note must carry a valid signature by a key
// named after the checkpoint's origin; other signatures (cosignatures) are
// reported in the returned note.
func OpenCheckpoint(msg []byte, v note.Verifiers) (Checkpoint, *note.Note, error) {
	n, err := note.Open(msg, v)
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("%w: %w", ErrSignature, err)
	}
	c, err := ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, nil, err
	}
	for _, s := range n.Sigs {
		if s.Name == c.Origin {
			return c, n, nil
		}
	}
	return Checkpoint{}, nil, fmt.Errorf("%w: no verified signature by %q", ErrSignature, c.Origin)
}

// VerifyConsistent checks that next can follow prev in one append-only log:
// the same origin, a tree that did not shrink, and a consistency proof from
// prev's root to next's root (proof.VerifyConsistency). Any failure is
// ErrInconsistent; with valid signatures on both, it is evidence of
// equivocation.
func VerifyConsistent(prev, next Checkpoint, p [][]byte) error {
	if prev.Origin != next.Origin {
		return fmt.Errorf("%w: origin %q, then %q", ErrInconsistent, prev.Origin, next.Origin)
	}
	if next.Size < prev.Size {
		return fmt.Errorf("%w: %q shrank from size %d to %d", ErrInconsistent, prev.Origin, prev.Size, next.Size)
	}
	if err := proof.VerifyConsistency(hasher, prev.Size, next.Size, p, prev.Root, next.Root); err != nil {
		return fmt.Errorf("%w: %q from size %d to %d: %w", ErrInconsistent, prev.Origin, prev.Size, next.Size, err)
	}
	return nil
}

package merkle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

const exampleOrigin = "example.org/node1"

// exampleText and exampleSigned are the vectors documented on Checkpoint and
// SignCheckpoint: leaves "a", "b", "c", "d", prev = SHA-256("previous"),
// signed with the Ed25519 key whose seed is 32 zero bytes.
const (
	exampleText = "example.org/node1\n" +
		"4\n" +
		"MzdqO9Y+mZNwioTd/mworli4NQXdH+1xG9kk7FpiOfA=\n" +
		"round 172800000\n" +
		"time 1728000000\n" +
		"prev baBjNSjeqgFE57BYMV8LdT7AuUUWOnK/lqDRgYD53g0=\n"
	exampleSigned = exampleText + "\n" +
		"— example.org/node1 BSN6q9TaYo+DFoC7OYBDaDm6WbbYvnVeAM2bC5OnZAM6R99M/dGzHYVBa4KIAuZwjBYoKi/zXooBiG+xllLaPR47PgM=\n"
	exampleVerifierKey = "example.org/node1+05237aab+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
)

func exampleCheckpoint() Checkpoint {
	leaves := [][]byte{refLeafHash([]byte("a")), refLeafHash([]byte("b")), refLeafHash([]byte("c")), refLeafHash([]byte("d"))}
	prev := sha256.Sum256([]byte("previous"))
	return Checkpoint{Origin: exampleOrigin, Size: 4, Root: refRoot(leaves), Round: 172800000, Time: 1728000000, Prev: prev[:]}
}

func signerVerifier(t testing.TB, origin string, seed byte) (note.Signer, note.Verifier) {
	t.Helper()
	key := testKey(seed)
	s, err := NewSigner(origin, key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(origin, key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func TestCheckpointMatchesTheDocumentedVectors(t *testing.T) {
	c := exampleCheckpoint()
	if got := string(c.Marshal()); got != exampleText {
		t.Fatalf("Marshal() =\n%s\nwant\n%s", got, exampleText)
	}
	s, _ := signerVerifier(t, exampleOrigin, 0)
	signed, err := SignCheckpoint(c, s)
	if err != nil {
		t.Fatal(err)
	}
	if string(signed) != exampleSigned {
		t.Fatalf("SignCheckpoint() =\n%s\nwant\n%s", signed, exampleSigned)
	}
	vkey, err := VerifierKey(exampleOrigin, testKey(0).Public().(ed25519.PublicKey))
	if err != nil || vkey != exampleVerifierKey {
		t.Fatalf("VerifierKey() = %q, %v; want %q", vkey, err, exampleVerifierKey)
	}
}

func TestCheckpointRoundTrips(t *testing.T) {
	first := exampleCheckpoint()
	first.Prev = nil
	mapped, firstMapped := exampleCheckpoint(), first
	mapped.Map = bytes.Repeat([]byte{7}, 32)
	firstMapped.Map = make([]byte, 32)
	for name, c := range map[string]Checkpoint{"with prev": exampleCheckpoint(), "first, without prev": first,
		"with prev and map": mapped, "first, with a map": firstMapped} {
		got, err := ParseCheckpoint(c.Marshal())
		if err != nil {
			t.Fatalf("%s: ParseCheckpoint(Marshal()): %v", name, err)
		}
		if !bytes.Equal(got.Marshal(), c.Marshal()) || got.Origin != c.Origin || got.Size != c.Size ||
			!bytes.Equal(got.Root, c.Root) || got.Round != c.Round || got.Time != c.Time || !bytes.Equal(got.Prev, c.Prev) ||
			!bytes.Equal(got.Map, c.Map) {
			t.Fatalf("%s: round trip gave %+v, want %+v", name, got, c)
		}
	}
}

func TestOpenCheckpointVerifiesTheOriginSignature(t *testing.T) {
	s, v := signerVerifier(t, exampleOrigin, 0)
	otherS, otherV := signerVerifier(t, "example.org/node2", 1)
	_, impostorV := signerVerifier(t, exampleOrigin, 2)
	signed, err := SignCheckpoint(exampleCheckpoint(), s)
	if err != nil {
		t.Fatal(err)
	}

	c, n, err := OpenCheckpoint(signed, note.VerifierList(v, otherV))
	if err != nil {
		t.Fatalf("OpenCheckpoint with the origin's key: %v", err)
	}
	if c.Size != 4 || c.Origin != exampleOrigin || len(n.Sigs) != 1 {
		t.Fatalf("OpenCheckpoint = %+v, %d signatures", c, len(n.Sigs))
	}

	cosigned, err := note.Sign(n, otherS)
	if err != nil {
		t.Fatal(err)
	}
	if _, n, err := OpenCheckpoint(cosigned, note.VerifierList(v)); err != nil || len(n.UnverifiedSigs) != 1 {
		t.Fatalf("OpenCheckpoint of a cosigned note: %v, want success with one unverified signature", err)
	}

	otherSigned, err := note.Sign(&note.Note{Text: exampleText}, otherS)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(signed, []byte("\n4\n"), []byte("\n5\n"), 1)
	for _, c := range []struct {
		name string
		msg  []byte
		vs   note.Verifiers
	}{
		{"an unknown key", signed, note.VerifierList(otherV)},
		{"a different key with the origin's name", signed, note.VerifierList(impostorV)},
		{"a signature by another member only", otherSigned, note.VerifierList(v, otherV)},
		{"a tampered size", tampered, note.VerifierList(v)},
		{"no signature at all", []byte(exampleText), note.VerifierList(v)},
	} {
		if _, _, err := OpenCheckpoint(c.msg, c.vs); !errors.Is(err, ErrSignature) {
			t.Errorf("OpenCheckpoint with %s: err = %v, want ErrSignature", c.name, err)
		}
	}

	badText, err := note.Sign(&note.Note{Text: "example.org/node1\n4\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenCheckpoint(badText, note.VerifierList(v)); !errors.Is(err, ErrMalformedCheckpoint) {
		t.Errorf("OpenCheckpoint of a signed non-checkpoint: err = %v, want ErrMalformedCheckpoint", err)
	}
}

func TestSignCheckpointRejectsInvalidCheckpoints(t *testing.T) {
	s, _ := signerVerifier(t, exampleOrigin, 0)
	for name, mutate := range map[string]func(*Checkpoint){
		"a short root":           func(c *Checkpoint) { c.Root = c.Root[:31] },
		"an origin with a space": func(c *Checkpoint) { c.Origin = "example.org node1" },
		"a negative time":        func(c *Checkpoint) { c.Time = -1 },
		"a short prev":           func(c *Checkpoint) { c.Prev = c.Prev[:5] },
	} {
		c := exampleCheckpoint()
		mutate(&c)
		if _, err := SignCheckpoint(c, s); !errors.Is(err, ErrMalformedCheckpoint) {
			t.Errorf("SignCheckpoint of %s: err = %v, want ErrMalformedCheckpoint", name, err)
		}
	}
	other, _ := signerVerifier(t, "example.org/node2", 0)
	if _, err := SignCheckpoint(exampleCheckpoint(), other); !errors.Is(err, ErrSignature) {
		t.Errorf("SignCheckpoint with another origin's key: err = %v, want ErrSignature", err)
	}
}

// mapLine is a valid map line.
const mapLine = "map BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n"

func TestParseCheckpointIsStrict(t *testing.T) {
	lines := strings.SplitAfter(exampleText, "\n")[:6]
	with := func(i int, line string) string {
		l := append([]string(nil), lines...)
		l[i] = line
		return strings.Join(l, "")
	}
	for _, c := range []struct {
		name, text, wantIn string
	}{
		{"empty text", "", "newline"},
		{"no final newline", strings.TrimSuffix(exampleText, "\n"), "newline"},
		{"missing round and time", strings.Join(lines[:3], ""), "3 lines"},
		{"missing time", strings.Join(lines[:4], ""), "4 lines"},
		{"an extra line", exampleText + "extra\n", "line 7"},
		{"an empty extra line", exampleText + "\n", "line 7"},
		{"an empty origin", with(0, "\n"), "line 1"},
		{"an origin with a space", with(0, "example.org node1\n"), "line 1"},
		{"an origin with a plus", with(0, "example.org+node1\n"), "line 1"},
		{"an origin with a control character", with(0, "example.org\x00\n"), "line 1"},
		{"a negative size", with(1, "-4\n"), "line 2"},
		{"a size with a plus sign", with(1, "+4\n"), "line 2"},
		{"a size with leading zeros", with(1, "04\n"), "line 2"},
		{"a size with a space", with(1, "4 \n"), "line 2"},
		{"a size over uint64", with(1, "18446744073709551616\n"), "line 2"},
		{"a hex size", with(1, "0x4\n"), "line 2"},
		{"an empty size", with(1, "\n"), "line 2"},
		{"a root that is not base64", with(2, "not base64!\n"), "line 3"},
		{"a root in URL base64", with(2, "MzdqO9Y-mZNwioTd_mworli4NQXdH-1xG9kk7FpiOfA=\n"), "line 3"},
		{"a root without padding", with(2, "MzdqO9Y+mZNwioTd/mworli4NQXdH+1xG9kk7FpiOfA\n"), "line 3"},
		{"a root with non-zero padding bits", with(2, "MzdqO9Y+mZNwioTd/mworli4NQXdH+1xG9kk7FpiOfB=\n"), "line 3"},
		{"a 31-byte root", with(2, "MzdqO9Y+mZNwioTd/mworli4NQXdH+1xG9kk7FpiOQ==\n"), "line 3"},
		{"a missing round keyword", with(3, "172800000\n"), "line 4"},
		{"a misspelt round keyword", with(3, "rnd 172800000\n"), "line 4"},
		{"two spaces after round", with(3, "round  172800000\n"), "line 4"},
		{"an empty round", with(3, "round \n"), "line 4"},
		{"time before round", with(3, "time 1728000000\n"), "line 4"},
		{"a negative time", with(4, "time -1\n"), "line 5"},
		{"a time over int64", with(4, "time 9223372036854775808\n"), "line 5"},
		{"a fractional time", with(4, "time 1728000000.5\n"), "line 5"},
		{"an empty prev", with(5, "prev \n"), "line 6"},
		{"a prev without value", with(5, "prev\n"), "line 6"},
		{"a short prev", with(5, "prev AAAA\n"), "line 6"},
		{"an unknown extension", with(5, "note hello\n"), "line 6"},
		{"an unknown extension after prev", exampleText + "note hello\n", "line 7"},
		{"an unknown extension after map", exampleText + mapLine + "note hello\n", "line 8"},
		{"map before prev", with(5, mapLine) + lines[5], "line 6"},
		{"two map lines", exampleText + mapLine + mapLine, "line 8"},
		{"two map lines without prev", with(5, mapLine) + mapLine, "line 6"},
		{"an empty map", exampleText + "map \n", "line 7"},
		{"a map without value", exampleText + "map\n", "line 7"},
		{"a short map", exampleText + "map AAAA\n", "line 7"},
		{"a map in URL base64", exampleText + "map " + strings.Repeat("_", 43) + "=\n", "line 7"},
		{"two spaces after map", exampleText + "map  " + mapLine[4:], "line 7"},
		{"CRLF line ends", strings.ReplaceAll(exampleText, "\n", "\r\n"), "line"},
		{"invalid UTF-8", with(0, "example.org/\xff\n"), "UTF-8"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseCheckpoint([]byte(c.text))
			if !errors.Is(err, ErrMalformedCheckpoint) {
				t.Fatalf("err = %v, want ErrMalformedCheckpoint", err)
			}
			if !strings.Contains(err.Error(), c.wantIn) {
				t.Fatalf("err = %q, want it to mention %q", err, c.wantIn)
			}
		})
	}
}

func TestParseCheckpointAcceptsBoundaryValues(t *testing.T) {
	text := "o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nround 0\ntime 0\n"
	c, err := ParseCheckpoint([]byte(text))
	if err != nil || c.Size != 0 || c.Round != 0 || c.Time != 0 || c.Prev != nil {
		t.Fatalf("ParseCheckpoint(zeros) = %+v, %v", c, err)
	}
	text = "o\n18446744073709551615\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nround 18446744073709551615\ntime 9223372036854775807\n"
	c, err = ParseCheckpoint([]byte(text))
	if err != nil || c.Size != 1<<64-1 || c.Round != 1<<64-1 || c.Time != 1<<63-1 {
		t.Fatalf("ParseCheckpoint(maxima) = %+v, %v", c, err)
	}
	if string(c.Marshal()) != text {
		t.Fatalf("Marshal() = %q, want %q", c.Marshal(), text)
	}
}

func TestValidateRefusesBadHashLengths(t *testing.T) {
	for name, change := range map[string]func(*Checkpoint){
		"a 31-byte root": func(c *Checkpoint) { c.Root = c.Root[:31] },
		"a 31-byte prev": func(c *Checkpoint) { c.Prev = c.Prev[:31] },
		"a 33-byte map":  func(c *Checkpoint) { c.Map = make([]byte, 33) },
		"a 1-byte map":   func(c *Checkpoint) { c.Map = []byte{1} },
	} {
		c := exampleCheckpoint()
		change(&c)
		if err := c.Validate(); !errors.Is(err, ErrMalformedCheckpoint) {
			t.Errorf("%s: Validate() = %v, want ErrMalformedCheckpoint", name, err)
		}
	}
}

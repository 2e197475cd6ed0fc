package merkle

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func FuzzParseCheckpoint(f *testing.F) {
	first := exampleCheckpoint()
	first.Prev = nil
	for _, seed := range []string{
		exampleText,
		string(first.Marshal()),
		exampleText + "extra\n",
		exampleText + mapLine,
		string(first.Marshal()) + mapLine,
		exampleText + mapLine + mapLine,
		strings.Replace(exampleText, "round ", "round 0", 1),
		"o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nround 0\ntime 0\n",
		"",
		"\n\n\n\n\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		c, err := ParseCheckpoint(text)
		if err != nil {
			return
		}
		if got := c.Marshal(); !bytes.Equal(got, text) {
			t.Fatalf("ParseCheckpoint(%q) then Marshal() = %q", text, got)
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseCheckpoint(%q) accepted a checkpoint that Validate rejects: %v", text, err)
		}
	})
}

func FuzzOpenCheckpoint(f *testing.F) {
	f.Add([]byte(exampleSigned))
	f.Add([]byte(exampleText))
	f.Add([]byte(exampleSigned + "— example.org/node2 AAAAAAAA\n"))
	f.Add([]byte(strings.Replace(exampleSigned, "\n4\n", "\n5\n", 1)))
	_, v := signerVerifier(f, exampleOrigin, 0)
	verifiers := note.VerifierList(v)
	f.Fuzz(func(t *testing.T, msg []byte) {
		c, n, err := OpenCheckpoint(msg, verifiers)
		if err != nil {
			return
		}
		if c.Origin != exampleOrigin {
			t.Fatalf("OpenCheckpoint(%q) accepted origin %q with the key of %q", msg, c.Origin, exampleOrigin)
		}
		if got := string(c.Marshal()); got != n.Text {
			t.Fatalf("OpenCheckpoint(%q) parsed text %q that marshals to %q", msg, n.Text, got)
		}
	})
}

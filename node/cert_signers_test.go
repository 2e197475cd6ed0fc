package node

import (
	"crypto/rand"
	"fmt"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/config"
)

// certSigners names the members whose signatures verify, remembers them
// per note without verifying again, starts afresh for a new federation and
// stays within its bound.
func TestCertSignersVerifiesEachNoteOncePerFederation(t *testing.T) {
	keys := map[string]note.Signer{}
	var fed config.Federation
	for _, name := range []string{"a", "b", "outsider"} {
		skey, vkey, err := note.GenerateKey(rand.Reader, name)
		if err != nil {
			t.Fatal(err)
		}
		if keys[name], err = note.NewSigner(skey); err != nil {
			t.Fatal(err)
		}
		if name != "outsider" {
			fed.Members = append(fed.Members, config.Member{Origin: name, Key: vkey})
		}
	}
	sign := func(text string, names ...string) []byte {
		var signers []note.Signer
		for _, n := range names {
			signers = append(signers, keys[n])
		}
		signed, err := note.Sign(&note.Note{Text: text}, signers...)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}

	var c certSigners
	cert := sign("round 7\n", "a", "outsider", "b")
	if got := c.of(&fed, cert); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("signers %q, want the two members [a b]", got)
	}
	if got := c.of(&fed, sign("round 8\n", "outsider")); got != nil {
		t.Errorf("a note signed by no member: signers %q, want none", got)
	}
	if got := c.of(&fed, []byte("not a note")); got != nil {
		t.Errorf("bytes that are no note: signers %q, want none", got)
	}
	if got := c.of(nil, cert); got != nil {
		t.Errorf("no federation: signers %q, want none", got)
	}

	// The names are the caller's: changing them leaves the cache alone.
	got := c.of(&fed, cert)
	got[0] = "mallory"
	if again := c.of(&fed, cert); !slices.Equal(again, []string{"a", "b"}) || c.count(&fed, cert) != 2 {
		t.Errorf("after the caller changed its copy: signers %q, count %d; want [a b], 2", again, c.count(&fed, cert))
	}

	// A second look at the same note is answered from memory: with the
	// verifiers taken away it still names both members.
	c.mu.Lock()
	c.vs = note.VerifierList()
	c.mu.Unlock()
	if got := c.of(&fed, cert); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("the same note again: signers %q, want [a b] without verifying again", got)
	}

	// Another federation (b removed) verifies again: b's signature no
	// longer counts.
	smaller := config.Federation{Members: fed.Members[:1]}
	if got := c.of(&smaller, cert); !slices.Equal(got, []string{"a"}) {
		t.Errorf("after b left: signers %q, want [a]", got)
	}

	for i := range certSignersMax + 5 {
		c.of(&smaller, sign(fmt.Sprintf("round %d\n", 100+i), "a"))
		if len(c.m) > certSignersMax {
			t.Fatalf("%d entries after %d notes, want at most %d", len(c.m), i+1, certSignersMax)
		}
	}
}

package mesh

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"testing"
)

func TestPublicationVerifies(t *testing.T) {
	recipient, signer := newKey(t, CurveX448), newKey(t, CurveEd448)
	env, err := Encrypt(rand.Reader, []byte("for alice"), []PublicKey{recipient.Public()}, signer)
	if err != nil {
		t.Fatal(err)
	}
	entry, id, err := NewPublication(env)
	if err != nil {
		t.Fatal(err)
	}
	e, err := VerifyEntry(entry, 0)
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != TypeCatalogedPublication || !e.Identifier.Equal(id) {
		t.Fatalf("entry %s %s, want %s %s", e.Type, e.Identifier, TypeCatalogedPublication, id)
	}
	if err := MayReplace(e, e); !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("a publication replaced: %v", err)
	}
	pt, _, err := e.Object.(*CatalogedPublication).EnvelopedData.Decrypt([]*PrivateKey{recipient}, trusting(signer.Public()))
	if err != nil || string(pt) != "for alice" {
		t.Fatalf("%q, %v", pt, err)
	}

	// A copy whose header was changed (here: another recipient added) has
	// another ID, so it cannot take the original's place.
	changed := *env
	changed.Header.Encryption = &EncryptionHeader{}
	*changed.Header.Encryption = *env.Header.Encryption
	extra, err := wrapFor(rand.Reader, make([]byte, 32), newKey(t, CurveX448).Public())
	if err != nil {
		t.Fatal(err)
	}
	changed.Header.Encryption.Recipients = append(append([]Recipient(nil), env.Header.Encryption.Recipients...), extra)
	changed.Header.Raw = changed.Header.Encryption.marshal()
	id2, _ := PublicationID(&changed)
	if id2.Equal(id) {
		t.Fatal("a changed header keeps the publication's ID")
	}
	plain, _ := Sign([]byte("x"), signer)
	unsigned, _ := Encrypt(rand.Reader, []byte("x"), []PublicKey{recipient.Public()}, signer)
	unsigned.Trailer.Signatures = nil
	for _, c := range []struct {
		name string
		pub  *CatalogedPublication
		want error
	}{
		{"another envelope's ID", &CatalogedPublication{ID: id2.String(), EnvelopedData: env}, ErrIdentifierMismatch},
		{"no data", &CatalogedPublication{ID: id.String()}, ErrMalformed},
		{"plain data", &CatalogedPublication{ID: MustUDFSHA2(ContentTypePublication, mustJSON(t, plain)).String(), EnvelopedData: plain}, ErrMalformed},
		{"unsigned data", &CatalogedPublication{ID: MustUDFSHA2(ContentTypePublication, mustJSON(t, unsigned)).String(), EnvelopedData: unsigned}, ErrBadSignature},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := VerifyEntry(entryOf(t, c.pub), 0); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

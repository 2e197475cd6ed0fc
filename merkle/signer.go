package merkle

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// algEd25519 is the signed-note algorithm byte of Ed25519 keys.
const algEd25519 = 0x01

// VerifierKey returns the signed-note verifier key of a node: the string
// "<origin>+<key hash, 8 hex digits>+<base64 of 0x01 || public key>" that
// note.NewVerifier, witnesses and other tlog tools read, where the key hash
// is the first 4 bytes of SHA-256(origin || "\n" || 0x01 || public key). For
// the Ed25519 key whose seed is 32 zero bytes:
//
//	example.org/node1+05237aab+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop
func VerifierKey(origin string, pub ed25519.PublicKey) (string, error) {
	if !validOrigin(origin) {
		return "", fmt.Errorf("merkle: key name %q is empty, or has spaces, control characters or '+'", origin)
	}
	vkey, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		return "", fmt.Errorf("merkle: verifier key of %q: %w", origin, err)
	}
	return vkey, nil
}

// NewVerifier returns the note verifier of a node's checkpoints: the
// Ed25519 public key pub under the key name origin.
func NewVerifier(origin string, pub ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := VerifierKey(origin, pub)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fmt.Errorf("merkle: verifier of %q: %w", origin, err)
	}
	return v, nil
}

// NewSigner returns the note signer of a node's checkpoints: the Ed25519
// private key under the key name origin. The same key is the node's libp2p
// identity.
func NewSigner(origin string, key ed25519.PrivateKey) (note.Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("merkle: signer of %q: private key is %d bytes, want %d", origin, len(key), ed25519.PrivateKeySize)
	}
	vkey, err := VerifierKey(origin, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	// The signer key encoding is "PRIVATE+KEY+<name>+<hash>+<base64 of
	// 0x01 || seed>"; the name and hash are those of the verifier key.
	keyHash, _, _ := strings.Cut(vkey[len(origin)+1:], "+")
	seed := append([]byte{algEd25519}, key.Seed()...)
	skey := "PRIVATE+KEY+" + origin + "+" + keyHash + "+" + base64.StdEncoding.EncodeToString(seed)
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("merkle: signer of %q: %w", origin, err)
	}
	return s, nil
}

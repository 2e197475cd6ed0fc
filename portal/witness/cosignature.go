package witness

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// algCosignatureV1 is the signed-note key type of C2SP tlog-cosignature's
// Ed25519 cosignature/v1.
const algCosignatureV1 = 0x04

// cosignatureSize is a cosignature/v1 signature: an 8-byte big-endian
// timestamp, then the 64-byte Ed25519 signature.
const cosignatureSize = 8 + ed25519.SignatureSize

// Cosigner makes C2SP tlog-cosignature cosignature/v1 signatures
// (https://c2sp.org/tlog-cosignature): an Ed25519 signature over
//
//	cosignature/v1
//	time <unix seconds>
//	<the checkpoint's note text>
//
// encoded as the timestamp (8 bytes, big-endian) then the signature, in a
// note signature line of key name Name and key ID
// SHA-256(name || "\n" || 0x04 || public key)[:4]. It is a note.Signer.
type Cosigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
	now  func() time.Time
}

// NewCosigner returns a cosigner named name (a schema-less URL, no spaces
// or '+') signing with key.
func NewCosigner(name string, key ed25519.PrivateKey) (*Cosigner, error) {
	if !validName(name) {
		return nil, fmt.Errorf("witness: cosigner name %q: empty, or holds a space or '+'", name)
	}
	pub := key.Public().(ed25519.PublicKey)
	return &Cosigner{name: name, hash: keyHash(name, pub), key: key, now: time.Now}, nil
}

// Name is the cosigner's key name.
func (c *Cosigner) Name() string { return c.name }

// KeyHash is the cosigner's key ID.
func (c *Cosigner) KeyHash() uint32 { return c.hash }

// Sign cosigns a checkpoint's note text.
func (c *Cosigner) Sign(msg []byte) ([]byte, error) {
	t := uint64(c.now().Unix())
	m, err := cosignedMessage(t, msg)
	if err != nil {
		return nil, err
	}
	sig := binary.BigEndian.AppendUint64(make([]byte, 0, cosignatureSize), t)
	return append(sig, ed25519.Sign(c.key, m)...), nil
}

// VerifierKey is the cosigner's verifier key in signed-note vkey form:
// <name>+<key ID, 8 hex digits>+<base64 of 0x04 || public key>.
func (c *Cosigner) VerifierKey() string {
	return vkey(c.name, c.hash, c.key.Public().(ed25519.PublicKey))
}

func vkey(name string, hash uint32, pub ed25519.PublicKey) string {
	return fmt.Sprintf("%s+%08x+%s", name, hash, base64.StdEncoding.EncodeToString(append([]byte{algCosignatureV1}, pub...)))
}

// CosignatureVerifier verifies cosignature/v1 signatures of one cosigner.
// It is a note.Verifier.
type CosignatureVerifier struct {
	name string
	hash uint32
	pub  ed25519.PublicKey
}

// NewCosignatureVerifier parses a cosigner's vkey (see
// Cosigner.VerifierKey), checking that its key ID matches its name and key.
func NewCosignatureVerifier(vk string) (*CosignatureVerifier, error) {
	name, rest, ok1 := strings.Cut(vk, "+")
	hash16, key64, ok2 := strings.Cut(rest, "+")
	hash, err1 := strconv.ParseUint(hash16, 16, 32)
	key, err2 := base64.StdEncoding.DecodeString(key64)
	if !ok1 || !ok2 || len(hash16) != 8 || err1 != nil || err2 != nil || !validName(name) {
		return nil, fmt.Errorf("witness: malformed verifier key %q", vk)
	}
	if len(key) != 1+ed25519.PublicKeySize || key[0] != algCosignatureV1 {
		return nil, fmt.Errorf("witness: verifier key %q is not an Ed25519 cosignature/v1 key (type 0x04)", vk)
	}
	pub := ed25519.PublicKey(key[1:])
	if uint32(hash) != keyHash(name, pub) {
		return nil, fmt.Errorf("witness: verifier key %q: the key ID does not match the name and key", vk)
	}
	return &CosignatureVerifier{name: name, hash: uint32(hash), pub: pub}, nil
}

// Name is the cosigner's key name.
func (v *CosignatureVerifier) Name() string { return v.name }

// KeyHash is the cosigner's key ID.
func (v *CosignatureVerifier) KeyHash() uint32 { return v.hash }

// Verify reports whether sig is the cosigner's cosignature/v1 of msg.
func (v *CosignatureVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != cosignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig)
	if t > 1<<63-1 {
		return false
	}
	m, err := cosignedMessage(t, msg)
	return err == nil && ed25519.Verify(v.pub, m, sig[8:])
}

// String is the verifier key.
func (v *CosignatureVerifier) String() string { return vkey(v.name, v.hash, v.pub) }

// Timestamp returns the time a cosignature/v1 signature says it was made.
func Timestamp(sig note.Signature) (time.Time, error) {
	b, err := base64.StdEncoding.DecodeString(sig.Base64)
	if err != nil || len(b) != 4+cosignatureSize {
		return time.Time{}, errors.New("witness: not a cosignature/v1 signature")
	}
	return time.Unix(int64(binary.BigEndian.Uint64(b[4:])), 0).UTC(), nil
}

// cosignedMessage is the message a cosignature/v1 signs over a checkpoint
// note text, which must at least have an origin, a size and a root line.
func cosignedMessage(t uint64, text []byte) ([]byte, error) {
	if _, err := parseCheckpoint(text); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "cosignature/v1\ntime %d\n", t)
	b.Write(text)
	return b.Bytes(), nil
}

// keyHash is the key ID of an Ed25519 cosignature/v1 key.
func keyHash(name string, pub ed25519.PublicKey) uint32 {
	h := sha256.New()
	h.Write([]byte(name + "\n"))
	h.Write([]byte{algCosignatureV1})
	h.Write(pub)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// validName reports whether name can be a note key name.
func validName(name string) bool {
	return name != "" && utf8.ValidString(name) && strings.IndexFunc(name, unicode.IsSpace) < 0 && !strings.Contains(name, "+")
}

// checkpoint is what a witness reads of a checkpoint: the first three lines
// of C2SP tlog-checkpoint; extension lines are cosigned but not read.
type checkpoint struct {
	origin string
	size   uint64
	root   [32]byte
}

// parseCheckpoint parses a checkpoint note text: origin, size (decimal, no
// leading zeros), base64 root of 32 bytes, then any non-empty extension
// lines, every line ending in a newline.
func parseCheckpoint(text []byte) (checkpoint, error) {
	bad := func(why string) (checkpoint, error) {
		return checkpoint{}, fmt.Errorf("witness: malformed checkpoint: %s", why)
	}
	if len(text) > maxCheckpoint || !utf8.Valid(text) || !bytes.HasSuffix(text, []byte("\n")) {
		return bad("too long, not UTF-8 or not newline-terminated")
	}
	lines := strings.Split(string(text[:len(text)-1]), "\n")
	if len(lines) < 3 {
		return bad("fewer than 3 lines")
	}
	var c checkpoint
	if c.origin = lines[0]; c.origin == "" {
		return bad("empty origin")
	}
	n, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != lines[1] || n > 1<<63-1 {
		return bad("size is not a canonical decimal")
	}
	c.size = n
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		return bad("root is not the base64 of 32 bytes")
	}
	copy(c.root[:], root)
	for _, l := range lines[3:] {
		if l == "" {
			return bad("empty extension line")
		}
	}
	return c, nil
}

// maxCheckpoint bounds a checkpoint note text.
const maxCheckpoint = 4096

// CosignerName is the cosigner name a federation member witnesses under:
// its origin followed by "/witness".
func CosignerName(origin string) string { return origin + "/witness" }

// MemberVerifier returns the cosignature/v1 verifier of a federation
// member's witness from the member's checkpoint verifier key (a signed-note
// Ed25519 vkey, name+keyID+base64(0x01 || key)): the same Ed25519 key,
// named CosignerName(name).
func MemberVerifier(noteKey string) (*CosignatureVerifier, error) {
	name, rest, _ := strings.Cut(noteKey, "+")
	_, key64, _ := strings.Cut(rest, "+")
	key, err := base64.StdEncoding.DecodeString(key64)
	if err != nil || len(key) != 1+ed25519.PublicKeySize || key[0] != 0x01 || !validName(name) {
		return nil, fmt.Errorf("witness: %q is not an Ed25519 note verifier key", noteKey)
	}
	pub := ed25519.PublicKey(key[1:])
	n := CosignerName(name)
	return &CosignatureVerifier{name: n, hash: keyHash(n, pub), pub: pub}, nil
}

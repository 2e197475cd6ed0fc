package mesh

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"io"
	"slices"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/secretsharing"
)

// Offline escrow, client side (meshctl does it; a portal only stores the
// entry):
//
//  1. a random 256-bit key K encrypts the data with AES-256-GCM: EncryptedData
//     = 12-byte nonce || ciphertext || tag, with the entry's Identifier (its
//     UDF string) as additional data;
//  2. Identifier = EscrowKeyUDF(K), the SHA-2 UDF of K with content type
//     EscrowKeyContentType;
//  3. K, as a scalar of the P-384 group (16 zero bytes || K, big-endian), is
//     split with Shamir's scheme (circl's secretsharing) into m shares, any
//     n of which recover it;
//  4. each share is a UDF-style string of type UDFTypeShare ("S..."): the
//     Base32 of 0x90 || n || index || 48-byte share value (408 bits, 82
//     characters).
//
// Recovery parses the shares, interpolates K from n of them, checks the 16
// leading zero bytes (a wrong share gives a random scalar, caught here with
// probability 1-2^-128), finds the entry by EscrowKeyUDF(K) and decrypts.

// OfflineEscrowEntry holds data escrowed with the offline mechanism (seed
// 000 §5.3.23). It travels in an unsigned envelope (no one who could sign
// it is around when it is needed), tagged "OfflineEscrowEntry".
type OfflineEscrowEntry struct {
	// Identifier is EscrowKeyUDF of the escrow key.
	Identifier string `json:"Identifier,omitempty"`
	// EncryptedData is nonce || AES-256-GCM ciphertext || tag.
	EncryptedData Base64 `json:"EncryptedData,omitempty"`
}

// TypeName implements Object.
func (*OfflineEscrowEntry) TypeName() string { return "OfflineEscrowEntry" }

func (o *OfflineEscrowEntry) identifier() UDF {
	u, _ := ParseUDF(o.Identifier)
	return u
}

// EscrowKeyContentType is the content type of an escrow key's UDF.
const EscrowKeyContentType = "application/x-mmm-escrow-key"

// Escrow limits.
const (
	MaxEscrowShares   = 32       // m
	MaxEscrowDataSize = 32 << 10 // bytes of escrowed plaintext
	escrowKeySize     = 32
	shareValueSize    = 48 // P-384 scalar
	shareBits         = (3 + shareValueSize) * 8
)

// EscrowKeyUDF is the identifier of the escrow entry encrypted under key.
func EscrowKeyUDF(key []byte) UDF {
	return MustUDFSHA2(EscrowKeyContentType, key)
}

// Escrow encrypts data under a fresh key, splits the key into shares of
// which threshold recover it, and returns the entry to publish and the
// share strings to hand out. 2 <= threshold <= shares <= MaxEscrowShares.
func Escrow(rand io.Reader, data []byte, threshold, shares int) (*OfflineEscrowEntry, []string, error) {
	if threshold < 2 || threshold > shares || shares > MaxEscrowShares {
		return nil, nil, fieldErr(ErrMalformed, "threshold", "want 2 <= threshold (%d) <= shares (%d) <= %d", threshold, shares, MaxEscrowShares)
	}
	if len(data) > MaxEscrowDataSize {
		return nil, nil, fieldErr(ErrTooLarge, "data", "%d bytes, limit %d", len(data), MaxEscrowDataSize)
	}
	key := make([]byte, escrowKeySize)
	if _, err := io.ReadFull(rand, key); err != nil {
		return nil, nil, fmt.Errorf("mesh: escrow key: %w", err)
	}
	id := EscrowKeyUDF(key).String()
	ct, err := sealEscrow(rand, key, data, id)
	if err != nil {
		return nil, nil, err
	}
	secret := group.P384.NewScalar()
	if err := secret.UnmarshalBinary(append(make([]byte, shareValueSize-escrowKeySize), key...)); err != nil {
		return nil, nil, fmt.Errorf("mesh: escrow key as scalar: %w", err)
	}
	ss := secretsharing.New(rand, uint(threshold-1), secret)
	out := make([]string, 0, shares)
	for i, s := range ss.Share(uint(shares)) {
		v, err := s.Value.MarshalBinary()
		if err != nil {
			return nil, nil, fmt.Errorf("mesh: share value: %w", err)
		}
		bin := append([]byte{byte(UDFTypeShare), byte(threshold), byte(i + 1)}, v...)
		bin = append(bin, 0) // the 82nd character needs two more bits
		u, err := UDFFromBinary(bin, shareBits)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, u.String())
	}
	return &OfflineEscrowEntry{Identifier: id, EncryptedData: ct}, out, nil
}

func sealEscrow(rand io.Reader, key, data []byte, id string) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return nil, fmt.Errorf("mesh: escrow nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, data, []byte(id)), nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("mesh: escrow cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

// Validate checks the entry's shape: Identifier is a SHA-2 UDF and
// EncryptedData is present and within limits. (Only the holder of the
// shares can check more.)
func (o *OfflineEscrowEntry) Validate() error {
	u, err := ParseUDF(o.Identifier)
	if err != nil {
		return inField("Identifier", err)
	}
	if u.Type() != UDFTypeSHA2 {
		return fieldErr(ErrMalformed, "Identifier", "type 0x%02x, want a SHA-2 UDF (M...)", byte(u.Type()))
	}
	if len(o.EncryptedData) < 12+16 {
		return fieldErr(ErrMalformed, "EncryptedData", "%d bytes, too short for nonce and tag", len(o.EncryptedData))
	}
	if len(o.EncryptedData) > MaxEscrowDataSize+12+16 {
		return fieldErr(ErrTooLarge, "EncryptedData", "%d bytes, limit %d", len(o.EncryptedData), MaxEscrowDataSize+12+16)
	}
	return nil
}

// Decrypt decrypts the entry with the escrow key.
func (o *OfflineEscrowEntry) Decrypt(key []byte) ([]byte, error) {
	if len(key) != escrowKeySize {
		return nil, fieldErr(ErrMalformed, "key", "%d bytes, want %d", len(key), escrowKeySize)
	}
	if !UDFEqual(o.Identifier, EscrowKeyUDF(key).String()) {
		return nil, fieldErr(ErrIdentifierMismatch, "Identifier", "%s is not the UDF of this key", o.Identifier)
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	ns := aead.NonceSize()
	if len(o.EncryptedData) < ns+aead.Overhead() {
		return nil, fieldErr(ErrMalformed, "EncryptedData", "%d bytes, too short", len(o.EncryptedData))
	}
	id := EscrowKeyUDF(key).String()
	pt, err := aead.Open(nil, o.EncryptedData[:ns], o.EncryptedData[ns:], []byte(id))
	if err != nil {
		return nil, fieldErr(ErrDecrypt, "EncryptedData", "%v", err)
	}
	return pt, nil
}

type escrowShare struct {
	threshold, index int
	value            []byte
}

func parseShare(s string, field string) (escrowShare, error) {
	u, err := ParseUDF(s)
	if err != nil {
		return escrowShare{}, fieldErr(ErrBadShare, field, "%v", err)
	}
	b := u.Bytes()
	if u.Type() != UDFTypeShare || u.Bits() != (shareBits+4)/5*5 || len(b) < 3+shareValueSize {
		return escrowShare{}, fieldErr(ErrBadShare, field, "not an escrow share (want %d characters starting with S)", (shareBits+4)/5)
	}
	sh := escrowShare{threshold: int(b[1]), index: int(b[2]), value: b[3 : 3+shareValueSize]}
	if sh.threshold < 2 || sh.index < 1 || sh.index > MaxEscrowShares {
		return escrowShare{}, fieldErr(ErrBadShare, field, "threshold %d, index %d out of range", sh.threshold, sh.index)
	}
	return sh, nil
}

// RecoverEscrowKey rebuilds the escrow key from shares (at least the
// threshold the shares state; duplicates are ignored).
func RecoverEscrowKey(shares []string) ([]byte, error) {
	var got []escrowShare
	for i, s := range shares {
		sh, err := parseShare(s, fieldIndex("shares", i))
		if err != nil {
			return nil, err
		}
		if len(got) > 0 && sh.threshold != got[0].threshold {
			return nil, fieldErr(ErrBadShare, fieldIndex("shares", i), "threshold %d, other shares say %d", sh.threshold, got[0].threshold)
		}
		j := slices.IndexFunc(got, func(g escrowShare) bool { return g.index == sh.index })
		if j >= 0 {
			if !bytes.Equal(got[j].value, sh.value) {
				return nil, fieldErr(ErrBadShare, fieldIndex("shares", i), "two different shares with index %d", sh.index)
			}
			continue
		}
		got = append(got, sh)
	}
	if len(got) == 0 {
		return nil, fieldErr(ErrThreshold, "shares", "none given")
	}
	n := got[0].threshold
	if len(got) < n {
		return nil, fieldErr(ErrThreshold, "shares", "%d distinct shares, %d needed", len(got), n)
	}
	cs := make([]secretsharing.Share, 0, n)
	for _, g := range got[:n] {
		v := group.P384.NewScalar()
		if err := v.UnmarshalBinary(g.value); err != nil {
			return nil, fieldErr(ErrBadShare, "shares", "share %d value out of range", g.index)
		}
		cs = append(cs, secretsharing.Share{ID: group.P384.NewScalar().SetUint64(uint64(g.index)), Value: v})
	}
	secret, err := secretsharing.Recover(uint(n-1), cs)
	if err != nil {
		return nil, fieldErr(ErrBadShare, "shares", "%v", err)
	}
	b, err := secret.MarshalBinary()
	if err != nil || len(b) != shareValueSize || !bytes.Equal(b[:shareValueSize-escrowKeySize], make([]byte, shareValueSize-escrowKeySize)) {
		return nil, fieldErr(ErrBadShare, "shares", "the shares do not belong together (a share is wrong or from another escrow)")
	}
	return b[shareValueSize-escrowKeySize:], nil
}

// Recover rebuilds the escrow key from shares, finds the entry by its
// identifier with find (which returns nil or an error if there is none),
// and decrypts it.
func Recover(shares []string, find func(identifier UDF) (*OfflineEscrowEntry, error)) ([]byte, error) {
	key, err := RecoverEscrowKey(shares)
	if err != nil {
		return nil, err
	}
	id := EscrowKeyUDF(key)
	entry, err := find(id)
	if err != nil || entry == nil {
		return nil, fieldErr(ErrBadShare, "shares", "no escrow entry %s for the recovered key (a share is wrong?)", id)
	}
	return entry.Decrypt(key)
}

package mesh

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"io"
	"time"

	"github.com/cloudflare/circl/dh/x448"
	"github.com/cloudflare/circl/sign/ed448"
)

// Curve names a key's curve as the JSON "crv" field spells it.
type Curve string

// The curves of Mesh 3.0 profiles.
const (
	CurveEd448 Curve = "Ed448" // signatures (circl sign/ed448, pure Ed448, empty context)
	CurveX448  Curve = "X448"  // encryption and authentication (circl dh/x448)
)

// Key sizes in bytes, as they travel in "Public" and "Private".
const (
	// PublicKeySize is the size of an Ed448 public key (RFC 8032).
	PublicKeySize = ed448.PublicKeySize
	// X448PublicKeySize is the size of an X448 public key as the Mesh
	// writes it: RFC 7748's 56-byte u-coordinate and a sign byte (0x00, or
	// 0x80 when the point's v-coordinate is odd); see x448.go.
	X448PublicKeySize = x448.Size + 1
	// Ed448PrivateKeySize is the size of an Ed448 private key (its seed).
	Ed448PrivateKeySize = ed448.SeedSize
	// X448PrivateKeySize is the size of an X448 private key (the scalar,
	// unclamped as generated; RFC 7748 clamps it when it is used).
	X448PrivateKeySize = x448.Size
)

// keyInfo is the reference implementation's key-info encoding
// (docs/design.md, "UDF"): SEQUENCE { SEQUENCE { OID, NULL }, BIT STRING {
// OCTET STRING { raw key } } }, e.g. for a 57-byte Ed448 key
//
//	30 47 | 30 07 06 03 2B 65 71 05 00 | 03 3C 00 04 39 <57-byte raw key>
//
// (the design notes we started from printed the outer length as 0x49; the
// DER length is 0x47, and only 0x47 reproduces the seed's identifiers.) X448
// uses OID 1.3.101.111 (2B 65 6F).
func keyInfo(c Curve, raw []byte) []byte {
	oid := byte(0x71) // 1.3.101.113 Ed448
	if c == CurveX448 {
		oid = 0x6F // 1.3.101.111 X448
	}
	n := byte(len(raw))
	out := []byte{0x30, 9 + 2 + 3 + n, 0x30, 0x07, 0x06, 0x03, 0x2B, 0x65, oid, 0x05, 0x00, 0x03, 3 + n, 0x00, 0x04, n}
	return append(out, raw...)
}

// PublicKey is an Ed448 or X448 public key in its wire form (see
// PublicKeySize).
type PublicKey struct {
	Curve Curve
	Raw   []byte
}

// NewPublicKey checks curve and size and returns the key. An X448 key must
// be the Mesh's 57-byte form, canonical and on curve448 (a bare 56-byte
// RFC 7748 key is refused: its UDF would differ from the reference
// implementation's for the same key).
func NewPublicKey(c Curve, raw []byte) (PublicKey, error) {
	switch c {
	case CurveEd448:
		if len(raw) != PublicKeySize {
			return PublicKey{}, fieldErr(ErrMalformed, "Public", "Ed448 key is %d bytes, want %d", len(raw), PublicKeySize)
		}
	case CurveX448:
		if len(raw) != X448PublicKeySize {
			return PublicKey{}, fieldErr(ErrMalformed, "Public", "X448 key is %d bytes, want %d (the 56-byte u-coordinate and a sign byte)", len(raw), X448PublicKeySize)
		}
		if !x448OnCurve(raw) {
			return PublicKey{}, fieldErr(ErrMalformed, "Public", "not an X448 key: u not below p or not on curve448, or sign byte not 0x00/0x80")
		}
	default:
		return PublicKey{}, fieldErr(ErrUnsupported, "crv", "curve %q", c)
	}
	return PublicKey{Curve: c, Raw: bytes.Clone(raw)}, nil
}

// KeyInfo is the key-info (SubjectPublicKeyInfo) encoding the UDF is taken over.
func (k PublicKey) KeyInfo() []byte {
	return keyInfo(k.Curve, k.Raw)
}

// UDF is the key identifier: the SHA-2-512 UDF (140 bits) of KeyInfo with
// content type ContentTypeKeyInfo.
func (k PublicKey) UDF() UDF {
	return MustUDFSHA2(ContentTypeKeyInfo, k.KeyInfo())
}

// Equal reports whether k and o are the same key.
func (k PublicKey) Equal(o PublicKey) bool {
	return k.Curve == o.Curve && bytes.Equal(k.Raw, o.Raw)
}

// Verify reports whether sig is a valid pure Ed448 signature (empty
// context) of message by k. It is false for X448 keys and wrong sizes.
func (k PublicKey) Verify(message, sig []byte) bool {
	if k.Curve != CurveEd448 || len(k.Raw) != ed448.PublicKeySize || len(sig) != ed448.SignatureSize {
		return false
	}
	return ed448.Verify(ed448.PublicKey(k.Raw), message, sig, "")
}

// PrivateKey is an Ed448 or X448 private key. It belongs in the client's
// keystore (marshal it with KeyData) and is never sent to a portal.
type PrivateKey struct {
	curve Curve
	raw   []byte // Ed448 seed or X448 scalar
	ed    ed448.PrivateKey
	pub   PublicKey
}

// GenerateKey makes a new key pair on curve c from rand (crypto/rand.Reader
// in production).
func GenerateKey(rand io.Reader, c Curve) (*PrivateKey, error) {
	n := Ed448PrivateKeySize
	if c == CurveX448 {
		n = X448PrivateKeySize
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(rand, raw); err != nil {
		return nil, err
	}
	return NewPrivateKey(c, raw)
}

// NewPrivateKey rebuilds a private key from its raw bytes (the Ed448 seed,
// or the X448 scalar).
func NewPrivateKey(c Curve, raw []byte) (*PrivateKey, error) {
	k := &PrivateKey{curve: c, raw: bytes.Clone(raw)}
	switch c {
	case CurveEd448:
		if len(raw) != Ed448PrivateKeySize {
			return nil, fieldErr(ErrMalformed, "Private", "Ed448 private key is %d bytes, want %d", len(raw), Ed448PrivateKeySize)
		}
		k.ed = ed448.NewKeyFromSeed(raw)
		k.pub = PublicKey{Curve: c, Raw: bytes.Clone(k.ed.Public().(ed448.PublicKey))}
	case CurveX448:
		if len(raw) != X448PrivateKeySize {
			return nil, fieldErr(ErrMalformed, "Private", "X448 private key is %d bytes, want %d", len(raw), X448PrivateKeySize)
		}
		pub, ok := x448PublicFromPrivate(raw)
		if !ok {
			return nil, fieldErr(ErrMalformed, "Private", "X448 private key gives the point at infinity")
		}
		k.pub = PublicKey{Curve: c, Raw: pub[:]}
	default:
		return nil, fieldErr(ErrUnsupported, "crv", "curve %q", c)
	}
	return k, nil
}

// Curve is the key's curve.
func (k *PrivateKey) Curve() Curve { return k.curve }

// Public is the public half.
func (k *PrivateKey) Public() PublicKey { return k.pub }

// UDF is the key identifier of the public half.
func (k *PrivateKey) UDF() UDF { return k.pub.UDF() }

// Bytes is the raw private key (keep it secret).
func (k *PrivateKey) Bytes() []byte { return bytes.Clone(k.raw) }

// Sign makes a pure Ed448 signature (empty context) of message.
func (k *PrivateKey) Sign(message []byte) ([]byte, error) {
	if k.curve != CurveEd448 {
		return nil, fieldErr(ErrWrongCurve, "key", "%s key cannot sign", k.curve)
	}
	return ed448.Sign(k.ed, message, ""), nil
}

// SharedSecret is the RFC 7748 X448 agreement of k with peer: 56 bytes,
// computed on the first 56 bytes (the u-coordinate) of peer's key.
func (k *PrivateKey) SharedSecret(peer PublicKey) ([]byte, error) {
	if k.curve != CurveX448 || peer.Curve != CurveX448 {
		return nil, fieldErr(ErrWrongCurve, "key", "X448 agreement needs two X448 keys, have %s and %s", k.curve, peer.Curve)
	}
	if len(peer.Raw) != X448PublicKeySize {
		return nil, fieldErr(ErrMalformed, "Public", "X448 key is %d bytes, want %d", len(peer.Raw), X448PublicKeySize)
	}
	var sk, pk, shared x448.Key
	copy(sk[:], k.raw)
	copy(pk[:], peer.Raw[:x448.Size])
	if !x448.Shared(&shared, &sk, &pk) {
		return nil, fieldErr(ErrMalformed, "Public", "low-order X448 key")
	}
	return shared[:], nil
}

// KeyData is the Mesh KeyData structure (seed 002 §7.1.2):
//
//	{"UDF":"MCOZ-GIZ3-34VQ-GQ6J-FCS7-BJIU-JCOY",
//	 "PublicParameters":{"PublicKeyECDH":{"crv":"Ed448","Public":"Q1UA..."}}}
//
// A keystore entry also carries
// "PrivateParameters":{"PrivateKeyECDH":{"crv":"X448","Private":"..."}}.
type KeyData struct {
	UDF               string             `json:"UDF,omitempty"`
	PublicParameters  *PublicParameters  `json:"PublicParameters,omitempty"`
	PrivateParameters *PrivateParameters `json:"PrivateParameters,omitempty"`
	NotBefore         *time.Time         `json:"NotBefore,omitempty"`
	NotOnOrAfter      *time.Time         `json:"NotOnOrAfter,omitempty"`
}

// PublicParameters holds the public key.
type PublicParameters struct {
	PublicKeyECDH *PublicKeyECDH `json:"PublicKeyECDH,omitempty"`
}

// PublicKeyECDH is a public key on an Edwards/Montgomery curve.
type PublicKeyECDH struct {
	Crv    string `json:"crv"`
	Public Base64 `json:"Public"`
}

// PrivateParameters holds the private key (keystore only).
type PrivateParameters struct {
	PrivateKeyECDH *PrivateKeyECDH `json:"PrivateKeyECDH,omitempty"`
}

// PrivateKeyECDH is a private key on an Edwards/Montgomery curve.
type PrivateKeyECDH struct {
	Crv     string `json:"crv"`
	Private Base64 `json:"Private"`
}

// NewKeyData describes a public key, with its UDF.
func NewKeyData(k PublicKey) *KeyData {
	return &KeyData{
		UDF:              k.UDF().String(),
		PublicParameters: &PublicParameters{PublicKeyECDH: &PublicKeyECDH{Crv: string(k.Curve), Public: k.Raw}},
	}
}

// KeyData describes the key pair including the private key, for the
// client's keystore. Never send it to a portal.
func (k *PrivateKey) KeyData() *KeyData {
	kd := NewKeyData(k.pub)
	kd.PrivateParameters = &PrivateParameters{PrivateKeyECDH: &PrivateKeyECDH{Crv: string(k.curve), Private: k.Bytes()}}
	return kd
}

// PublicKey decodes the public key and checks that the stated UDF, if any,
// is the key's UDF (ErrIdentifierMismatch otherwise).
func (kd *KeyData) PublicKey() (PublicKey, error) {
	if kd == nil || kd.PublicParameters == nil || kd.PublicParameters.PublicKeyECDH == nil {
		return PublicKey{}, fieldErr(ErrMissingKey, "PublicParameters.PublicKeyECDH", "absent")
	}
	p := kd.PublicParameters.PublicKeyECDH
	k, err := NewPublicKey(Curve(p.Crv), p.Public)
	if err != nil {
		return PublicKey{}, inField("PublicParameters.PublicKeyECDH", err)
	}
	if kd.UDF != "" {
		stated, err := ParseUDF(kd.UDF)
		if err != nil {
			return PublicKey{}, inField("UDF", err)
		}
		if got := k.UDF(); !stated.Equal(got) {
			return PublicKey{}, fieldErr(ErrIdentifierMismatch, "UDF", "states %s, key is %s", kd.UDF, got)
		}
	}
	return k, nil
}

// PrivateKey decodes the private key and checks it matches the public key
// and UDF, if stated.
func (kd *KeyData) PrivateKey() (*PrivateKey, error) {
	if kd == nil || kd.PrivateParameters == nil || kd.PrivateParameters.PrivateKeyECDH == nil {
		return nil, fieldErr(ErrMissingKey, "PrivateParameters.PrivateKeyECDH", "absent")
	}
	p := kd.PrivateParameters.PrivateKeyECDH
	k, err := NewPrivateKey(Curve(p.Crv), p.Private)
	if err != nil {
		return nil, inField("PrivateParameters.PrivateKeyECDH", err)
	}
	if kd.PublicParameters != nil {
		pub, err := kd.PublicKey()
		if err != nil {
			return nil, err
		}
		if pub.Curve != k.curve || subtle.ConstantTimeCompare(pub.Raw, k.pub.Raw) != 1 {
			return nil, fieldErr(ErrIdentifierMismatch, "PrivateParameters", "private key does not match the public key")
		}
	} else if kd.UDF != "" && !UDFEqual(kd.UDF, k.UDF().String()) {
		return nil, fieldErr(ErrIdentifierMismatch, "UDF", "states %s, key is %s", kd.UDF, k.UDF())
	}
	return k, nil
}

// MarshalJSON implements json.Marshaler (the KeyData form).
func (k *PrivateKey) MarshalJSON() ([]byte, error) { return json.Marshal(k.KeyData()) }

// UnmarshalJSON implements json.Unmarshaler (the KeyData form).
func (k *PrivateKey) UnmarshalJSON(b []byte) error {
	var kd KeyData
	if err := json.Unmarshal(b, &kd); err != nil {
		return fieldErr(ErrMalformed, "KeyData", "%v", err)
	}
	v, err := kd.PrivateKey()
	if err != nil {
		return err
	}
	*k = *v
	return nil
}

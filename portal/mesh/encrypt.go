package mesh

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
)

// DARE encryption to X448 recipients, as the Mesh reference implementation
// does it (seed 002's EnvelopedActivationDevice and
// EnvelopedActivationAccount are made this way):
//
//	[{"enc":"A256CBC","dig":"SHA2","kid":"EBQD-…","Salt":"<16 bytes>",
//	  "recipients":[{"kid":"<recipient X448 key UDF>",
//	    "epk":{"PublicKeyECDH":{"crv":"X448","Public":"<ephemeral key, 57 bytes>"}},
//	    "wmk":"<wrapped master key, 40 bytes>"}]},
//	 "<base64url ciphertext>",
//	 {"signatures":[{"alg":"SHA2","kid":"…","signature":"…","witness":"<32 bytes>"}],
//	  "PayloadDigest":"<SHA-512 of the ciphertext>"}]
//
//  1. A random 32-byte master key M and a random 16-byte Salt.
//  2. Per recipient key R: a fresh ephemeral X448 key E (epk); the shared
//     secret Z = X448(E, R) (56 bytes); the key-encryption key
//     KEK = HKDF-SHA-512(IKM = Z, salt = none, info = empty, 32 bytes);
//     wmk = RFC 3394 AES key wrap of M under KEK.
//  3. kid (header) = the UDF of M: Base32 of 0x20 || 0x60 || the first bytes
//     of SHA-512("application/udf-encryption:" || M), 140 bits ("E…").
//  4. PRK = HKDF-Extract-SHA-256(salt = Salt, IKM = M); the content key is
//     HKDF-Expand(PRK, "encrypt", 32) and the IV HKDF-Expand(PRK, "iv", 16);
//     the payload is AES-256-CBC with PKCS#7 padding.
//  5. PayloadDigest = SHA-512(ciphertext); each signature is Ed448 over it
//     (as for a plain envelope) and its witness is HKDF-Expand(PRK,
//     signature bytes, 32).
//
// The reference format carries no MAC (it derives one and never writes
// it), so authenticity comes from the signature: Encrypt requires a
// signer, and Decrypt accepts a plaintext only if the digest is right, a
// signature by a key the caller trusts verifies, that signature's witness
// proves the signer knew M and Salt, the header kid is M's, and the
// padding is right. The header itself is not signed (in the reference
// format nothing covers it): a change to a part of it that a recipient does
// not use — another recipient's entry, or the sign byte of the ephemeral
// key, which X448 agreement ignores — leaves that recipient's plaintext as
// it was; any change to the parts it uses is refused.

// Algorithm names of encrypted envelopes, as the reference writes them.
const (
	// EncryptionA256CBC is the content encryption: AES-256-CBC, keys from
	// HKDF-SHA-256 of the master key and Salt.
	EncryptionA256CBC = "A256CBC"
)

// Limits of encrypted envelopes.
const (
	// MaxRecipients bounds the recipients of one envelope (a portal
	// parses every recipient entry of what it stores: at 32, about 1.5 ms
	// of CPU for the largest envelope).
	MaxRecipients = 32
	// masterKeySize is the size of the master key M.
	masterKeySize = 32
	// saltSize is the size of the Salt we write; we accept 16..64.
	saltSize = 16
	// wrappedKeySize is the size of wmk: RFC 3394 wrap of M.
	wrappedKeySize = masterKeySize + 8
	// witnessSize is the size of a signature's witness.
	witnessSize = 32
)

// ContentTypeEncryptionKey is the content type of a master key's UDF.
const ContentTypeEncryptionKey = "application/udf-encryption"

// UDFTypeEncryption is the type byte of a symmetric key identifier ("E…").
const UDFTypeEncryption UDFType = 0x20

// HKDF info strings of the content keys (reference: CryptoStack).
const (
	infoEncrypt = "encrypt"
	infoIV      = "iv"
)

// EncryptionHeader is the part of an envelope header that says how the
// payload is encrypted and to whom.
type EncryptionHeader struct {
	// Enc is the content encryption algorithm (EncryptionA256CBC).
	Enc string
	// Kid is the UDF of the master key, as written.
	Kid string
	// Salt is the salt of the content key derivation.
	Salt []byte
	// Recipients hold the master key wrapped for each recipient.
	Recipients []Recipient
}

// Recipient is one entry of the header's "recipients".
type Recipient struct {
	// Kid is the UDF of the recipient's X448 key, as written.
	Kid string
	// Epk is the ephemeral X448 public key.
	Epk PublicKey
	// WrappedKey is "wmk": the master key wrapped under the agreed key.
	WrappedKey []byte
}

// MasterKeyUDF is the identifier the header's kid carries for master key m.
func MasterKeyUDF(m []byte) UDF {
	h := sha512.New()
	h.Write([]byte(ContentTypeEncryptionKey))
	h.Write([]byte{':'})
	h.Write(m)
	bin := append([]byte{byte(UDFTypeEncryption), byte(UDFTypeSHA2)}, h.Sum(nil)...)
	u, _ := UDFFromBinary(bin, DefaultUDFBits)
	return u
}

// contentKeys derives the content key, IV and the PRK of the witnesses.
func contentKeys(master, salt []byte) (key, iv, prk []byte, err error) {
	if prk, err = hkdf.Extract(sha256.New, master, salt); err != nil {
		return nil, nil, nil, err
	}
	if key, err = hkdf.Expand(sha256.New, prk, infoEncrypt, 32); err != nil {
		return nil, nil, nil, err
	}
	if iv, err = hkdf.Expand(sha256.New, prk, infoIV, aes.BlockSize); err != nil {
		return nil, nil, nil, err
	}
	return key, iv, prk, nil
}

// witness is the witness of signature sig.
func witness(prk, sig []byte) []byte {
	w, _ := hkdf.Expand(sha256.New, prk, string(sig), witnessSize)
	return w
}

// keyEncryptionKey is KEK for shared secret z.
func keyEncryptionKey(z []byte) ([]byte, error) {
	return hkdf.Key(sha512.New, z, nil, "", 32)
}

// Encrypt makes an envelope of payload encrypted to recipients (X448 keys)
// and signed by each of signers (Ed448; at least one: without a signature
// nothing authenticates the ciphertext). rand is crypto/rand.Reader in
// production.
func Encrypt(rand io.Reader, payload []byte, recipients []PublicKey, signers ...*PrivateKey) (*Envelope, error) {
	switch {
	case len(recipients) == 0:
		return nil, fieldErr(ErrMissingKey, "recipients", "no recipient")
	case len(recipients) > MaxRecipients:
		return nil, fieldErr(ErrTooLarge, "recipients", "%d recipients, limit %d", len(recipients), MaxRecipients)
	case len(signers) == 0:
		return nil, fieldErr(ErrMissingKey, "signers", "an encrypted envelope needs a signer")
	}
	secret := make([]byte, masterKeySize+saltSize)
	if _, err := io.ReadFull(rand, secret); err != nil {
		return nil, fmt.Errorf("mesh: master key: %w", err)
	}
	master, salt := secret[:masterKeySize], secret[masterKeySize:]
	h := EncryptionHeader{Enc: EncryptionA256CBC, Kid: MasterKeyUDF(master).String(), Salt: salt}
	for i, r := range recipients {
		rec, err := wrapFor(rand, master, r)
		if err != nil {
			return nil, inField(fieldIndex("recipients", i), err)
		}
		h.Recipients = append(h.Recipients, rec)
	}
	key, iv, prk, err := contentKeys(master, salt)
	if err != nil {
		return nil, fmt.Errorf("mesh: content keys: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("mesh: content cipher: %w", err)
	}
	pad := aes.BlockSize - len(payload)%aes.BlockSize
	ct := append(bytes.Clone(payload), bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, ct)
	d := sha512.Sum512(ct)
	e := &Envelope{
		Header:  Header{Dig: DigestSHA2, Raw: h.marshal(), Encryption: &h},
		Payload: ct,
		Trailer: Trailer{PayloadDigest: d[:]},
	}
	for _, k := range signers {
		if err := e.AddSignature(k); err != nil {
			return nil, err
		}
		s := &e.Trailer.Signatures[len(e.Trailer.Signatures)-1]
		w, _ := json.Marshal(b64.EncodeToString(witness(prk, s.Value)))
		s.Extra = map[string]json.RawMessage{"witness": w}
	}
	return e, nil
}

// wrapFor wraps master for recipient key r with a fresh ephemeral key.
func wrapFor(rand io.Reader, master []byte, r PublicKey) (Recipient, error) {
	if r.Curve != CurveX448 {
		return Recipient{}, fieldErr(ErrWrongCurve, "key", "%s key cannot receive, want X448", r.Curve)
	}
	eph, err := GenerateKey(rand, CurveX448)
	if err != nil {
		return Recipient{}, fmt.Errorf("mesh: ephemeral key: %w", err)
	}
	z, err := eph.SharedSecret(r)
	if err != nil {
		return Recipient{}, err
	}
	kek, err := keyEncryptionKey(z)
	if err != nil {
		return Recipient{}, fmt.Errorf("mesh: key-encryption key: %w", err)
	}
	wmk, err := aesKeyWrap(kek, master)
	if err != nil {
		return Recipient{}, err
	}
	return Recipient{Kid: r.UDF().String(), Epk: eph.Public(), WrappedKey: wmk}, nil
}

// marshal writes the header in the reference's field order.
func (h *EncryptionHeader) marshal() json.RawMessage {
	var b bytes.Buffer
	str := func(s string) { v, _ := json.Marshal(s); b.Write(v) }
	b.WriteString(`{"enc":`)
	str(h.Enc)
	b.WriteString(`,"dig":"SHA2","kid":`)
	str(h.Kid)
	b.WriteString(`,"Salt":`)
	str(b64.EncodeToString(h.Salt))
	b.WriteString(`,"recipients":[`)
	for i, r := range h.Recipients {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"kid":`)
		str(r.Kid)
		b.WriteString(`,"epk":{"PublicKeyECDH":{"crv":`)
		str(string(r.Epk.Curve))
		b.WriteString(`,"Public":`)
		str(b64.EncodeToString(r.Epk.Raw))
		b.WriteString(`}},"wmk":`)
		str(b64.EncodeToString(r.WrappedKey))
		b.WriteByte('}')
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// parseEncryption reads the encryption fields of a header object that has
// "enc".
func parseEncryption(o *object) (*EncryptionHeader, error) {
	h := &EncryptionHeader{}
	enc, _, err := o.stringField("enc", "header")
	if err != nil {
		return nil, err
	}
	if enc != EncryptionA256CBC {
		return nil, fieldErr(ErrUnsupported, "header.enc", "algorithm %q, want %s", enc, EncryptionA256CBC)
	}
	h.Enc = enc
	kid, ok, err := o.stringField("kid", "header")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fieldErr(ErrMalformed, "header.kid", "absent")
	}
	if u, err := ParseUDF(kid); err != nil {
		return nil, inField("header.kid", err)
	} else if u.Type() != UDFTypeEncryption {
		return nil, fieldErr(ErrMalformed, "header.kid", "type 0x%02x, want a master key UDF (E…)", byte(u.Type()))
	}
	h.Kid = kid
	salt, ok, err := o.stringField("Salt", "header")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fieldErr(ErrMalformed, "header.Salt", "absent")
	}
	if h.Salt, err = decodeBase64(salt); err != nil {
		return nil, inField("header.Salt", err)
	}
	if len(h.Salt) < saltSize || len(h.Salt) > 64 {
		return nil, fieldErr(ErrMalformed, "header.Salt", "%d bytes, want 16 to 64", len(h.Salt))
	}
	raw, ok := o.values["recipients"]
	if !ok {
		return nil, fieldErr(ErrMalformed, "header.recipients", "absent")
	}
	var recs []json.RawMessage
	if err := json.Unmarshal(raw, &recs); err != nil {
		return nil, fieldErr(ErrMalformed, "header.recipients", "want an array")
	}
	if len(recs) == 0 || len(recs) > MaxRecipients {
		return nil, fieldErr(ErrMalformed, "header.recipients", "%d recipients, want 1 to %d", len(recs), MaxRecipients)
	}
	for i, r := range recs {
		rec, err := parseRecipient(r, fieldIndex("header.recipients", i))
		if err != nil {
			return nil, err
		}
		h.Recipients = append(h.Recipients, rec)
	}
	return h, nil
}

func parseRecipient(raw json.RawMessage, field string) (Recipient, error) {
	o, err := parseObject(raw, field)
	if err != nil {
		return Recipient{}, err
	}
	var r Recipient
	kid, ok, err := o.stringField("kid", field)
	if err != nil {
		return r, err
	}
	if !ok {
		return r, fieldErr(ErrMalformed, field+".kid", "absent")
	}
	if _, err := ParseUDF(kid); err != nil {
		return r, inField(field+".kid", err)
	}
	r.Kid = kid
	epk, ok := o.values["epk"]
	if !ok {
		return r, fieldErr(ErrMalformed, field+".epk", "absent")
	}
	if r.Epk, err = parseEpk(epk, field+".epk"); err != nil {
		return r, err
	}
	wmk, ok, err := o.stringField("wmk", field)
	if err != nil {
		return r, err
	}
	if !ok {
		return r, fieldErr(ErrMalformed, field+".wmk", "absent")
	}
	if r.WrappedKey, err = decodeBase64(wmk); err != nil {
		return r, inField(field+".wmk", err)
	}
	if len(r.WrappedKey) != wrappedKeySize {
		return r, fieldErr(ErrMalformed, field+".wmk", "%d bytes, want %d", len(r.WrappedKey), wrappedKeySize)
	}
	return r, nil
}

// parseEpk reads {"PublicKeyECDH":{"crv":"X448","Public":"…"}} with
// exact key names (encoding/json would match them case-insensitively, and
// the header is not signed).
func parseEpk(raw json.RawMessage, field string) (PublicKey, error) {
	o, err := parseObject(raw, field)
	if err != nil {
		return PublicKey{}, err
	}
	inner, ok := o.values["PublicKeyECDH"]
	if !ok || len(o.keys) != 1 {
		return PublicKey{}, fieldErr(ErrMalformed, field, "want exactly {\"PublicKeyECDH\":{...}}")
	}
	field += ".PublicKeyECDH"
	if o, err = parseObject(inner, field); err != nil {
		return PublicKey{}, err
	}
	crv, _, err := o.stringField("crv", field)
	if err != nil {
		return PublicKey{}, err
	}
	pub, ok, err := o.stringField("Public", field)
	if err != nil {
		return PublicKey{}, err
	}
	if !ok || len(o.keys) != 2 {
		return PublicKey{}, fieldErr(ErrMalformed, field, "want exactly crv and Public")
	}
	if Curve(crv) != CurveX448 {
		return PublicKey{}, fieldErr(ErrWrongCurve, field+".crv", "%q, want X448", crv)
	}
	b, err := decodeBase64(pub)
	if err != nil {
		return PublicKey{}, inField(field+".Public", err)
	}
	// Size and sign byte only: whether the point is on the curve is
	// checked by the recipient that uses it (unwrap), so that parsing an
	// envelope of many recipients costs no field arithmetic.
	if len(b) != X448PublicKeySize || b[x448SignByte]&0x7F != 0 {
		return PublicKey{}, fieldErr(ErrMalformed, field+".Public", "X448 key of %d bytes, or a sign byte other than 0x00/0x80", len(b))
	}
	return PublicKey{Curve: CurveX448, Raw: b}, nil
}

// Encrypted reports whether the envelope's payload is encrypted.
func (e *Envelope) Encrypted() bool { return e.Header.Encryption != nil }

// RecipientKeys lists the kids of the envelope's recipients (none if it is
// not encrypted).
func (e *Envelope) RecipientKeys() []string {
	if e.Header.Encryption == nil {
		return nil
	}
	out := make([]string, 0, len(e.Header.Encryption.Recipients))
	for _, r := range e.Header.Encryption.Recipients {
		out = append(out, r.Kid)
	}
	return out
}

// Decrypt decrypts an encrypted envelope with whichever of keys (X448) is
// a recipient, and authenticates it: the digest, a signature by a key that
// resolve knows (signatures by unknown keys are skipped; every known one
// must verify and carry the right witness), the header kid and the
// padding. It returns the plaintext and the UDF of the first verified
// signer. Every failure wraps ErrDecrypt, ErrBadDigest, ErrBadSignature,
// ErrUnknownKey or ErrMalformed, and returns no plaintext.
func (e *Envelope) Decrypt(keys []*PrivateKey, resolve KeyResolver) ([]byte, UDF, error) {
	h := e.Header.Encryption
	if h == nil {
		return nil, UDF{}, fieldErr(ErrMalformed, "header.enc", "the envelope is not encrypted")
	}
	if err := e.CheckDigest(); err != nil {
		return nil, UDF{}, err
	}
	master, err := h.unwrap(keys)
	if err != nil {
		return nil, UDF{}, err
	}
	if MasterKeyUDF(master).String() != h.Kid {
		return nil, UDF{}, fieldErr(ErrDecrypt, "header.kid", "is not the UDF of the master key")
	}
	key, iv, prk, err := contentKeys(master, h.Salt)
	if err != nil {
		return nil, UDF{}, fmt.Errorf("mesh: content keys: %w", err)
	}
	signer, err := e.VerifyWith(resolve)
	if err != nil {
		return nil, UDF{}, err
	}
	for i, s := range e.Trailer.Signatures {
		kid, _ := ParseUDF(s.Kid)
		if _, err := resolve(kid); err != nil {
			continue
		}
		var w string
		if raw, ok := s.Extra["witness"]; !ok || json.Unmarshal(raw, &w) != nil {
			return nil, UDF{}, fieldErr(ErrBadSignature, fieldIndex("trailer.signatures", i)+".witness", "absent: the signature is not bound to the master key")
		}
		got, err := decodeBase64(w)
		if err != nil || subtle.ConstantTimeCompare(got, witness(prk, s.Value)) != 1 {
			return nil, UDF{}, fieldErr(ErrBadSignature, fieldIndex("trailer.signatures", i)+".witness", "does not match: the signer did not encrypt this envelope")
		}
	}
	ct := e.Payload
	if len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, UDF{}, fieldErr(ErrDecrypt, "payload", "%d bytes, not whole AES blocks", len(ct))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, UDF{}, fmt.Errorf("mesh: content cipher: %w", err)
	}
	pt := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(pt, ct)
	pad := int(pt[len(pt)-1])
	if pad == 0 || pad > aes.BlockSize || !bytes.Equal(pt[len(pt)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return nil, UDF{}, fieldErr(ErrDecrypt, "payload", "bad padding")
	}
	return pt[:len(pt)-pad], signer, nil
}

// unwrap finds a recipient entry for one of keys and unwraps the master
// key.
func (h *EncryptionHeader) unwrap(keys []*PrivateKey) ([]byte, error) {
	for _, k := range keys {
		if k == nil || k.Curve() != CurveX448 {
			continue
		}
		kid := k.UDF().String()
		for i, r := range h.Recipients {
			if r.Kid != kid {
				continue
			}
			field := fieldIndex("header.recipients", i)
			if !x448OnCurve(r.Epk.Raw) {
				return nil, fieldErr(ErrMalformed, field+".epk", "not an X448 key: u not below p or not on curve448")
			}
			z, err := k.SharedSecret(r.Epk)
			if err != nil {
				return nil, inField(field+".epk", err)
			}
			kek, err := keyEncryptionKey(z)
			if err != nil {
				return nil, fmt.Errorf("mesh: key-encryption key: %w", err)
			}
			m, err := aesKeyUnwrap(kek, r.WrappedKey)
			if err != nil {
				return nil, inField(field, err)
			}
			if len(m) != masterKeySize {
				return nil, fieldErr(ErrDecrypt, field+".wmk", "master key of %d bytes, want %d", len(m), masterKeySize)
			}
			return m, nil
		}
	}
	return nil, fieldErr(ErrDecrypt, "header.recipients", "none of the %d recipients is a key we hold", len(h.Recipients))
}

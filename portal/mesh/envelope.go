package mesh

import (
	"bytes"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"slices"
)

// Size limits. Inputs beyond them are rejected with ErrTooLarge before any
// other work is done.
const (
	// MaxEnvelopeSize bounds a signed envelope or tagged entry in bytes.
	MaxEnvelopeSize = 64 << 10
	// MaxSignatures bounds the signatures of one envelope.
	MaxSignatures = 8
)

// Digest and signature algorithm names. We write SHA2; we also accept the
// longer names other implementations use.
const (
	DigestSHA2    = "SHA2" // SHA-512; "S512" is accepted as a synonym
	SignatureSHA2 = "SHA2" // pure Ed448 over the SHA-512 digest; "ED448" accepted
)

// Envelope is a signed DARE envelope in its JSON form, as in seed 002:
//
//	[{"dig":"SHA2"},
//	 "<base64url payload>",
//	 {"signatures":[{"alg":"SHA2","kid":"<signer key UDF>","signature":"<base64url>"}],
//	  "PayloadDigest":"<base64url SHA-512(payload)>"}]
//
// Each signature is pure Ed448 (empty context) over the 64 bytes of
// PayloadDigest; PayloadDigest is SHA-512 of the payload bytes exactly as
// they were received. The header is not covered by the signature; unknown
// header and trailer fields are kept and written back unchanged.
type Envelope struct {
	// Header is the first element. Its Raw bytes are what MarshalJSON writes.
	Header Header
	// Payload is the decoded second element (opaque bytes; for Mesh objects
	// the type-tagged JSON, e.g. {"ProfileMesh":{...}}).
	Payload []byte
	// Trailer is the third element.
	Trailer Trailer
}

// Header is the envelope header: "dig", and for an encrypted envelope the
// fields of EncryptionHeader (encrypt.go).
type Header struct {
	// Dig is the digest algorithm ("SHA2").
	Dig string
	// Raw is the header object exactly as received (or as built by Sign
	// or Encrypt).
	Raw json.RawMessage
	// Encryption is set if the header has "enc": the payload is encrypted.
	Encryption *EncryptionHeader
}

// Trailer is the envelope trailer.
type Trailer struct {
	// Signatures are the signatures, in order.
	Signatures []Signature
	// PayloadDigest is SHA-512 of the payload.
	PayloadDigest []byte
	// Extra holds trailer fields other than signatures and PayloadDigest,
	// kept verbatim.
	Extra map[string]json.RawMessage
}

// Signature is one entry of the trailer's "signatures".
type Signature struct {
	// Alg is the signature algorithm name ("SHA2").
	Alg string
	// Kid is the UDF of the signing key, as written.
	Kid string
	// Value is the 114-byte Ed448 signature ("signature").
	Value []byte
	// Extra holds other fields (e.g. "witness"), kept verbatim.
	Extra map[string]json.RawMessage
}

// KeyResolver returns the public key a signature's kid names, or an error
// (wrapping ErrUnknownKey if it does not know the key).
type KeyResolver func(kid UDF) (PublicKey, error)

// Sign makes an envelope of payload signed by each of keys (Ed448).
func Sign(payload []byte, keys ...*PrivateKey) (*Envelope, error) {
	d := sha512.Sum512(payload)
	e := &Envelope{
		Header:  Header{Dig: DigestSHA2, Raw: json.RawMessage(`{"dig":"SHA2"}`)},
		Payload: bytes.Clone(payload),
		Trailer: Trailer{PayloadDigest: d[:]},
	}
	for _, k := range keys {
		if err := e.AddSignature(k); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// AddSignature signs the envelope's PayloadDigest with key and appends the
// signature to the trailer.
func (e *Envelope) AddSignature(key *PrivateKey) error {
	if key == nil {
		return fieldErr(ErrMissingKey, "key", "no signing key")
	}
	if len(e.Trailer.Signatures) >= MaxSignatures {
		return fieldErr(ErrTooLarge, "trailer.signatures", "already %d signatures", MaxSignatures)
	}
	sig, err := key.Sign(e.Trailer.PayloadDigest)
	if err != nil {
		return err
	}
	e.Trailer.Signatures = append(e.Trailer.Signatures, Signature{Alg: SignatureSHA2, Kid: key.UDF().String(), Value: sig})
	return nil
}

// ParseEnvelope parses the JSON form of an envelope. It checks the shape,
// the field types, the algorithm names and the sizes; it does not check the
// digest or the signatures (see Verify).
//
// The JSON grammar is checked once, over the whole envelope; the parts are
// then split without decoding them again (envelope_scan.go).
func ParseEnvelope(data []byte) (*Envelope, error) {
	if len(data) > MaxEnvelopeSize {
		return nil, fieldErr(ErrTooLarge, "envelope", "%d bytes, limit %d", len(data), MaxEnvelopeSize)
	}
	parts, err := envelopeParts(data)
	if err != nil {
		return nil, err
	}
	e := &Envelope{}
	if err := e.Header.parse(parts[0]); err != nil {
		return nil, err
	}
	var p string
	if err := unmarshalString(parts[1], &p); err != nil {
		return nil, fieldErr(ErrMalformed, "payload", "want a base64url string")
	}
	payload, err := decodeBase64(p)
	if err != nil {
		return nil, inField("payload", err)
	}
	e.Payload = payload
	if err := e.Trailer.parse(parts[2]); err != nil {
		return nil, err
	}
	return e, nil
}

// envelopeParts checks that data is one JSON array of three elements and
// nothing else, and returns the elements (sharing data's bytes). A valid
// array of three is split in one pass; for anything else the decoder says
// what is wrong.
func envelopeParts(data []byte) ([]json.RawMessage, error) {
	if json.Valid(data) {
		if parts, ok := validElements(trimJSONSpace(data)); ok && len(parts) == 3 {
			return parts, nil
		}
	}
	var parts []json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&parts); err != nil {
		return nil, fieldErr(ErrMalformed, "envelope", "want a JSON array [header, payload, trailer]: %v", err)
	}
	if err := expectEOF(dec); err != nil {
		return nil, inField("envelope", err)
	}
	if len(parts) != 3 {
		return nil, fieldErr(ErrMalformed, "envelope", "%d elements, want 3 [header, payload, trailer]", len(parts))
	}
	return parts, nil
}

// parse reads the header from raw (valid JSON): "dig" must name SHA-512,
// and "enc", if present, makes it an encryption header. Raw keeps a copy
// of raw.
func (h *Header) parse(raw json.RawMessage) error {
	o, err := parseValidObject(raw, "header")
	if err != nil {
		return err
	}
	dig, ok, err := o.stringField("dig", "header")
	if err != nil {
		return err
	}
	if !ok {
		return fieldErr(ErrMalformed, "header.dig", "absent")
	}
	if dig != DigestSHA2 && dig != "S512" {
		return fieldErr(ErrUnsupported, "header.dig", "digest %q, want SHA2 or S512", dig)
	}
	h.Dig, h.Raw, h.Encryption = dig, bytes.Clone(raw), nil
	if _, ok := o.values["enc"]; ok {
		if h.Encryption, err = parseEncryption(o); err != nil {
			return err
		}
	}
	return nil
}

// parse reads the trailer from raw (valid JSON): a PayloadDigest of 64
// bytes, at most MaxSignatures signatures, and other fields kept verbatim.
func (t *Trailer) parse(raw json.RawMessage) error {
	o, err := parseValidObject(raw, "trailer")
	if err != nil {
		return err
	}
	for _, k := range o.keys {
		v := o.values[k]
		switch k {
		case "PayloadDigest":
			var s string
			if err := unmarshalString(v, &s); err != nil {
				return fieldErr(ErrMalformed, "trailer.PayloadDigest", "want a base64url string")
			}
			d, err := decodeBase64(s)
			if err != nil {
				return inField("trailer.PayloadDigest", err)
			}
			if len(d) != sha512.Size {
				return fieldErr(ErrMalformed, "trailer.PayloadDigest", "%d bytes, want %d", len(d), sha512.Size)
			}
			t.PayloadDigest = d
		case "signatures":
			sigs, err := signatureElements(v)
			if err != nil {
				return err
			}
			if len(sigs) > MaxSignatures {
				return fieldErr(ErrTooLarge, "trailer.signatures", "%d signatures, limit %d", len(sigs), MaxSignatures)
			}
			for i, s := range sigs {
				sig, err := parseSignature(s, fmt.Sprintf("trailer.signatures[%d]", i))
				if err != nil {
					return err
				}
				t.Signatures = append(t.Signatures, sig)
			}
		default:
			if t.Extra == nil {
				t.Extra = map[string]json.RawMessage{}
			}
			t.Extra[k] = bytes.Clone(v)
		}
	}
	if t.PayloadDigest == nil {
		return fieldErr(ErrMalformed, "trailer.PayloadDigest", "absent")
	}
	return nil
}

// signatureElements returns the elements of the trailer's "signatures"
// (valid JSON), which must be an array (or null, read as none).
func signatureElements(v json.RawMessage) ([]json.RawMessage, error) {
	if sigs, ok := validElements(v); ok {
		return sigs, nil
	}
	var sigs []json.RawMessage
	if err := json.Unmarshal(v, &sigs); err != nil {
		return nil, fieldErr(ErrMalformed, "trailer.signatures", "want an array")
	}
	return sigs, nil
}

// parseSignature reads one signature (valid JSON) of the trailer, named
// field in errors: a known algorithm, a kid that is a UDF and a value of
// 114 bytes, all three present; other fields are kept verbatim.
func parseSignature(raw json.RawMessage, field string) (Signature, error) {
	o, err := parseValidObject(raw, field)
	if err != nil {
		return Signature{}, err
	}
	var s Signature
	for _, k := range o.keys {
		v := o.values[k]
		switch k {
		case "alg", "kid", "signature":
			var str string
			if err := unmarshalString(v, &str); err != nil {
				return Signature{}, fieldErr(ErrMalformed, field+"."+k, "want a string")
			}
			switch k {
			case "alg":
				if str != SignatureSHA2 && str != "ED448" {
					return Signature{}, fieldErr(ErrUnsupported, field+".alg", "algorithm %q, want SHA2 or ED448", str)
				}
				s.Alg = str
			case "kid":
				if _, err := ParseUDF(str); err != nil {
					return Signature{}, inField(field+".kid", err)
				}
				s.Kid = str
			case "signature":
				b, err := decodeBase64(str)
				if err != nil {
					return Signature{}, inField(field+".signature", err)
				}
				if len(b) != 114 {
					return Signature{}, fieldErr(ErrMalformed, field+".signature", "%d bytes, want 114 (Ed448)", len(b))
				}
				s.Value = b
			}
		default:
			if s.Extra == nil {
				s.Extra = map[string]json.RawMessage{}
			}
			s.Extra[k] = bytes.Clone(v)
		}
	}
	for _, f := range []struct {
		k  string
		ok bool
	}{{"alg", s.Alg != ""}, {"kid", s.Kid != ""}, {"signature", s.Value != nil}} {
		if !f.ok {
			return Signature{}, fieldErr(ErrMalformed, field+"."+f.k, "absent")
		}
	}
	return s, nil
}

// CheckDigest checks that PayloadDigest is SHA-512 of the payload.
func (e *Envelope) CheckDigest() error {
	d := sha512.Sum512(e.Payload)
	if subtle.ConstantTimeCompare(d[:], e.Trailer.PayloadDigest) != 1 {
		return fieldErr(ErrBadDigest, "trailer.PayloadDigest", "is not SHA-512 of the payload")
	}
	return nil
}

// Signers lists the kids of the signatures, in order.
func (e *Envelope) Signers() []string {
	out := make([]string, 0, len(e.Trailer.Signatures))
	for _, s := range e.Trailer.Signatures {
		out = append(out, s.Kid)
	}
	return out
}

// Verify checks the digest and that a signature whose kid is key's UDF
// (canonical form) verifies under key. Signatures by other keys are ignored.
func (e *Envelope) Verify(key PublicKey) error {
	if err := e.CheckDigest(); err != nil {
		return err
	}
	kid := key.UDF().String()
	found := false
	for i, s := range e.Trailer.Signatures {
		if s.Kid != kid {
			continue
		}
		found = true
		if !key.Verify(e.Trailer.PayloadDigest, s.Value) {
			return fieldErr(ErrBadSignature, fmt.Sprintf("trailer.signatures[%d]", i), "does not verify under %s", kid)
		}
	}
	if !found {
		return fieldErr(ErrBadSignature, "trailer.signatures", "no signature by %s", kid)
	}
	return nil
}

// VerifyWith checks the digest and the signatures, resolving each kid with
// resolve. Every signature whose key resolves must verify, and at least one
// must; signatures whose key does not resolve (ErrUnknownKey) are skipped.
// It returns the UDF of the first verified signer.
func (e *Envelope) VerifyWith(resolve KeyResolver) (UDF, error) {
	if err := e.CheckDigest(); err != nil {
		return UDF{}, err
	}
	var signer UDF
	for i, s := range e.Trailer.Signatures {
		field := fmt.Sprintf("trailer.signatures[%d]", i)
		kid, err := ParseUDF(s.Kid)
		if err != nil {
			return UDF{}, inField(field+".kid", err)
		}
		key, err := resolve(kid)
		if err != nil {
			continue
		}
		if key.UDF().String() != s.Kid {
			return UDF{}, fieldErr(ErrIdentifierMismatch, field+".kid", "%s is not the canonical UDF %s of the resolved key", s.Kid, key.UDF())
		}
		if !key.Verify(e.Trailer.PayloadDigest, s.Value) {
			return UDF{}, fieldErr(ErrBadSignature, field, "does not verify under %s", s.Kid)
		}
		if signer.IsZero() {
			signer = kid
		}
	}
	if signer.IsZero() {
		return UDF{}, fieldErr(ErrUnknownKey, "trailer.signatures", "no signature by a known key (signers %v)", e.Signers())
	}
	return signer, nil
}

// MarshalJSON writes the envelope: the header as received, the payload in
// base64url, and the trailer (known fields first, then the kept ones in
// key order).
func (e *Envelope) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('[')
	h := e.Header.Raw
	if len(h) == 0 {
		h = json.RawMessage(`{"dig":"SHA2"}`)
	}
	b.Write(h)
	b.WriteByte(',')
	p, _ := json.Marshal(b64.EncodeToString(e.Payload))
	b.Write(p)
	b.WriteString(`,{`)
	if len(e.Trailer.Signatures) > 0 {
		b.WriteString(`"signatures":[`)
		for i, s := range e.Trailer.Signatures {
			if i > 0 {
				b.WriteByte(',')
			}
			writeObject(&b, []kv{{"alg", s.Alg}, {"kid", s.Kid}, {"signature", b64.EncodeToString(s.Value)}}, s.Extra)
		}
		b.WriteString(`],`)
	}
	d, _ := json.Marshal(b64.EncodeToString(e.Trailer.PayloadDigest))
	b.WriteString(`"PayloadDigest":`)
	b.Write(d)
	for _, k := range sortedKeys(e.Trailer.Extra) {
		kj, _ := json.Marshal(k)
		b.WriteByte(',')
		b.Write(kj)
		b.WriteByte(':')
		b.Write(e.Trailer.Extra[k])
	}
	b.WriteString(`}]`)
	return b.Bytes(), nil
}

// UnmarshalJSON implements json.Unmarshaler (ParseEnvelope).
func (e *Envelope) UnmarshalJSON(data []byte) error {
	v, err := ParseEnvelope(data)
	if err != nil {
		return err
	}
	*e = *v
	return nil
}

// kv is a member of a JSON object of strings, in the order written.
type kv struct{ k, v string }

// writeObject writes a JSON object: fields in order, then extra in key
// order with its values verbatim.
func writeObject(b *bytes.Buffer, fields []kv, extra map[string]json.RawMessage) {
	b.WriteByte('{')
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.k)
		v, _ := json.Marshal(f.v)
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	for _, k := range sortedKeys(extra) {
		kj, _ := json.Marshal(k)
		b.WriteByte(',')
		b.Write(kj)
		b.WriteByte(':')
		b.Write(extra[k])
	}
	b.WriteByte('}')
}

// sortedKeys returns the keys of m in order.
func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

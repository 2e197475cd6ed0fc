package mesh

// The parser of envelopes as it was before it was made to check the JSON
// grammar once (envelope_scan.go), kept here as the reference the one-pass
// parser must agree with on every input.

import (
	"bytes"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// referenceParseEnvelope is ParseEnvelope before the one-pass change: a
// json.Decoder over the envelope, then json.Unmarshal and parseObject
// over each part.
func referenceParseEnvelope(data []byte) (*Envelope, error) {
	if len(data) > MaxEnvelopeSize {
		return nil, fieldErr(ErrTooLarge, "envelope", "%d bytes, limit %d", len(data), MaxEnvelopeSize)
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
	e := &Envelope{}
	if err := referenceHeaderParse(&e.Header, parts[0]); err != nil {
		return nil, err
	}
	var p string
	if err := json.Unmarshal(parts[1], &p); err != nil {
		return nil, fieldErr(ErrMalformed, "payload", "want a base64url string")
	}
	payload, err := decodeBase64(p)
	if err != nil {
		return nil, inField("payload", err)
	}
	e.Payload = payload
	if err := referenceTrailerParse(&e.Trailer, parts[2]); err != nil {
		return nil, err
	}
	return e, nil
}

// referenceHeaderParse is Header.parse before the one-pass change.
func referenceHeaderParse(h *Header, raw json.RawMessage) error {
	o, err := parseObject(raw, "header")
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

// referenceTrailerParse is Trailer.parse before the one-pass change.
func referenceTrailerParse(t *Trailer, raw json.RawMessage) error {
	o, err := parseObject(raw, "trailer")
	if err != nil {
		return err
	}
	for _, k := range o.keys {
		v := o.values[k]
		switch k {
		case "PayloadDigest":
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
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
			var sigs []json.RawMessage
			if err := json.Unmarshal(v, &sigs); err != nil {
				return fieldErr(ErrMalformed, "trailer.signatures", "want an array")
			}
			if len(sigs) > MaxSignatures {
				return fieldErr(ErrTooLarge, "trailer.signatures", "%d signatures, limit %d", len(sigs), MaxSignatures)
			}
			for i, s := range sigs {
				sig, err := referenceParseSignature(s, fmt.Sprintf("trailer.signatures[%d]", i))
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

// referenceParseSignature is parseSignature before the one-pass change.
func referenceParseSignature(raw json.RawMessage, field string) (Signature, error) {
	o, err := parseObject(raw, field)
	if err != nil {
		return Signature{}, err
	}
	var s Signature
	for _, k := range o.keys {
		v := o.values[k]
		switch k {
		case "alg", "kid", "signature":
			var str string
			if err := json.Unmarshal(v, &str); err != nil {
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
	// (In the order alg, kid, signature, as ParseEnvelope now reports them;
	// the map the order came from made it vary from run to run.)
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

// checkSameAsReference fails t unless ParseEnvelope and the reference
// parser give data the same envelope or the same error.
func checkSameAsReference(t *testing.T, data []byte) {
	t.Helper()
	buf := bytes.Clone(data)
	got, err := ParseEnvelope(buf)
	clear(buf) // the envelope must not share the input's bytes
	want, werr := referenceParseEnvelope(data)
	if (err == nil) != (werr == nil) || err != nil && err.Error() != werr.Error() || !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: ParseEnvelope gives %#v, %v; the reference %#v, %v", data, got, err, want, werr)
	}
}

// envelopeVariants are envelopes in unusual spellings, each of which the
// one-pass parser must read as the reference parser does.
func envelopeVariants(good string) []string {
	return []string{
		good, " \n" + good + "\t\r ", good + " x", good + "]",
		strings.Replace(good, `[{`, `[ { `, 1),
		strings.Replace(good, `{"dig":"SHA2"}`, `{"d\u0069g":"SHA2"}`, 1),
		strings.Replace(good, `{"dig":"SHA2"}`, `{"dig":"SHA\u0032"}`, 1),
		strings.Replace(good, `{"dig":"SHA2"}`, `{"dig":"SHA2","dig":"SHA2"}`, 1),
		strings.Replace(good, `{"dig":"SHA2"}`, `{"dig":"SHA2" , "x" : [1, {"}":"]"}, "\""] }`, 1),
		strings.Replace(good, `{"dig":"SHA2"}`, `null`, 1),
		strings.Replace(good, `"signatures":[`, `"signatures" : [ `, 1),
		strings.Replace(good, `"signatures":[`, `"signatures":null,"x":[`, 1),
		strings.Replace(good, `"signatures":[`, `"signatures":[null,`, 1),
		strings.Replace(good, `"signatures":[`, `"signatures":[],"x":[`, 1),
		strings.Replace(good, `"alg":"SHA2"`, `"alg":null`, 1),
		strings.Replace(good, `"alg":"SHA2"`, `"alg":"SHA2","alg":"SHA2"`, 1),
		strings.Replace(good, `"alg":"SHA2"`, `"alg":"SH\u00c32"`, 1),
		strings.Replace(good, `"PayloadDigest":"`, `"PayloadDigest":null,"x":"`, 1),
		strings.Replace(good, `"cGF5bG9hZA"`, `null`, 1),
		strings.Replace(good, `"cGF5bG9hZA"`, `"cGF5bG9\u0068ZA"`, 1),
		strings.Replace(good, `"cGF5bG9hZA"`, "\"cGF5bG9\xffZA\"", 1),
		strings.Replace(good, `"cGF5bG9hZA"`, `"cGF5 bG9hZA"`, 1),
		`[]`, `[1,2]`, `[1,2,3]`, `{}`, `null`, `"x"`, ``, `[[],[],[]]`,
	}
}

// TestParseEnvelopeAgreesWithReference: the one-pass parser reads every
// variant of a good envelope as the reference parser does.
func TestParseEnvelopeAgreesWithReference(t *testing.T) {
	k := newKey(t, CurveEd448)
	env, _ := Sign([]byte("payload"), k)
	good, _ := env.MarshalJSON()
	for _, in := range envelopeVariants(string(good)) {
		checkSameAsReference(t, []byte(in))
	}
	for _, v := range seedEnvelopes {
		checkSameAsReference(t, readTestdata(t, v.file))
	}
}

// FuzzParseEnvelopeOnePass: ParseEnvelope agrees with the reference parser
// on every input.
func FuzzParseEnvelopeOnePass(f *testing.F) {
	for _, v := range seedEnvelopes {
		f.Add(readTestdata(f, v.file))
	}
	g := `[{"dig":"SHA2"},"cGF5bG9hZA",{"signatures":[{"alg":"SHA2","kid":"MBEA-67YL-KUQ7-LFXL-BDVK-WA6H-SV7Q","signature":"AA"}],"PayloadDigest":"AA"}]`
	for _, in := range envelopeVariants(g) {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSameAsReference(t, data)
	})
}

package mesh

import (
	"errors"
	"strings"
	"testing"
)

func TestSignVerifyRoundTrip(t *testing.T) {
	k1, k2 := newKey(t, CurveEd448), newKey(t, CurveEd448)
	env, err := Sign([]byte(`{"Test":{}}`), k1, k2)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := env.MarshalJSON()
	again, err := ParseEnvelope(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*PrivateKey{k1, k2} {
		if err := again.Verify(k.Public()); err != nil {
			t.Fatalf("Verify(%s): %v", k.UDF(), err)
		}
	}
	if err := again.Verify(newKey(t, CurveEd448).Public()); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Verify with a stranger's key: %v", err)
	}
	if got := again.Signers(); len(got) != 2 || got[0] != k1.UDF().String() {
		t.Fatalf("signers %v", got)
	}
}

func TestEnvelopeKeepsUnknownFields(t *testing.T) {
	k := newKey(t, CurveEd448)
	env, _ := Sign([]byte("payload"), k)
	raw, _ := env.MarshalJSON()
	s := strings.Replace(string(raw), `{"dig":"SHA2"}`, `{"dig":"SHA2","cty":"application/json","x":[1,{"y":2}]}`, 1)
	s = strings.Replace(s, `"PayloadDigest"`, `"Extra":{"a":1},"PayloadDigest"`, 1)
	s = strings.Replace(s, `"alg":"SHA2"`, `"alg":"SHA2","witness":"AAAA"`, 1)
	e, err := ParseEnvelope([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Verify(k.Public()); err != nil {
		t.Fatal(err)
	}
	out, _ := e.MarshalJSON()
	for _, want := range []string{`"cty":"application/json","x":[1,{"y":2}]`, `"Extra":{"a":1}`, `"witness":"AAAA"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("lost %s: %s", want, out)
		}
	}
}

func TestParseEnvelopeRejectsHostileInput(t *testing.T) {
	k := newKey(t, CurveEd448)
	env, _ := Sign([]byte("payload"), k)
	good, _ := env.MarshalJSON()
	g := string(good)
	sig := b64.EncodeToString(env.Trailer.Signatures[0].Value)
	tests := []struct {
		name, in, field string
		want            error
	}{
		{"not an array", `{}`, "envelope", ErrMalformed},
		{"two elements", `[{"dig":"SHA2"},"AA"]`, "envelope", ErrMalformed},
		{"four elements", strings.TrimSuffix(g, "]") + `,1]`, "envelope", ErrMalformed},
		{"a header that is not an object", strings.Replace(g, `{"dig":"SHA2"}`, `"x"`, 1), "header", ErrMalformed},
		{"no digest algorithm", strings.Replace(g, `{"dig":"SHA2"}`, `{}`, 1), "header.dig", ErrMalformed},
		{"an unknown digest algorithm", strings.Replace(g, `"dig":"SHA2"`, `"dig":"MD5"`, 1), "header.dig", ErrUnsupported},
		{"a duplicated header key", strings.Replace(g, `{"dig":"SHA2"}`, `{"dig":"SHA2","dig":"SHA2"}`, 1), "header", ErrMalformed},
		{"a payload with padding", strings.Replace(g, `"cGF5bG9hZA"`, `"cGF5bG9hZA=="`, 1), "payload", ErrMalformed},
		{"a payload in standard base64", strings.Replace(g, `"cGF5bG9hZA"`, `"cGF5bG9+ZA"`, 1), "payload", ErrMalformed},
		{"a payload that is a number", strings.Replace(g, `"cGF5bG9hZA"`, `12`, 1), "payload", ErrMalformed},
		{"no PayloadDigest", strings.Replace(g, `"PayloadDigest"`, `"payloaddigest"`, 1), "trailer.PayloadDigest", ErrMalformed},
		{"a short PayloadDigest", strings.Replace(g, `"PayloadDigest":"`, `"PayloadDigest":"AAAA","x":"`, 1), "trailer.PayloadDigest", ErrMalformed},
		{"signatures not an array", strings.Replace(g, `"signatures":[`, `"signatures":"x","y":[`, 1), "trailer.signatures", ErrMalformed},
		{"an unknown signature algorithm", strings.Replace(g, `"alg":"SHA2"`, `"alg":"RS256"`, 1), "trailer.signatures[0].alg", ErrUnsupported},
		{"a kid that is not a UDF", strings.Replace(g, k.UDF().String(), "not-a-udf!", 1), "trailer.signatures[0].kid", ErrMalformed},
		{"a short signature", strings.Replace(g, sig, sig[:100], 1), "trailer.signatures[0].signature", ErrMalformed},
		{"a signature without kid", strings.Replace(g, `"kid"`, `"KID"`, 1), "trailer.signatures[0].kid", ErrMalformed},
		{"too many signatures", strings.Replace(g, `"signatures":[`, `"signatures":[1,1,1,1,1,1,1,1,`, 1), "trailer.signatures", ErrTooLarge},
		{"a huge envelope", `["` + strings.Repeat("A", MaxEnvelopeSize) + `"]`, "envelope", ErrTooLarge},
		{"trailing data", g + `[]`, "envelope", ErrMalformed},
		{"empty", ``, "envelope", ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseEnvelope([]byte(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("err %v, want field %s", err, tc.field)
			}
		})
	}
}

func FuzzParseEnvelope(f *testing.F) {
	for _, v := range seedEnvelopes {
		f.Add(readTestdata(f, v.file))
	}
	f.Add([]byte(`[{"dig":"SHA2"},"",{"PayloadDigest":""}]`))
	resolve := resolverOf(seedKeys(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := ParseEnvelope(data)
		if err != nil {
			return
		}
		_, _ = env.VerifyWith(resolve)
		out, err := env.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseEnvelope(out)
		if err != nil {
			t.Fatalf("re-marshalled envelope does not parse: %v\n%s", err, out)
		}
		if string(again.Payload) != string(env.Payload) || string(again.Trailer.PayloadDigest) != string(env.Trailer.PayloadDigest) {
			t.Fatal("round trip changed the envelope")
		}
	})
}

// A typical profile: the seed's ProfileAccount envelope (1.9 KB entry).
func BenchmarkSignProfile(b *testing.B) {
	m := newTestMesh(b)
	payload, _ := EncodePayload(m.profile)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Sign(payload, m.offline); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyEnvelope(b *testing.B) {
	raw := readTestdata(b, "EnvelopedProfileAccount.json")
	keys := seedKeys(b)
	kid, _ := ParseUDF("MBEA-67YL-KUQ7-LFXL-BDVK-WA6H-SV7Q")
	key := keys[kid]
	b.ReportAllocs()
	for b.Loop() {
		env, err := ParseEnvelope(raw)
		if err != nil {
			b.Fatal(err)
		}
		if err := env.Verify(key); err != nil {
			b.Fatal(err)
		}
	}
}

// What a portal does per Publish: parse, verify, decode and validate.
func BenchmarkVerifyEntryProfile(b *testing.B) {
	env, _ := ParseEnvelope(readTestdata(b, "EnvelopedProfileAccount.json"))
	raw, _ := MarshalEntry(TypeProfileAccount, env)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyEntry(raw, 0); err != nil {
			b.Fatal(err)
		}
	}
}

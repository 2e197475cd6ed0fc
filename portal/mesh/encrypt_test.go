package mesh

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// RFC 3394 §4.1 and §4.6.
func TestAESKeyWrapRFC3394(t *testing.T) {
	for _, v := range []struct{ kek, key, wrapped string }{
		{"000102030405060708090A0B0C0D0E0F", "00112233445566778899AABBCCDDEEFF",
			"1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"},
		{"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
			"00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
			"28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"},
	} {
		kek, key, want := unhex(t, v.kek), unhex(t, v.key), unhex(t, v.wrapped)
		got, err := aesKeyWrap(kek, key)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("wrap = %X (%v), want %X", got, err, want)
		}
		back, err := aesKeyUnwrap(kek, want)
		if err != nil || !bytes.Equal(back, key) {
			t.Fatalf("unwrap = %X (%v), want %X", back, err, key)
		}
		bad := bytes.Clone(want)
		bad[len(bad)-1] ^= 1
		if _, err := aesKeyUnwrap(kek, bad); !errors.Is(err, ErrDecrypt) {
			t.Fatalf("unwrap of a changed key: %v, want ErrDecrypt", err)
		}
	}
}

// seedEncrypted are the encrypted envelopes of seed 002 (both in the
// CatalogedDevice example) and the key whose signature they carry.
var seedEncrypted = []struct{ file, signer string }{
	{"EnvelopedActivationDevice.json", "MDF4-YA2E-FVGJ-LAG5-IK5Y-FXBB-2I56"},
	{"EnvelopedActivationAccount.json", "MATS-L5SN-O5AN-LEPQ-KO6X-Q3PR-YPPF"},
}

// What the seed's encrypted envelopes let us check without their recipient
// key: the header parses (every key on curve448), the digest is SHA-512 of
// the ciphertext, the signature verifies with the key its kid names, and
// the sizes are those of the construction. The only private key in the
// seeds (MD6D…, the account encryption key of the ActivationAccount
// example) is not a recipient of either, so none can be decrypted here:
// the loop below decrypts every envelope whose recipient key the seeds
// hold, and that is none of them.
func TestSeedEncryptedEnvelopes(t *testing.T) {
	keys := seedKeys(t)
	_, seedPrivate := seedAccountKey(t)
	decryptable := 0
	for _, v := range seedEncrypted {
		t.Run(v.file, func(t *testing.T) {
			env, err := ParseEnvelope(readTestdata(t, v.file))
			if err != nil {
				t.Fatal(err)
			}
			h := env.Header.Encryption
			if h == nil || h.Enc != EncryptionA256CBC || len(h.Salt) != 16 || len(h.Recipients) != 1 {
				t.Fatalf("header %+v", h)
			}
			if u, _ := ParseUDF(h.Kid); u.Type() != UDFTypeEncryption {
				t.Fatalf("header kid %s is not a master key UDF", h.Kid)
			}
			r := h.Recipients[0]
			if r.Kid != "MDUU-RE36-2XG4-2OAR-VYRN-EX65-XGZC" || len(r.Epk.Raw) != 57 || len(r.WrappedKey) != 40 {
				t.Fatalf("recipient %+v", r)
			}
			if d := sha512.Sum512(env.Payload); !bytes.Equal(d[:], env.Trailer.PayloadDigest) || len(env.Payload)%16 != 0 {
				t.Fatal("PayloadDigest is not SHA-512 of the ciphertext, or the ciphertext is not whole AES blocks")
			}
			signer, err := env.VerifyWith(resolverOf(keys))
			if err != nil || signer.String() != v.signer {
				t.Fatalf("signed by %s (%v), want %s", signer, err, v.signer)
			}
			var w string
			if err := json.Unmarshal(env.Trailer.Signatures[0].Extra["witness"], &w); err != nil {
				t.Fatal(err)
			}
			if b, _ := decodeBase64(w); len(b) != witnessSize {
				t.Fatalf("witness of %d bytes", len(b))
			}
			for _, rec := range h.Recipients {
				if rec.Kid != seedPrivate.UDF().String() {
					continue
				}
				decryptable++
				if _, _, err := env.Decrypt([]*PrivateKey{seedPrivate}, resolverOf(keys)); err != nil {
					t.Fatalf("decrypting with the seed's key: %v", err)
				}
			}
			if _, _, err := env.Decrypt([]*PrivateKey{seedPrivate, newKey(t, CurveX448)}, resolverOf(keys)); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("decrypting with keys that are not recipients: %v, want ErrDecrypt", err)
			}
		})
	}
	if decryptable != 0 {
		t.Fatalf("%d seed envelopes are to a key the seeds hold; this test's comment is out of date", decryptable)
	}
}

// trusting resolves exactly the given public keys.
func trusting(keys ...PublicKey) KeyResolver {
	m := map[UDF]PublicKey{}
	for _, k := range keys {
		m[k.UDF()] = k
	}
	return resolverOf(m)
}

// Our envelopes have the seed's shape field by field: the same header
// fields in the same order, the same recipient entry, the same trailer
// fields, and the same sizes.
func TestEncryptedEnvelopeMatchesSeedShape(t *testing.T) {
	recipient, signer := newKey(t, CurveX448), newKey(t, CurveEd448)
	env, err := Encrypt(rand.Reader, []byte(`{"ActivationAccount":{}}`), []PublicKey{recipient.Public()}, signer)
	if err != nil {
		t.Fatal(err)
	}
	ours, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	seed := readTestdata(t, "EnvelopedActivationAccount.json")
	if a, b := shapeOf(t, ours), shapeOf(t, seed); a != b {
		t.Fatalf("shape differs:\nours %s\nseed %s", a, b)
	}
	again, err := ParseEnvelope(ours)
	if err != nil {
		t.Fatal(err)
	}
	pt, by, err := again.Decrypt([]*PrivateKey{recipient}, trusting(signer.Public()))
	if err != nil || string(pt) != `{"ActivationAccount":{}}` || !by.Equal(signer.UDF()) {
		t.Fatalf("round trip: %q by %s (%v)", pt, by, err)
	}
	if got := MasterKeyUDF(make([]byte, 32)).String(); !strings.HasPrefix(got, "EBQ") {
		t.Fatalf("master key UDF %s does not start like the seed's (EBQ…)", got)
	}
}

// shapeOf describes a JSON value by its structure: object keys in order,
// array lengths, and for strings their decoded size (base64url) or, for
// UDFs, their first letter and length.
func shapeOf(t *testing.T, data []byte) string {
	t.Helper()
	var parts []json.RawMessage
	if err := json.Unmarshal(data, &parts); err != nil || len(parts) != 3 {
		t.Fatalf("not an envelope: %v", err)
	}
	var b strings.Builder
	var walk func(raw json.RawMessage, skipSize bool)
	walk = func(raw json.RawMessage, skipSize bool) {
		switch raw[0] {
		case '{':
			o, err := parseObject(raw, "x")
			if err != nil {
				t.Fatal(err)
			}
			b.WriteByte('{')
			for _, k := range o.keys {
				b.WriteString(k + ":")
				walk(o.values[k], skipSize)
				b.WriteByte(',')
			}
			b.WriteByte('}')
		case '[':
			var a []json.RawMessage
			_ = json.Unmarshal(raw, &a)
			fmt.Fprintf(&b, "[%d:", len(a))
			for _, x := range a {
				walk(x, skipSize)
			}
			b.WriteByte(']')
		case '"':
			var s string
			_ = json.Unmarshal(raw, &s)
			switch {
			case skipSize:
				b.WriteString("str")
			case len(s) == 34 && s[4] == '-':
				fmt.Fprintf(&b, "udf %c", s[0])
			default:
				d, err := decodeBase64(s)
				if err != nil {
					fmt.Fprintf(&b, "%q", s)
				} else {
					fmt.Fprintf(&b, "b64 %d", len(d))
				}
			}
		}
	}
	walk(parts[0], false)
	walk(parts[1], true) // the ciphertext's length depends on the plaintext
	walk(parts[2], false)
	return b.String()
}

func TestEncryptToManyRecipients(t *testing.T) {
	signer := newKey(t, CurveEd448)
	var keys []*PrivateKey
	var pubs []PublicKey
	for i := 0; i < 8; i++ {
		keys = append(keys, newKey(t, CurveX448))
		pubs = append(pubs, keys[i].Public())
	}
	msg := bytes.Repeat([]byte("sixteen bytes!!!"), 4) // a whole number of blocks: padding adds one
	env, err := Encrypt(rand.Reader, msg, pubs, signer)
	if err != nil {
		t.Fatal(err)
	}
	if len(env.Payload) != len(msg)+16 {
		t.Fatalf("ciphertext of %d bytes for %d bytes", len(env.Payload), len(msg))
	}
	for i, k := range keys {
		pt, _, err := env.Decrypt([]*PrivateKey{k}, trusting(signer.Public()))
		if err != nil || !bytes.Equal(pt, msg) {
			t.Fatalf("recipient %d: %v", i, err)
		}
	}
	stranger := newKey(t, CurveX448)
	if _, _, err := env.Decrypt([]*PrivateKey{stranger}, trusting(signer.Public())); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("a non-recipient: %v, want ErrDecrypt", err)
	}
	if _, _, err := env.Decrypt(keys[:1], trusting(newKey(t, CurveEd448).Public())); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("a signer we do not trust: %v, want ErrUnknownKey", err)
	}
	// A signature whose witness belongs to another envelope: the signer
	// signed a ciphertext but did not encrypt this one.
	other, err := Encrypt(rand.Reader, msg, pubs[:1], signer)
	if err != nil {
		t.Fatal(err)
	}
	env.Trailer.Signatures[0].Extra = other.Trailer.Signatures[0].Extra
	if _, _, err := env.Decrypt(keys[:1], trusting(signer.Public())); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("a transplanted witness: %v, want ErrBadSignature", err)
	}
}

func TestEncryptRefuses(t *testing.T) {
	x, ed := newKey(t, CurveX448), newKey(t, CurveEd448)
	for _, c := range []struct {
		name       string
		recipients []PublicKey
		signers    []*PrivateKey
		want       error
	}{
		{"no recipient", nil, []*PrivateKey{ed}, ErrMissingKey},
		{"no signer", []PublicKey{x.Public()}, nil, ErrMissingKey},
		{"an Ed448 recipient", []PublicKey{ed.Public()}, []*PrivateKey{ed}, ErrWrongCurve},
		{"an X448 signer", []PublicKey{x.Public()}, []*PrivateKey{x}, ErrWrongCurve},
		{"too many recipients", make([]PublicKey, MaxRecipients+1), []*PrivateKey{ed}, ErrTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Encrypt(rand.Reader, []byte("x"), c.recipients, c.signers...); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	plain, err := Sign([]byte("x"), ed)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := plain.Decrypt([]*PrivateKey{x}, trusting(ed.Public())); !errors.Is(err, ErrMalformed) {
		t.Fatalf("decrypting a plain envelope: %v, want ErrMalformed", err)
	}
}

// Every one-byte change of an encrypted envelope is refused, except the
// harmless one the format cannot see: the sign byte of the ephemeral key,
// which X448 agreement ignores (then the plaintext is unchanged).
func TestEncryptedEnvelopeRefusesEveryOneByteChange(t *testing.T) {
	recipient, signer := newKey(t, CurveX448), newKey(t, CurveEd448)
	msg := []byte(`{"Message":"hello, Alice"}`)
	env, err := Encrypt(rand.Reader, msg, []PublicKey{recipient.Public()}, signer)
	if err != nil {
		t.Fatal(err)
	}
	good, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	epk := b64.EncodeToString(env.Header.Encryption.Recipients[0].Epk.Raw)
	epkAt := bytes.Index(good, []byte(epk))
	resolve := trusting(signer.Public())
	tried, accepted := 0, 0
	for i := range good {
		for _, flip := range []byte{0x01, 0x02, 0x04, 0x20} {
			bad := bytes.Clone(good)
			bad[i] ^= flip
			tried++
			e, err := ParseEnvelope(bad)
			if err != nil {
				continue
			}
			pt, _, err := e.Decrypt([]*PrivateKey{recipient}, resolve)
			if err != nil {
				continue
			}
			if !bytes.Equal(pt, msg) || i < epkAt || i >= epkAt+len(epk) {
				t.Fatalf("changing byte %d (%q) by 0x%02x was accepted: %q", i, good[i], flip, pt)
			}
			accepted++
		}
	}
	if accepted > 2 {
		t.Fatalf("%d changes of the ephemeral key's sign byte accepted, want at most 2", accepted)
	}
	t.Logf("%d one-byte changes tried, %d (sign byte of the ephemeral key) harmless", tried, accepted)
}

func FuzzDecryptEnvelope(f *testing.F) {
	recipient, signer := newKey(f, CurveX448), newKey(f, CurveEd448)
	msg := []byte("fuzz")
	env, err := Encrypt(rand.Reader, msg, []PublicKey{recipient.Public()}, signer)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(env)
	f.Add(good)
	for _, v := range seedEncrypted {
		f.Add(readTestdata(f, v.file))
	}
	f.Add([]byte(`[{"enc":"A256CBC","dig":"SHA2","kid":"EBQD-OOCD-I2BF-HRB7-PJYK-4POE-ZIRL","Salt":"DBIuRwlk2nO7IkSdNuSDuA","recipients":[]},"",{"PayloadDigest":""}]`))
	resolve := trusting(signer.Public())
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEnvelope(data)
		if err != nil {
			return
		}
		if again, err := json.Marshal(e); err != nil {
			t.Fatalf("a parsed envelope does not marshal: %v", err)
		} else if _, err := ParseEnvelope(again); err != nil {
			t.Fatalf("a parsed envelope does not parse again: %v", err)
		}
		pt, _, err := e.Decrypt([]*PrivateKey{recipient}, resolve)
		if err == nil && !bytes.Equal(pt, msg) {
			t.Fatalf("decrypted to %q, want %q", pt, msg)
		}
	})
}

func benchmarkEncrypt(b *testing.B, n int) {
	signer := newKey(b, CurveEd448)
	var keys []*PrivateKey
	var pubs []PublicKey
	for i := 0; i < n; i++ {
		keys = append(keys, newKey(b, CurveX448))
		pubs = append(pubs, keys[i].Public())
	}
	msg := bytes.Repeat([]byte{'x'}, 1024)
	b.Run("encrypt", func(b *testing.B) {
		for b.Loop() {
			if _, err := Encrypt(rand.Reader, msg, pubs, signer); err != nil {
				b.Fatal(err)
			}
		}
	})
	env, err := Encrypt(rand.Reader, msg, pubs, signer)
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := json.Marshal(env)
	resolve := trusting(signer.Public())
	b.Run("decrypt", func(b *testing.B) {
		for b.Loop() {
			e, err := ParseEnvelope(raw)
			if err != nil {
				b.Fatal(err)
			}
			// The last recipient: the worst case of the kid search.
			if _, _, err := e.Decrypt(keys[n-1:], resolve); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEncrypt1 encrypts and decrypts 1 KiB to one recipient, signed
// by one Ed448 key (decrypt includes parsing and the signature check).
func BenchmarkEncrypt1(b *testing.B) { benchmarkEncrypt(b, 1) }

// BenchmarkEncrypt8 is BenchmarkEncrypt1 with 8 recipients.
func BenchmarkEncrypt8(b *testing.B) { benchmarkEncrypt(b, 8) }

// counter is a deterministic "random" source: 0x00, 0x01, 0x02, …
type counter struct{ n byte }

func (c *counter) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.n
		c.n++
	}
	return len(p), nil
}

// docExample is the worked example of docs/formats.md ("Encrypted
// envelopes"): the master key is bytes 00..1f, the Salt 20..2f, the
// ephemeral private key 30..67, the recipient the seed's MD6D… key pair,
// the signer the Ed448 key whose seed is 57 bytes of 0x11.
const docExample = `[{"enc":"A256CBC","dig":"SHA2","kid":"EBQM-OSHO-Z2XH-NV3B-ZCZ3-GH6F-IVOW","Salt":"ICEiIyQlJicoKSorLC0uLw","recipients":[{"kid":"MD6D-SYF6-236Q-Q7R7-MZGI-IQZR-EXCN","epk":{"PublicKeyECDH":{"crv":"X448","Public":"Nv5yMgDshoFqL4Qak4tlidG9Oxe6jZ6cnplL7VwWEpRocNcRts8sgBUCo5b6twZL8OOqNhj2y0AA"}},"wmk":"1cWkOMS3YJz2lDMqZfMSLUGs0VFpHn0oFbnhuGV7wUVa86wSdg3o7g"}]},"IaILnrvNjeGGm9K4UgQ3-0uZrrU_BwrRfTKgLqZuHTI",{"signatures":[{"alg":"SHA2","kid":"MAGN-TEFH-Q6DZ-SFWW-S4ZL-2P37-BYB7","signature":"TxKYgTJo8eZzw7TnK03-_jZR_W-udajnlHxmwdP9DrSN6bKdgT29aAOPKwwX129mXzjysalEPfCAQTJYKLin-L19RxNnrBUMo7gonU-zEb5vjUGuzTtBuNQezk1cNN352PjTFOutnFkZ5qbIMdcAUScA","witness":"wT7nicxsF47igp2shq2-4ukgk7BM_f2-wgWBAZYYAt8"}],"PayloadDigest":"TweCLxjAJ45yjyg4V5C4PJPxcjzy7KIKpeLbI_ubFL4HFg3HGktNpYUfM30VcZJUDgEPm-45vlae4kol4xfEBw"}]`

func TestEncryptedEnvelopeDocExample(t *testing.T) {
	_, recipient := seedAccountKey(t)
	signer, err := NewPrivateKey(CurveEd448, bytes.Repeat([]byte{0x11}, Ed448PrivateKeySize))
	if err != nil {
		t.Fatal(err)
	}
	env, err := Encrypt(&counter{}, []byte(`{"Message":"hello, Alice"}`), []PublicKey{recipient.Public()}, signer)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(env)
	if string(got) != docExample {
		t.Fatalf("the example of docs/formats.md is now\n%s", got)
	}
	pt, _, err := env.Decrypt([]*PrivateKey{recipient}, trusting(signer.Public()))
	if err != nil || string(pt) != `{"Message":"hello, Alice"}` {
		t.Fatalf("%q, %v", pt, err)
	}
}

package mesh

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The seven signed envelopes of seed 002 (see testdata/README.md) and the
// kid each is signed with.
var seedEnvelopes = []struct {
	file, kid string
}{
	{"EnvelopedProfileMesh.json", "MCOZ-GIZ3-34VQ-GQ6J-FCS7-BJIU-JCOY"},
	{"EnvelopedProfileDevice.json", "MDNT-Y3SK-UGF5-NPYP-XDCK-OWHW-Z7FN"},
	{"EnvelopedConnectionDevice.json", "MDF4-YA2E-FVGJ-LAG5-IK5Y-FXBB-2I56"},
	{"EnvelopedProfileAccount.json", "MBEA-67YL-KUQ7-LFXL-BDVK-WA6H-SV7Q"},
	{"EnvelopedConnectionAccount.json", "MATS-L5SN-O5AN-LEPQ-KO6X-Q3PR-YPPF"},
	{"EnvelopedProfileService.json", "MD3E-TZGL-T2KW-XPUT-NLED-JPRG-AGLU"},
	{"EnvelopedConnection.json", "MATS-L5SN-O5AN-LEPQ-KO6X-Q3PR-YPPF"},
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seedKeys returns every public key of seed 002's examples by UDF, checking
// on the way that each stated UDF is the UDF computed from the key.
func seedKeys(t testing.TB) map[UDF]PublicKey {
	t.Helper()
	var list []struct {
		UDF    string
		Crv    string `json:"crv"`
		Public Base64
	}
	if err := json.Unmarshal(readTestdata(t, "seed002_keys.json"), &list); err != nil {
		t.Fatal(err)
	}
	keys := map[UDF]PublicKey{}
	for _, k := range list {
		kd := KeyData{UDF: k.UDF, PublicParameters: &PublicParameters{PublicKeyECDH: &PublicKeyECDH{Crv: k.Crv, Public: k.Public}}}
		pk, err := kd.PublicKey()
		if err != nil {
			t.Fatalf("key %s: %v", k.UDF, err)
		}
		keys[pk.UDF()] = pk
	}
	return keys
}

func resolverOf(keys map[UDF]PublicKey) KeyResolver {
	return func(kid UDF) (PublicKey, error) {
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return PublicKey{}, ErrUnknownKey
	}
}

// Every key identifier in seed 002's examples is reproduced from its key.
func TestSeedKeyIdentifiers(t *testing.T) {
	keys := seedKeys(t)
	if len(keys) < 18 {
		t.Fatalf("%d keys, want the 18 of seed 002", len(keys))
	}
	curves := map[Curve]int{}
	for _, k := range keys {
		curves[k.Curve]++
	}
	if curves[CurveEd448] == 0 || curves[CurveX448] == 0 {
		t.Fatalf("want keys of both curves, have %v", curves)
	}
}

func TestDesignKeyVectors(t *testing.T) {
	for public, want := range map[string]string{
		"Q1UAkB-XN8gVJq_GMQtzdY7frvwUf-68_glEuopcpNU1J6nSmKQ2d5dFFZ1TXm8hYCEpQWRNiX8A": "MCOZ-GIZ3-34VQ-GQ6J-FCS7-BJIU-JCOY",
		"GUt8_DJU0kikQ37mFfAemQYy9YODDA-Y_8383-VLczRvGH24ork1DbvZb1D_SPij2J8z0G8jHZyA": "MDNT-Y3SK-UGF5-NPYP-XDCK-OWHW-Z7FN",
	} {
		raw, err := decodeBase64(public)
		if err != nil {
			t.Fatal(err)
		}
		k, err := NewPublicKey(CurveEd448, raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := k.UDF().String(); got != want {
			t.Errorf("UDF %s, want %s", got, want)
		}
	}
	raw, _ := decodeBase64("HKt8Fvp6AP4YoWjnCzMTfZy7TXYu360D98d7KvnhZaXWSH18Ojs5_ca33B5YwqxHIKuBI4-DnseA")
	k, err := NewPublicKey(CurveX448, raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := k.UDF().String(); got != "MBLT-3BDA-SR4S-SRBA-JVFA-YCCG-DAG2" {
		t.Errorf("X448 UDF %s, want MBLT-3BDA-SR4S-SRBA-JVFA-YCCG-DAG2", got)
	}
}

// The interoperability test: the envelopes the reference implementation
// made verify, each with the key its kid names.
func TestSeedEnvelopesVerify(t *testing.T) {
	keys := seedKeys(t)
	for _, v := range seedEnvelopes {
		t.Run(v.file, func(t *testing.T) {
			env, err := ParseEnvelope(readTestdata(t, v.file))
			if err != nil {
				t.Fatal(err)
			}
			signer, err := env.VerifyWith(resolverOf(keys))
			if err != nil {
				t.Fatal(err)
			}
			if signer.String() != v.kid {
				t.Fatalf("signer %s, want %s", signer, v.kid)
			}
			kid, _ := ParseUDF(v.kid)
			if err := env.Verify(keys[kid]); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if _, _, err := PayloadType(env.Payload); err != nil {
				t.Fatalf("payload: %v", err)
			}
		})
	}
}

// Any one-byte change of a seed envelope is rejected: every byte of the
// JSON text, and every byte of the decoded payload, signature and digest.
func TestSeedEnvelopesRejectAnyByteChange(t *testing.T) {
	resolve := resolverOf(seedKeys(t))
	check := func(data []byte) error {
		env, err := ParseEnvelope(data)
		if err != nil {
			return err
		}
		_, err = env.VerifyWith(resolve)
		return err
	}
	for _, v := range seedEnvelopes {
		t.Run(v.file, func(t *testing.T) {
			orig := readTestdata(t, v.file)
			for i := range orig {
				for _, flip := range []byte{0x01, 0x02, 0x04, 0x80} {
					data := append([]byte(nil), orig...)
					data[i] ^= flip
					if check(data) == nil {
						t.Fatalf("byte %d ^ 0x%02x (%q) accepted", i, flip, orig[max(0, i-10):min(len(orig), i+10)])
					}
				}
			}
			env, _ := ParseEnvelope(orig)
			parts := map[string][]byte{"payload": env.Payload, "signature": env.Trailer.Signatures[0].Value, "digest": env.Trailer.PayloadDigest}
			for name, b := range parts {
				for i := range b {
					b[i] ^= 0x01
					out, _ := env.MarshalJSON()
					if _, err := func() (UDF, error) {
						e, err := ParseEnvelope(out)
						if err != nil {
							return UDF{}, err
						}
						return e.VerifyWith(resolve)
					}(); err == nil {
						t.Fatalf("%s byte %d changed, accepted", name, i)
					} else if !errors.Is(err, ErrBadDigest) && !errors.Is(err, ErrBadSignature) {
						t.Fatalf("%s byte %d changed: %v, want ErrBadDigest or ErrBadSignature", name, i, err)
					}
					b[i] ^= 0x01
				}
			}
		})
	}
}

// The whole CatalogedDevice example validates: both profiles, the device
// connection (by the Mesh's administration key), the account profile with
// its service profile, and the account connection.
func TestSeedCatalogedDeviceValidates(t *testing.T) {
	var c CatalogedDevice
	if err := DecodePayload(readTestdata(t, "seed002_CatalogedDevice.json"), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Accounts) != 1 || c.EnvelopedActivationDevice == nil {
		t.Fatalf("decoded %d accounts, activation %v", len(c.Accounts), c.EnvelopedActivationDevice != nil)
	}
	// The seed's profiles verify as entries, as a portal would receive them.
	for _, p := range []struct {
		typ string
		env *Envelope
	}{
		{TypeProfileMesh, c.EnvelopedProfileMesh},
		{TypeProfileDevice, c.EnvelopedProfileDevice},
		{TypeProfileAccount, c.Accounts[0].EnvelopedProfileAccount},
	} {
		raw, err := MarshalEntry(p.typ, p.env)
		if err != nil {
			t.Fatal(err)
		}
		e, err := VerifyEntry(raw, 0)
		if err != nil {
			t.Fatalf("%s: %v", p.typ, err)
		}
		if !e.SignedOffline || !e.Identifier.Equal(e.Signer) {
			t.Fatalf("%s: signer %s, identifier %s", p.typ, e.Signer, e.Identifier)
		}
		if err := MayReplace(nil, e); err != nil {
			t.Fatalf("%s: MayReplace(nil): %v", p.typ, err)
		}
	}
	// Unknown header fields are kept: the encrypted activation round-trips.
	out, err := c.EnvelopedActivationDevice.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	again, err := ParseEnvelope(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(again.Header.Raw) != string(c.EnvelopedActivationDevice.Header.Raw) {
		t.Fatalf("header changed:\n%s\n%s", again.Header.Raw, c.EnvelopedActivationDevice.Header.Raw)
	}
	if _, ok := again.Trailer.Signatures[0].Extra["witness"]; !ok {
		t.Fatal("signature field witness lost")
	}
}

func TestSeedProfileServiceAndAccount(t *testing.T) {
	var a ProfileAccount
	if err := DecodePayload(readTestdata(t, "seed002_ProfileAccount.json"), &a); err != nil {
		t.Fatal(err)
	}
	var s ProfileService
	if err := DecodePayload(a.EnvelopedProfileService.Payload, &s); err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(a.EnvelopedProfileService); err != nil {
		t.Fatal(err)
	}
	if id, _ := s.Identifier(); id.String() != "MD3E-TZGL-T2KW-XPUT-NLED-JPRG-AGLU" {
		t.Fatalf("service identifier %s", id)
	}
}

package mesh

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// allProfiles makes one valid profile of each type with its offline key.
func allProfiles(t *testing.T) map[string]struct {
	p   SignedProfile
	key *PrivateKey
} {
	m := newTestMesh(t)
	dev, devKey := newTestDevice(t)
	acctKey, svcKey, hostKey := newKey(t, CurveEd448), newKey(t, CurveEd448), newKey(t, CurveEd448)
	svc := &ProfileService{Profile: Profile{KeyOfflineSignature: NewKeyData(svcKey.Public())}, KeyEncryption: NewKeyData(newKey(t, CurveX448).Public())}
	svcEnv, err := SignObject(svc, svcKey)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]struct {
		p   SignedProfile
		key *PrivateKey
	}{
		TypeProfileMesh:   {m.profile, m.offline},
		TypeProfileDevice: {dev, devKey},
		TypeProfileAccount: {&ProfileAccount{
			Profile:                 Profile{KeyOfflineSignature: NewKeyData(acctKey.Public()), KeysOnlineSignature: []KeyData{*NewKeyData(newKey(t, CurveEd448).Public())}},
			AccountAddresses:        []string{"alice@example.com"},
			MeshProfileUDF:          m.offline.UDF().String(),
			KeyEncryption:           NewKeyData(newKey(t, CurveX448).Public()),
			KeyAuthentication:       NewKeyData(newKey(t, CurveX448).Public()),
			EnvelopedProfileService: svcEnv,
		}, acctKey},
		TypeProfileService: {svc, svcKey},
		TypeProfileHost:    {&ProfileHost{Profile: Profile{KeyOfflineSignature: NewKeyData(hostKey.Public())}, KeyAuthentication: NewKeyData(newKey(t, CurveX448).Public())}, hostKey},
	}
}

func TestProfilesRoundTripAndVerify(t *testing.T) {
	for typ, tc := range allProfiles(t) {
		t.Run(typ, func(t *testing.T) {
			raw := entryOf(t, tc.p, tc.key)
			e, err := VerifyEntry(raw, 0)
			if err != nil {
				t.Fatal(err)
			}
			if e.Type != typ || !e.Identifier.Equal(tc.key.UDF()) || !e.SignedOffline {
				t.Fatalf("entry %s %s offline=%v", e.Type, e.Identifier, e.SignedOffline)
			}
			// Decoding the payload gives back the same object.
			again := newProfile(typ)
			if err := DecodePayload(e.Envelope.Payload, again); err != nil {
				t.Fatal(err)
			}
			a, _ := json.Marshal(again)
			b, _ := json.Marshal(tc.p)
			if string(a) != string(b) {
				t.Fatalf("round trip changed the profile:\n%s\n%s", a, b)
			}
			if !reflect.DeepEqual(e.Object.TypeName(), typ) {
				t.Fatal("object type")
			}
			// The entry re-marshals to the same bytes.
			out, _ := MarshalEntry(e.Type, e.Envelope)
			if string(out) != string(raw) {
				t.Fatalf("MarshalEntry changed the entry")
			}
		})
	}
}

func TestProfileValidateRejects(t *testing.T) {
	m := newTestMesh(t)
	other := newKey(t, CurveEd448)
	x := newKey(t, CurveX448)
	tests := []struct {
		name   string
		mutate func(p *ProfileMesh)
		signer *PrivateKey
		want   error
	}{
		{"a profile signed by another key", func(p *ProfileMesh) {}, other, ErrBadSignature},
		{"an offline key on the wrong curve", func(p *ProfileMesh) { p.KeyOfflineSignature = NewKeyData(x.Public()) }, m.offline, ErrWrongCurve},
		{"an encryption key on the wrong curve", func(p *ProfileMesh) { p.KeyEncryption = NewKeyData(other.Public()) }, m.offline, ErrWrongCurve},
		{"no encryption key", func(p *ProfileMesh) { p.KeyEncryption = nil }, m.offline, ErrMissingKey},
		{"no offline key", func(p *ProfileMesh) { p.KeyOfflineSignature = nil }, m.offline, ErrMissingKey},
		{"no administration key", func(p *ProfileMesh) { p.KeysOnlineSignature = nil }, m.offline, ErrMissingKey},
		{"a stated UDF that is not the key's", func(p *ProfileMesh) {
			kd := *p.KeyOfflineSignature
			kd.UDF = other.UDF().String()
			p.KeyOfflineSignature = &kd
		}, m.offline, ErrIdentifierMismatch},
		{"too many online keys", func(p *ProfileMesh) {
			for range MaxOnlineKeys {
				p.KeysOnlineSignature = append(p.KeysOnlineSignature, *NewKeyData(other.Public()))
			}
		}, m.offline, ErrTooLarge},
		{"a published private key", func(p *ProfileMesh) { p.KeyEncryption = x.KeyData() }, m.offline, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := *m.profile
			tc.mutate(&p)
			env, err := SignObject(&p, tc.signer)
			if err != nil {
				t.Fatal(err)
			}
			var got ProfileMesh
			if err := DecodePayload(env.Payload, &got); err != nil {
				t.Fatal(err)
			}
			err = got.Validate(env)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Validate: %v, want %v", err, tc.want)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("error %v names no field", err)
			}
		})
	}
}

func TestMayReplace(t *testing.T) {
	m := newTestMesh(t)
	verify := func(p *ProfileMesh, keys ...*PrivateKey) *Entry {
		t.Helper()
		e, err := VerifyEntry(entryOf(t, p, keys...), 0)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	registered := verify(m.profile, m.offline)
	update := *m.profile
	update.Names = []string{"updated"}
	newOnline := newKey(t, CurveEd448)
	rotated := *m.profile
	rotated.KeysOnlineSignature = []KeyData{*NewKeyData(newOnline.Public())}
	otherMesh := newTestMesh(t)
	dev, devKey := newTestDevice(t)

	tests := []struct {
		name      string
		old, next *Entry
		ok        bool
	}{
		{"a first version signed by its offline key is accepted", nil, registered, true},
		{"a first version signed only by an online key is refused", nil, verify(&update, m.online), false},
		{"an update signed by the offline key is accepted", registered, verify(&update, m.offline), true},
		{"an update signed by a listed online key is accepted", registered, verify(&update, m.online), true},
		{"an update signed by an online key the registered version does not list is refused", registered, verify(&rotated, newOnline), false},
		{"another profile's identifier is refused", registered, verify(otherMesh.profile, otherMesh.offline), false},
		{"another type is refused", registered, func() *Entry { e, _ := VerifyEntry(entryOf(t, dev, devKey), 0); return e }(), false},
	}
	for _, tc := range tests {
		if tc.next == nil {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			err := MayReplace(tc.old, tc.next)
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrNotPermitted) {
				t.Fatalf("err %v, want ErrNotPermitted", err)
			}
		})
	}
}

// A profile signed by a key that is neither its offline nor one of its
// online keys is not an entry at all.
func TestVerifyEntryRejectsForeignSigner(t *testing.T) {
	m := newTestMesh(t)
	_, err := VerifyEntry(entryOf(t, m.profile, newKey(t, CurveEd448)), 0)
	if !errors.Is(err, ErrBadSignature) {
		t.Fatalf("err %v, want ErrBadSignature", err)
	}
}

func TestVerifyEntryRejectsHostileInput(t *testing.T) {
	m := newTestMesh(t)
	good := entryOf(t, m.profile, m.offline)
	_, env, _ := ParseEntry(good)
	envJSON, _ := env.MarshalJSON()
	devEnv, _ := SignObject(m.profile, m.offline)
	mislabeled, _ := MarshalEntry(TypeProfileDevice, devEnv)
	tests := []struct {
		name string
		raw  string
		want error
	}{
		{"empty input", "", ErrMalformed},
		{"not JSON", "hello", ErrMalformed},
		{"a bare envelope without type tag", string(envJSON), ErrMalformed},
		{"two type tags", `{"ProfileMesh":` + string(envJSON) + `,"ProfileHost":` + string(envJSON) + `}`, ErrMalformed},
		{"an unknown type", `{"ProfileCat":` + string(envJSON) + `}`, ErrUnsupported},
		{"a payload tagged with another type", string(mislabeled), ErrMalformed},
		{"trailing garbage", string(good) + "x", ErrMalformed},
		{"a huge entry", `{"ProfileMesh":"` + string(make([]byte, MaxEnvelopeSize)) + `"}`, ErrTooLarge},
		{"a number for the envelope", `{"ProfileMesh":1}`, ErrMalformed},
		{"deep nesting", `{"ProfileMesh":` + nested(10000) + `}`, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyEntry([]byte(tc.raw), 0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func nested(n int) string {
	b := make([]byte, 0, 2*n)
	for range n {
		b = append(b, '[')
	}
	for range n {
		b = append(b, ']')
	}
	return string(b)
}

func TestConnectionRequestAndResult(t *testing.T) {
	m := newTestMesh(t)
	meshEntry, err := VerifyEntry(entryOf(t, m.profile, m.offline), 0)
	if err != nil {
		t.Fatal(err)
	}
	dev, devKey := newTestDevice(t)
	devEnv, _ := SignObject(dev, devKey)
	req := &ConnectionRequest{ParentUDF: m.offline.UDF().String(), Device: devEnv}
	e, err := VerifyEntry(entryOf(t, req, devKey), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Identifier.Equal(devKey.UDF()) || !e.Subject.Equal(m.offline.UDF()) {
		t.Fatalf("request identifier %s subject %s", e.Identifier, e.Subject)
	}
	if _, err := VerifyEntry(entryOf(t, req, newKey(t, CurveEd448)), 0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("request signed by another key: %v", err)
	}

	lookup := Verifier{Lookup: func(id UDF) (*Entry, error) {
		if id.Equal(meshEntry.Identifier) {
			return meshEntry, nil
		}
		return nil, ErrUnknownKey
	}}
	for _, result := range []string{ResultAccepted, ResultRefused, ResultQuery} {
		res := &ConnectionResult{ConnectionRequest: *req, Result: result}
		r, err := lookup.Verify(entryOf(t, res, m.online))
		if err != nil {
			t.Fatalf("%s: %v", result, err)
		}
		if !r.Signer.Equal(m.online.UDF()) || !r.Identifier.Equal(devKey.UDF()) {
			t.Fatalf("result signer %s identifier %s", r.Signer, r.Identifier)
		}
	}
	res := &ConnectionResult{ConnectionRequest: *req, Result: ResultAccepted}
	if _, err := lookup.Verify(entryOf(t, res, devKey)); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("result signed by the device: %v, want ErrUnknownKey", err)
	}
	if _, err := VerifyEntry(entryOf(t, res, m.online), 0); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("result without lookup: %v, want ErrUnknownKey", err)
	}
	bad := &ConnectionResult{ConnectionRequest: *req, Result: "Maybe"}
	if _, err := lookup.Verify(entryOf(t, bad, m.online)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad result value: %v", err)
	}
}

func TestPrivateKeyRoundTrip(t *testing.T) {
	for _, c := range []Curve{CurveEd448, CurveX448} {
		k := newKey(t, c)
		b, err := json.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		var again PrivateKey
		if err := json.Unmarshal(b, &again); err != nil {
			t.Fatal(err)
		}
		if !again.Public().Equal(k.Public()) || string(again.Bytes()) != string(k.Bytes()) {
			t.Fatalf("%s key changed in the keystore round trip", c)
		}
	}
	a, b := newKey(t, CurveX448), newKey(t, CurveX448)
	s1, err1 := a.SharedSecret(b.Public())
	s2, err2 := b.SharedSecret(a.Public())
	if err1 != nil || err2 != nil || string(s1) != string(s2) {
		t.Fatalf("X448 agreement: %v %v", err1, err2)
	}
	if _, err := a.Sign([]byte("x")); !errors.Is(err, ErrWrongCurve) {
		t.Fatalf("X448 key signed: %v", err)
	}
}

func FuzzVerifyEntry(f *testing.F) {
	m := newTestMesh(f)
	f.Add(entryOf(f, m.profile, m.offline))
	for _, v := range seedEnvelopes {
		env, err := ParseEnvelope(readTestdata(f, v.file))
		if err != nil {
			f.Fatal(err)
		}
		tag, _, _ := PayloadType(env.Payload)
		raw, _ := MarshalEntry(tag, env)
		f.Add(raw)
	}
	f.Add([]byte(`{"ProfileMesh":[{"dig":"SHA2"},"e30",{"PayloadDigest":"AA"}]}`))
	secret, err := Encrypt(rand.Reader, []byte("x"), []PublicKey{m.encryption.Public()}, m.online)
	if err != nil {
		f.Fatal(err)
	}
	pub, _, err := NewPublication(secret)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pub)
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := VerifyEntry(raw, 0)
		if err != nil {
			return
		}
		if e.Identifier.IsZero() || e.Object == nil {
			t.Fatalf("verified entry without identifier or object: %+v", e)
		}
	})
}

func FuzzDecodeProfile(f *testing.F) {
	m := newTestMesh(f)
	p, _ := EncodePayload(m.profile)
	f.Add(p)
	f.Add(readTestdata(f, "seed002_ProfileAccount.json"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		for _, typ := range []string{TypeProfileMesh, TypeProfileAccount} {
			p := newProfile(typ)
			if DecodePayload(payload, p) == nil {
				_ = p.Validate(&Envelope{Payload: payload})
			}
		}
	})
}

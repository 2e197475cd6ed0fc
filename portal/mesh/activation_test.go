package mesh

import (
	"crypto/rand"
	"errors"
	"testing"
)

// activationDevice is a device profile with its private keys.
type activationDevice struct {
	profile             *ProfileDevice
	offline, encryption *PrivateKey
	request             *ConnectionRequest
}

func newActivationDevice(t *testing.T, parent UDF) *activationDevice {
	d := &activationDevice{offline: newKey(t, CurveEd448), encryption: newKey(t, CurveX448)}
	d.profile = &ProfileDevice{
		Profile:           Profile{KeyOfflineSignature: NewKeyData(d.offline.Public())},
		Description:       "phone",
		KeyEncryption:     NewKeyData(d.encryption.Public()),
		KeyAuthentication: NewKeyData(newKey(t, CurveX448).Public()),
	}
	env, err := SignObject(d.profile, d.offline)
	if err != nil {
		t.Fatal(err)
	}
	d.request = &ConnectionRequest{ParentUDF: parent.String(), Device: env}
	return d
}

// The whole activation: the administrator activates the device inside the
// connection result, the portal's verifier accepts the result, the device
// opens the activation, then decrypts what was encrypted to the account and
// signs as a device of the account.
func TestActivationEndToEnd(t *testing.T) {
	m := newTestMesh(t)
	meshEntry, err := VerifyEntry(entryOf(t, m.profile, m.offline), 0)
	if err != nil {
		t.Fatal(err)
	}
	lookup := Verifier{Lookup: func(id UDF) (*Entry, error) {
		if id.Equal(meshEntry.Identifier) {
			return meshEntry, nil
		}
		return nil, ErrUnknownKey
	}}
	dev := newActivationDevice(t, m.offline.UDF())
	act, err := Activate(rand.Reader, dev.profile, m.profile, m.online, m.encryption, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	res := &ConnectionResult{ConnectionRequest: *dev.request, Result: ResultAccepted, EnvelopedActivationAccount: act}
	e, err := lookup.Verify(entryOf(t, res, m.online))
	if err != nil {
		t.Fatalf("the portal's verifier refuses the result: %v", err)
	}
	got := e.Object.(*ConnectionResult).EnvelopedActivationAccount
	a, err := OpenActivation(got, dev.encryption, dev.profile, m.profile)
	if err != nil {
		t.Fatal(err)
	}
	if !a.AccountEncryption.Public().Equal(m.encryption.Public()) {
		t.Fatal("the activation does not hand over the account's encryption key")
	}

	// Data encrypted to the account decrypts on the device.
	msg, err := Encrypt(rand.Reader, []byte("for alice"), []PublicKey{m.encryption.Public()}, m.online)
	if err != nil {
		t.Fatal(err)
	}
	resolve, _ := authorityResolver(m.profile)
	if pt, _, err := msg.Decrypt([]*PrivateKey{a.AccountEncryption}, resolve); err != nil || string(pt) != "for alice" {
		t.Fatalf("the device cannot read the account's mail: %q, %v", pt, err)
	}

	// The device signs as a device of the account.
	signed, err := Sign([]byte("from the phone"), a.DeviceSignature)
	if err != nil {
		t.Fatal(err)
	}
	who, err := VerifyDeviceSignature(signed, a.Connection, m.profile)
	if err != nil || !who.Equal(dev.offline.UDF()) {
		t.Fatalf("device signature: %s, %v", who, err)
	}
	other := newTestMesh(t)
	if _, err := VerifyDeviceSignature(signed, a.Connection, other.profile); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("device signature checked against another account: %v, want ErrUnknownKey", err)
	}
	stranger, _ := Sign([]byte("from the phone"), newKey(t, CurveEd448))
	if _, err := VerifyDeviceSignature(stranger, a.Connection, m.profile); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("a stranger's signature: %v, want ErrBadSignature", err)
	}
}

func TestActivationRefused(t *testing.T) {
	m := newTestMesh(t)
	meshEntry, err := VerifyEntry(entryOf(t, m.profile, m.offline), 0)
	if err != nil {
		t.Fatal(err)
	}
	lookup := Verifier{Lookup: func(id UDF) (*Entry, error) {
		if id.Equal(meshEntry.Identifier) {
			return meshEntry, nil
		}
		return nil, ErrUnknownKey
	}}
	dev := newActivationDevice(t, m.offline.UDF())
	act, err := Activate(rand.Reader, dev.profile, m.profile, m.online, m.encryption, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	other := newActivationDevice(t, m.offline.UDF())
	if _, err := OpenActivation(act, other.encryption, other.profile, m.profile); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("another device opened the activation: %v, want ErrDecrypt", err)
	}
	if _, err := OpenActivation(act, dev.encryption, dev.profile, newTestMesh(t).profile); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("an activation checked against another account: %v, want ErrUnknownKey", err)
	}
	// Only the account's administrator can activate, and only with the
	// account's own encryption key.
	if _, err := Activate(rand.Reader, dev.profile, m.profile, newKey(t, CurveEd448), m.encryption); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("activation by a stranger: %v, want ErrUnknownKey", err)
	}
	if _, err := Activate(rand.Reader, dev.profile, m.profile, m.online, newKey(t, CurveX448)); !errors.Is(err, ErrIdentifierMismatch) {
		t.Fatalf("activation with another encryption key: %v, want ErrIdentifierMismatch", err)
	}
	// The portal refuses results whose activation is not for the device,
	// not signed by the account, or on a refusal.
	toOther, err := Activate(rand.Reader, other.profile, m.profile, m.online, m.encryption)
	if err != nil {
		t.Fatal(err)
	}
	notByAuthority, err := Encrypt(rand.Reader, []byte(`{"ActivationAccount":{}}`), []PublicKey{dev.encryption.Public()}, newKey(t, CurveEd448))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		result string
		act    *Envelope
		want   error
	}{
		{"an activation for another device", ResultAccepted, toOther, ErrMalformed},
		{"an activation not signed by the account", ResultAccepted, notByAuthority, ErrUnknownKey},
		{"an activation on a refusal", ResultRefused, act, ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := &ConnectionResult{ConnectionRequest: *dev.request, Result: c.result, EnvelopedActivationAccount: c.act}
			if _, err := lookup.Verify(entryOf(t, res, m.online)); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

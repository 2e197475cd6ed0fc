package portal_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// ConnectComplete stores an accepted result with the device's activation,
// and ConnectStatus hands it to the device, which opens it. An activation
// that is not for the device, not signed by the account, or on a refusal
// is refused and nothing is written (a portal must not keep keys for the
// wrong device, nor let a stranger slip keys into an account's result).
func TestConnectCompleteCarriesTheDevicesActivation(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{})
	offline, admin, enc := newKey(t, mesh.CurveEd448), newKey(t, mesh.CurveEd448), newKey(t, mesh.CurveX448)
	alice := &mesh.ProfileMesh{
		Profile: mesh.Profile{
			KeyOfflineSignature: mesh.NewKeyData(offline.Public()),
			KeysOnlineSignature: []mesh.KeyData{*mesh.NewKeyData(admin.Public())},
		},
		KeyEncryption: mesh.NewKeyData(enc.Public()),
	}
	_, err := p.client.CreateAccount(ctx, consented(t, "alice", entryOf(t, alice, offline), offline))
	mustStatus(t, err, portal.SuccessOK)
	devOffline, devEnc := newKey(t, mesh.CurveEd448), newKey(t, mesh.CurveX448)
	phone := &mesh.ProfileDevice{
		Profile:           mesh.Profile{KeyOfflineSignature: mesh.NewKeyData(devOffline.Public())},
		KeyEncryption:     mesh.NewKeyData(devEnc.Public()),
		KeyAuthentication: mesh.NewKeyData(newKey(t, mesh.CurveX448).Public()),
	}
	request := &mesh.ConnectionRequest{ParentUDF: offline.UDF().String(), Device: envelopeOf(t, phone, devOffline)}
	_, err = p.client.ConnectStart(ctx, &portal.ConnectStartRequest{SignedRequest: entryOf(t, request, devOffline), AccountID: "alice"})
	mustStatus(t, err, portal.SuccessOK)

	act, err := mesh.Activate(rand.Reader, phone, alice, admin, enc, "alice")
	if err != nil {
		t.Fatal(err)
	}
	toStranger, err := mesh.Encrypt(rand.Reader, []byte(`{"ActivationAccount":{}}`), []mesh.PublicKey{newKey(t, mesh.CurveX448).Public()}, admin)
	if err != nil {
		t.Fatal(err)
	}
	byStranger, err := mesh.Encrypt(rand.Reader, []byte(`{"ActivationAccount":{}}`), []mesh.PublicKey{devEnc.Public()}, newKey(t, mesh.CurveEd448))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		result string
		act    *mesh.Envelope
		status int
		says   string
	}{
		{"an activation for another key", mesh.ResultAccepted, toStranger, portal.ClientBadRequest, "EnvelopedActivationAccount"},
		{"an activation by a stranger", mesh.ResultAccepted, byStranger, portal.ClientUnauthorized, "EnvelopedActivationAccount"},
		{"an activation on a refusal", mesh.ResultRefused, act, portal.ClientBadRequest, "EnvelopedActivationAccount"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := p.log.Size()
			res := &mesh.ConnectionResult{ConnectionRequest: *request, Result: c.result, EnvelopedActivationAccount: c.act}
			_, err := p.client.ConnectComplete(ctx, &portal.ConnectCompleteRequest{Result: entryOf(t, res, admin), AccountID: "alice"})
			pe := mustStatus(t, err, c.status)
			if !strings.Contains(pe.Description, c.says) {
				t.Errorf("StatusDescription %q does not say %q", pe.Description, c.says)
			}
			if p.log.Size() != before {
				t.Errorf("the log grew from %d to %d", before, p.log.Size())
			}
		})
	}

	res := &mesh.ConnectionResult{ConnectionRequest: *request, Result: mesh.ResultAccepted, EnvelopedActivationAccount: act}
	_, err = p.client.ConnectComplete(ctx, &portal.ConnectCompleteRequest{Result: entryOf(t, res, admin), AccountID: "alice"})
	mustStatus(t, err, portal.SuccessOK)
	st, err := p.client.ConnectStatus(ctx, &portal.ConnectStatusRequest{AccountID: "alice", DeviceID: devOffline.UDF().String()})
	mustStatus(t, err, portal.SuccessOK)
	_, env, err := mesh.ParseEntry(st.Result)
	if err != nil {
		t.Fatal(err)
	}
	var got mesh.ConnectionResult
	if err := mesh.DecodePayload(env.Payload, &got); err != nil {
		t.Fatal(err)
	}
	a, err := mesh.OpenActivation(got.EnvelopedActivationAccount, devEnc, phone, alice)
	if err != nil {
		t.Fatalf("the device cannot open the activation ConnectStatus returned: %v", err)
	}
	if !a.AccountEncryption.Public().Equal(enc.Public()) {
		t.Fatal("the activation does not carry the account's encryption key")
	}
}

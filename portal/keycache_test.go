package portal_test

import (
	"testing"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// newDeviceEntry returns a signed ProfileDevice entry, distinct each call.
func newDeviceEntry(t *testing.T) portal.Entry {
	t.Helper()
	off := newKey(t, mesh.CurveEd448)
	dev := &mesh.ProfileDevice{
		Profile:           mesh.Profile{KeyOfflineSignature: mesh.NewKeyData(off.Public())},
		KeyEncryption:     mesh.NewKeyData(newKey(t, mesh.CurveX448).Public()),
		KeyAuthentication: mesh.NewKeyData(newKey(t, mesh.CurveX448).Public()),
	}
	return entryOf(t, dev, off)
}

// Once an account's profile is updated, the AccountProofs of a Publish are
// checked against the keys of the new version, not those the portal
// cached from the old one: a proof signed by an online key the update
// removed is refused, one signed by the key it added is accepted.
func TestAccountProofsUseTheKeysOfTheUpdatedProfile(t *testing.T) {
	p := newTestPortal(t, portal.Config{})
	u := newUser(t, "keys@example.com")
	mustStatus(t, createErr(t, p, "keys", entryOf(t, u.profileAccount, u.acctOffline), u.acctOffline), portal.SuccessOK)
	old := u.acctOnline
	// Twice, so that the second Publish is served from the cache.
	for range 2 {
		mustStatus(t, publishFor(t, p.client, "keys", newDeviceEntry(t), old), portal.SuccessOK)
	}

	added := newKey(t, mesh.CurveEd448)
	u.profileAccount.KeysOnlineSignature = []mesh.KeyData{*mesh.NewKeyData(added.Public())}
	_, err := p.client.Publish(t.Context(), &portal.PublishRequest{Entry: entryOf(t, u.profileAccount, u.acctOffline), AccountID: "keys"})
	mustStatus(t, err, portal.SuccessOK)

	mustStatus(t, publishFor(t, p.client, "keys", newDeviceEntry(t), old), portal.ClientUnauthorized)
	for range 2 {
		mustStatus(t, publishFor(t, p.client, "keys", newDeviceEntry(t), added), portal.SuccessOK)
	}
	mustStatus(t, publishFor(t, p.client, "keys", newDeviceEntry(t), u.acctOffline), portal.SuccessOK)
	mustStatus(t, publishFor(t, p.client, "keys", newDeviceEntry(t), old), portal.ClientUnauthorized)
}

// createErr creates account with profile, consented to by key.
func createErr(t *testing.T, p *testPortal, account string, profile portal.Entry, key *mesh.PrivateKey) error {
	t.Helper()
	_, err := p.client.CreateAccount(t.Context(), consented(t, account, profile, key))
	return err
}

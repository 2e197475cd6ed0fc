package portal_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// Publish needs an account of the portal bound to what is published: the
// account's own profile (or the ProfileMesh its ProfileAccount names) by
// its signatures alone, anything else with an AccountProof of the account.
func TestPublishNeedsAnAccountBoundToTheEntry(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{})
	alice, bob := newUser(t, "alice@example.com"), newUser(t, "bob@example.com")
	_, err := p.client.CreateAccount(ctx, consented(t, "alice", entryOf(t, alice.profileAccount, alice.acctOffline), alice.acctOffline))
	mustStatus(t, err, portal.SuccessOK)
	_, err = p.client.CreateAccount(ctx, consented(t, "bob", entryOf(t, bob.profileMesh, bob.meshOffline), bob.meshOffline))
	mustStatus(t, err, portal.SuccessOK)
	dev, _ := newDevice(t, "phone")
	device, err := mesh.MarshalEntry(mesh.TypeProfileDevice, dev)
	if err != nil {
		t.Fatal(err)
	}
	escrow, _, err := mesh.Escrow(rand.Reader, []byte("secret key bytes"), 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	stranger := newUser(t, "stranger@example.com")
	publish := func(req *portal.PublishRequest) error {
		_, err := p.client.Publish(ctx, req)
		return err
	}
	for _, tc := range []struct {
		name   string
		req    *portal.PublishRequest
		status int
		says   string
	}{
		{"a profile for no account", &portal.PublishRequest{Entry: entryOf(t, stranger.profileMesh, stranger.meshOffline)},
			401, "AccountID is missing"},
		{"a profile for an unknown account", &portal.PublishRequest{Entry: entryOf(t, stranger.profileMesh, stranger.meshOffline), AccountID: "nobody"},
			404, "does not exist"},
		{"someone else's profile for an account", &portal.PublishRequest{Entry: entryOf(t, stranger.profileMesh, stranger.meshOffline), AccountID: "alice"},
			401, "Proof is missing"},
		{"a device profile without a proof", &portal.PublishRequest{Entry: device, AccountID: "alice"},
			401, "Proof is missing"},
		{"a device profile with another account's proof", &portal.PublishRequest{Entry: device, AccountID: "alice",
			Proof: accountProof(t, "alice", portal.TxPublish, device, bob.meshOnline)}, 401, "unknown key"},
		{"a device profile with a proof for another entry", &portal.PublishRequest{Entry: device, AccountID: "alice",
			Proof: accountProof(t, "alice", portal.TxPublish, entryOf(t, stranger.profileMesh, stranger.meshOffline), alice.acctOnline)}, 401, "another entry"},
		{"an escrow entry without a proof", &portal.PublishRequest{Entry: escrowEntry(t, escrow), AccountID: "bob"},
			401, "Proof is missing"},
	} {
		size := p.log.Size()
		if pe := mustStatus(t, publish(tc.req), tc.status); !strings.Contains(pe.Description, tc.says) {
			t.Errorf("%s: %q does not say %q", tc.name, pe.Description, tc.says)
		}
		if p.log.Size() != size {
			t.Errorf("%s: a refused publish was written", tc.name)
		}
	}

	// The ProfileMesh that Alice's ProfileAccount names is hers to publish.
	mustStatus(t, publish(&portal.PublishRequest{Entry: entryOf(t, alice.profileMesh, alice.meshOffline), AccountID: "alice"}), portal.SuccessOK)
	// A device profile and an escrow entry, each vouched for by a key of
	// the account's profile.
	mustStatus(t, publishFor(t, p.client, "alice", device, alice.acctOnline), portal.SuccessOK)
	mustStatus(t, publishFor(t, p.client, "bob", escrowEntry(t, escrow), bob.meshOffline), portal.SuccessOK)
	// The device profile is Alice's: Bob cannot publish it for himself, even
	// with a proof of his own.
	size := p.log.Size()
	if pe := mustStatus(t, publishFor(t, p.client, "bob", device, bob.meshOnline), portal.ClientUnauthorized); !strings.Contains(pe.Description, "another account") {
		t.Errorf("a device profile published again for another account: %q", pe.Description)
	}
	if p.log.Size() != size {
		t.Fatal("a refused publish was written")
	}
	// A closed account publishes nothing.
	proof := entryOf(t, &portal.DeleteProof{Account: "bob", Signed: time.Now()}, bob.meshOnline)
	_, err = p.client.DeleteAccount(ctx, &portal.DeleteRequest{Account: "bob", Proof: proof})
	mustStatus(t, err, portal.SuccessOK)
	mustStatus(t, publish(&portal.PublishRequest{Entry: entryOf(t, bob.profileMesh, bob.meshOnline), AccountID: "bob"}), portal.NotFound)
}

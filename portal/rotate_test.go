package portal_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// rotation is an account bound to a ProfileMesh whose first version v1
// lists the administration key a, and whose second version v2, signed by
// a, replaces a with b.
type rotation struct {
	account string
	u       *user
	a, b    *mesh.PrivateKey
	v1, v2  portal.Entry
	v2Seq   uint64
}

func rotate(t *testing.T, p *testPortal, account string) *rotation {
	t.Helper()
	ctx := context.Background()
	r := &rotation{account: account, u: newUser(t, account+"@example.com")}
	r.a, r.b = r.u.meshOnline, newKey(t, mesh.CurveEd448)
	r.v1 = entryOf(t, r.u.profileMesh, r.u.meshOffline)
	created, err := p.client.CreateAccount(ctx, consented(t, account, r.v1, r.u.meshOffline))
	if err != nil || created.Status != portal.SuccessCreated {
		t.Fatalf("CreateAccount: %+v, %v; want %d", created, err, portal.SuccessCreated)
	}
	r.u.profileMesh.KeysOnlineSignature = []mesh.KeyData{*mesh.NewKeyData(r.b.Public())}
	r.v2 = entryOf(t, r.u.profileMesh, r.a)
	updated, err := p.client.Publish(ctx, &portal.PublishRequest{Entry: r.v2, AccountID: account})
	if err != nil || updated.Status != portal.SuccessUpdated {
		t.Fatalf("an update signed by the online key it rotates out: %+v, %v; want %d", updated, err, portal.SuccessUpdated)
	}
	r.v2Seq = p.log.Size() - 1
	return r
}

func (r *rotation) publish(t *testing.T, p *testPortal, key *mesh.PrivateKey) error {
	_, err := p.client.Publish(context.Background(), &portal.PublishRequest{Entry: entryOf(t, r.u.profileMesh, key), AccountID: r.account})
	return err
}

// connect asks to connect a new device to the account and answers it with
// a result signed by key.
func (r *rotation) connect(t *testing.T, p *testPortal, key *mesh.PrivateKey) error {
	t.Helper()
	ctx := context.Background()
	dev, devKey := newDevice(t, "device")
	request := &mesh.ConnectionRequest{ParentUDF: r.u.meshOffline.UDF().String(), Device: dev}
	_, err := p.client.ConnectStart(ctx, &portal.ConnectStartRequest{AccountID: r.account, SignedRequest: entryOf(t, request, devKey)})
	mustStatus(t, err, portal.SuccessOK)
	result := &mesh.ConnectionResult{ConnectionRequest: *request, Result: mesh.ResultAccepted}
	_, err = p.client.ConnectComplete(ctx, &portal.ConnectCompleteRequest{AccountID: r.account, Result: entryOf(t, result, key)})
	return err
}

func TestAnAdministrationKeyCanRotateItselfOutButNotSignAfterwards(t *testing.T) {
	p := newTestPortal(t, portal.Config{})
	r := rotate(t, p, "rotate")
	// A is gone: it can no longer sign an update, B can.
	size := p.log.Size()
	r.u.profileMesh.Names = []string{"after rotation"}
	var pe *portal.Error
	if err := r.publish(t, p, r.a); !errors.As(err, &pe) || pe.Status != portal.ClientUnauthorized {
		t.Fatalf("an update signed by the rotated-out key: %v, want 401", err)
	}
	if p.log.Size() != size {
		t.Fatal("the refused update was written")
	}
	if err := r.publish(t, p, r.b); err != nil {
		t.Fatalf("an update signed by the new online key: %v", err)
	}
}

// The version that A signed to rotate itself out stays the account's
// authority: B and the offline key complete connections and delete the
// account, A does not.
func TestAVersionSignedByARotatedOutKeyStaysUsable(t *testing.T) {
	p := newTestPortal(t, portal.Config{})
	r := rotate(t, p, "rotated")
	if err := r.connect(t, p, r.b); err != nil {
		t.Fatalf("ConnectComplete signed by B after A rotated itself out: %v", err)
	}
	if err := r.connect(t, p, r.u.meshOffline); err != nil {
		t.Fatalf("ConnectComplete signed by the offline key after A rotated itself out: %v", err)
	}
	mustStatus(t, r.connect(t, p, r.a), portal.ClientUnauthorized)
	pending, err := p.client.ConnectPending(context.Background(), &portal.ConnectPendingRequest{AccountID: r.account,
		Proof: accountProof(t, r.account, portal.TxConnectPending, nil, r.b)})
	mustStatus(t, err, portal.SuccessOK)
	if len(pending.Pending) != 1 {
		t.Fatalf("ConnectPending with B's proof: %d pending, want the one A could not answer", len(pending.Pending))
	}
	proof := entryOf(t, &portal.DeleteProof{Account: r.account, Signed: time.Now()}, r.b)
	_, err = p.client.DeleteAccount(context.Background(), &portal.DeleteRequest{Account: r.account, Proof: proof})
	mustStatus(t, err, portal.SuccessOK)
}

// An older version replayed after an update is refused with 409 naming the
// registered version, through Publish and through CreateAccount, before
// and after a restart; the rotated-out key A stays unable to sign.
func TestAReplayedOlderVersionIsRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := openPortalAt(t, testOrigin, dir, portal.Config{})
	r := rotate(t, p, "replay")
	check := func(p *testPortal, when string) {
		t.Helper()
		size := p.log.Size()
		for _, tc := range []struct {
			name string
			send func() error
		}{
			{"Publish of v1", func() error {
				_, err := p.client.Publish(ctx, &portal.PublishRequest{Entry: r.v1, AccountID: r.account})
				return err
			}},
			{"CreateAccount with v1", func() error {
				// A, an online key of v1, consents: v1 is still refused.
				_, err := p.client.CreateAccount(ctx, consented(t, "thief", r.v1, r.a))
				return err
			}},
		} {
			pe := mustStatus(t, tc.send(), portal.AlreadyExists)
			if want := fmt.Sprintf("registered version (record %d", r.v2Seq); !strings.Contains(pe.Description, want) {
				t.Errorf("%s %s: %q does not say %q", when, tc.name, pe.Description, want)
			}
		}
		if p.log.Size() != size {
			t.Fatalf("%s: a replay was written", when)
		}
		got, err := p.client.Get(ctx, &portal.GetRequest{Identifier: r.u.meshOffline.UDF().String()})
		mustStatus(t, err, portal.SuccessOK)
		if !jsonEqual(got.DataItems[0].Entry, r.v2) {
			t.Fatalf("%s: Get returns another version than v2", when)
		}
		mustStatus(t, r.connect(t, p, r.a), portal.ClientUnauthorized)
	}
	check(p, "before the restart")
	if err := p.log.Close(); err != nil {
		t.Fatal(err)
	}
	check(openPortalAt(t, testOrigin, dir, portal.Config{}), "after the restart")
}

// A version dated further ahead than the portal's clock allows is refused,
// so that no version can outrank every later one.
func TestAVersionFromTheFutureIsRefused(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{})
	u := newUser(t, "future@example.com")
	future := time.Now().Add(time.Hour).UTC()
	u.profileMesh.Updated = &future
	env := envelopeOf(t, u.profileMesh, u.meshOffline)
	raw, err := mesh.MarshalEntry(mesh.TypeProfileMesh, env)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.client.CreateAccount(ctx, &portal.CreateRequest{Account: "future", Profile: raw})
	if pe := mustStatus(t, err, portal.ClientBadRequest); !strings.Contains(pe.Description, "in the future") {
		t.Fatalf("CreateAccount with a version from the future: %q", pe.Description)
	}
	u.profileMesh.Updated = nil
	_, err = p.client.CreateAccount(ctx, consented(t, "future", entryOf(t, u.profileMesh, u.meshOffline), u.meshOffline))
	mustStatus(t, err, portal.SuccessOK)
	u.profileMesh.Updated = &future
	raw, err = mesh.MarshalEntry(mesh.TypeProfileMesh, envelopeOf(t, u.profileMesh, u.meshOnline))
	if err != nil {
		t.Fatal(err)
	}
	size := p.log.Size()
	_, err = p.client.Publish(ctx, &portal.PublishRequest{Entry: raw, AccountID: "future"})
	mustStatus(t, err, portal.ClientBadRequest)
	if p.log.Size() != size {
		t.Fatal("a version from the future was written")
	}
}

package portal_test

import (
	"context"
	"errors"
	"testing"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

func TestAnAdministrationKeyCanRotateItselfOutButNotSignAfterwards(t *testing.T) {
	p := newTestPortal(t, portal.Config{})
	ctx := context.Background()
	u := newUser(t, "rotate@example.com")
	publish := func(key *mesh.PrivateKey) error {
		_, err := p.client.Publish(ctx, &portal.PublishRequest{Entry: entryOf(t, u.profileMesh, key)})
		return err
	}
	if err := publish(u.meshOffline); err != nil {
		t.Fatal(err)
	}
	// The online key A signs a version that replaces A with B.
	oldOnline, newOnline := u.meshOnline, newKey(t, mesh.CurveEd448)
	u.profileMesh.KeysOnlineSignature = []mesh.KeyData{*mesh.NewKeyData(newOnline.Public())}
	if err := publish(oldOnline); err != nil {
		t.Fatalf("an update signed by the registered online key that it rotates out: %v", err)
	}
	// A is gone: it can no longer sign an update, B can.
	size := p.log.Size()
	u.profileMesh.Names = []string{"after rotation"}
	var pe *portal.Error
	if err := publish(oldOnline); !errors.As(err, &pe) || pe.Status != portal.ClientUnauthorized {
		t.Fatalf("an update signed by the rotated-out key: %v, want 401", err)
	}
	if p.log.Size() != size {
		t.Fatal("the refused update was written")
	}
	if err := publish(newOnline); err != nil {
		t.Fatalf("an update signed by the new online key: %v", err)
	}
}

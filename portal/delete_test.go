package portal_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/intermesh/intermesh/portal"
)

func TestADeleteProofSignedBeforeTheAccountWasCreatedIsRefused(t *testing.T) {
	p := newTestPortal(t, portal.Config{})
	ctx := context.Background()
	u := newUser(t, "replay@example.com")
	profile := entryOf(t, u.profileAccount, u.acctOffline)
	if _, err := p.client.CreateAccount(ctx, consented(t, "replay", profile, u.acctOffline)); err != nil {
		t.Fatal(err)
	}
	del := func(signed time.Time) error {
		proof := entryOf(t, &portal.DeleteProof{Account: "replay", Signed: signed}, u.acctOnline)
		_, err := p.client.DeleteAccount(ctx, &portal.DeleteRequest{Account: "replay", Proof: proof})
		return err
	}
	size := p.log.Size()
	for _, tc := range []struct {
		name   string
		signed time.Time
		status int
	}{
		// A proof of an earlier account of the same name, taken from the
		// public log, is one signed before this account existed.
		{"a proof signed well before the account was created", time.Now().Add(-10 * time.Minute), portal.ClientUnauthorized},
		{"a proof without a time", time.Time{}, portal.ClientBadRequest},
		{"a proof from the future", time.Now().Add(time.Hour), portal.ClientBadRequest},
	} {
		var pe *portal.Error
		if err := del(tc.signed); !errors.As(err, &pe) || pe.Status != tc.status {
			t.Errorf("%s: %v, want status %d", tc.name, err, tc.status)
		}
	}
	if p.log.Size() != size {
		t.Fatal("a refused delete was written")
	}
	if err := del(time.Now()); err != nil {
		t.Fatalf("a fresh proof: %v", err)
	}
}

package portal_test

import (
	"errors"
	"testing"
	"time"

	"github.com/intermesh/intermesh/portal"
)

// TestVerifyConsentChecksABindingFromTheLogAlone: what a client does with
// an Account record: a binding with alice's proof, or with a ProfileAccount
// listing the name, is consented; bob's name on alice's profile without
// her proof, or with a proof for another name, transaction or profile, or
// signed by another key, is not.
func TestVerifyConsentChecksABindingFromTheLogAlone(t *testing.T) {
	alice, mallory := newUser(t, "alice@example.com"), newUser(t, "mallory@example.com")
	profile := entryOf(t, alice.profileMesh, alice.meshOffline)
	other := entryOf(t, alice.profileMesh, alice.meshOffline)
	proof := func(account, tx string, entry portal.Entry, mal bool) portal.Entry {
		key := alice.meshOnline
		if mal {
			key = mallory.meshOffline
		}
		p, err := portal.SignAccountProof("anywhere.example", account, tx, entry, time.Now().Add(-48*time.Hour), key)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if how, err := portal.VerifyConsent("bob", profile, proof("Bob", portal.TxCreateAccount, profile, false)); err != nil {
		t.Fatalf("alice's proof: %v", err)
	} else if how == "" {
		t.Error("no words on how alice consented")
	}
	bob := newUser(t, "Bob")
	bob.profileAccount.AccountAddresses = []string{"Bob"}
	if _, err := portal.VerifyConsent("bob", entryOf(t, bob.profileAccount, bob.acctOffline), nil); err != nil {
		t.Errorf("a ProfileAccount listing the name: %v", err)
	}
	for name, tc := range map[string]struct{ profile, proof portal.Entry }{
		"no proof":                 {profile, nil},
		"another account's proof":  {profile, proof("carol", portal.TxCreateAccount, profile, false)},
		"another transaction":      {profile, proof("bob", portal.TxPublish, profile, false)},
		"another profile's digest": {profile, proof("bob", portal.TxCreateAccount, other, false)},
		"mallory's signature":      {profile, proof("bob", portal.TxCreateAccount, profile, true)},
		"not an AccountProof":      {profile, profile},
		"not a profile":            {portal.Entry(`{"x":1}`), nil},
	} {
		if _, err := portal.VerifyConsent("bob", tc.profile, tc.proof); !errors.Is(err, portal.ErrNoConsent) {
			t.Errorf("%s: %v, want ErrNoConsent", name, err)
		}
	}
}

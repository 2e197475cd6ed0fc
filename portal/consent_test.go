package portal_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// lastPortalEntry returns the PortalEntry of the last record of p's log.
func lastPortalEntry(t *testing.T, p *testPortal) *portal.PortalEntry {
	t.Helper()
	rec, err := p.log.Get(p.log.Size() - 1)
	if err != nil {
		t.Fatal(err)
	}
	pe, err := portal.UnmarshalPortalEntry(rec.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return pe
}

// Nobody binds alice's public ProfileMesh to a name of their own: without
// her consent CreateAccount is refused, says what is missing, and logs
// nothing; with an AccountProof signed by her offline key it works, and the
// Account record keeps the proof and its signer.
func TestABindingWithoutTheProfilesConsentIsRefused(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{})
	alice := newUser(t, "alice@example.com")
	profile := entryOf(t, alice.profileMesh, alice.meshOffline)
	size := p.log.Size()
	_, err := p.client.CreateAccount(ctx, &portal.CreateRequest{Account: "bob", Profile: profile})
	pe := mustStatus(t, err, portal.ClientUnauthorized)
	for _, want := range []string{"CreateRequest.Proof is missing", "AccountProof", `"CreateAccount"`, testService} {
		if !strings.Contains(pe.Description, want) {
			t.Errorf("refusal %q does not say %q", pe.Description, want)
		}
	}
	if p.log.Size() != size {
		t.Fatal("a refused binding was logged")
	}
	req := consented(t, "bob", profile, alice.meshOffline)
	_, err = p.client.CreateAccount(ctx, req)
	mustStatus(t, err, portal.SuccessOK)
	got := lastPortalEntry(t, p)
	if got.Transaction != portal.TxCreateAccount || !jsonEqual(got.Proof, req.Proof) || got.ProofSigner != alice.meshOffline.UDF().String() {
		t.Fatalf("the Account record does not keep the consent: %+v", got)
	}
}

// A consent proof counts only for the account, portal, transaction and
// profile it names, and only signed by a key of that profile; one of the
// profile's online keys will do.
func TestAConsentProofCountsOnlyForWhatItNames(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{})
	alice, mallory := newUser(t, "alice@example.com"), newUser(t, "mallory@example.com")
	profile := entryOf(t, alice.profileMesh, alice.meshOffline)
	other := entryOf(t, alice.profileMesh, alice.meshOffline)
	sign := func(service, account, tx string, entry portal.Entry, key *mesh.PrivateKey) portal.Entry {
		proof, err := portal.SignAccountProof(service, account, tx, entry, time.Now(), key)
		if err != nil {
			t.Fatal(err)
		}
		return proof
	}
	for _, tc := range []struct {
		name  string
		proof portal.Entry
		want  string
	}{
		{"a proof for another account is refused", sign(testService, "carol", portal.TxCreateAccount, profile, alice.meshOffline), `for account "carol"`},
		{"a proof for another portal is refused", sign("elsewhere.example", "bob", portal.TxCreateAccount, profile, alice.meshOffline), `for portal "elsewhere.example"`},
		{"a proof for another transaction is refused", sign(testService, "bob", portal.TxPublish, profile, alice.meshOffline), `for transaction "Publish"`},
		{"a proof for another entry is refused", sign(testService, "bob", portal.TxCreateAccount, other, alice.meshOffline), "another entry"},
		{"a proof for no entry is refused", sign(testService, "bob", portal.TxCreateAccount, nil, alice.meshOffline), "another entry"},
		{"a proof signed by another key is refused", sign(testService, "bob", portal.TxCreateAccount, profile, mallory.meshOffline), "CreateRequest.Proof"},
		{"a proof signed too long ago is refused", mustSign(t, "bob", profile, time.Now().Add(-time.Hour), alice.meshOffline), "sign a fresh one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := p.log.Size()
			_, err := p.client.CreateAccount(ctx, &portal.CreateRequest{Account: "bob", Profile: profile, Proof: tc.proof})
			if pe := mustStatus(t, err, portal.ClientUnauthorized); !strings.Contains(pe.Description, tc.want) {
				t.Errorf("refusal %q does not say %q", pe.Description, tc.want)
			}
			if p.log.Size() != size {
				t.Fatal("a refused binding was logged")
			}
		})
	}
	_, err := p.client.CreateAccount(ctx, consented(t, "BOB", profile, alice.meshOnline))
	mustStatus(t, err, portal.SuccessOK)
	if got := lastPortalEntry(t, p); got.ProofSigner != alice.meshOnline.UDF().String() {
		t.Fatalf("ProofSigner %q, want the online key %s", got.ProofSigner, alice.meshOnline.UDF())
	}
}

// mustSign signs a CreateAccount AccountProof for a test portal at signed.
func mustSign(t *testing.T, account string, entry portal.Entry, signed time.Time, key *mesh.PrivateKey) portal.Entry {
	t.Helper()
	proof, err := portal.SignAccountProof(testService, account, portal.TxCreateAccount, entry, signed, key)
	if err != nil {
		t.Fatal(err)
	}
	return proof
}

// A ProfileAccount whose signed AccountAddresses list the name (compared
// canonically) consents by itself; one that does not list it needs a proof.
func TestAProfileAccountListingTheNameNeedsNoProof(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{})
	bob := newUser(t, "Bob")
	_, err := p.client.CreateAccount(ctx, &portal.CreateRequest{Account: "bob", Profile: entryOf(t, bob.profileAccount, bob.acctOffline)})
	mustStatus(t, err, portal.SuccessOK)
	if got := lastPortalEntry(t, p); len(got.Proof) != 0 || got.ProofSigner != "" {
		t.Fatalf("an Account record consented by its addresses has a proof: %+v", got)
	}
	size := p.log.Size()
	_, err = p.client.CreateAccount(ctx, &portal.CreateRequest{Account: "robert", Profile: entryOf(t, bob.profileAccount, bob.acctOffline)})
	if pe := mustStatus(t, err, portal.ClientUnauthorized); !strings.Contains(pe.Description, "AccountAddresses") {
		t.Errorf("refusal %q does not say the profile does not list the name", pe.Description)
	}
	if p.log.Size() != size {
		t.Fatal("a refused binding was logged")
	}
	_, err = p.client.CreateAccount(ctx, consented(t, "robert", entryOf(t, bob.profileAccount, bob.acctOffline), bob.acctOnline))
	mustStatus(t, err, portal.SuccessOK)
}

package portal_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// ConnectPending reveals an account's pending requests only to a holder of
// a key of the account's profile, and its page keys can be neither forged
// nor moved to another account.
func TestConnectPendingNeedsAProofOfTheAccountsKey(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{})
	alice, bob := newUser(t, "alice@example.com"), newUser(t, "bob@example.com")
	for name, u := range map[string]*user{"alice": alice, "bob": bob} {
		_, err := p.client.CreateAccount(ctx, consented(t, name, entryOf(t, u.profileAccount, u.acctOffline), u.acctOffline))
		mustStatus(t, err, portal.SuccessOK)
	}
	for range 3 {
		dev, devKey := newDevice(t, "ring")
		request := &mesh.ConnectionRequest{ParentUDF: alice.accountUDF(), Device: dev}
		_, err := p.client.ConnectStart(ctx, &portal.ConnectStartRequest{AccountID: "alice", SignedRequest: entryOf(t, request, devKey)})
		mustStatus(t, err, portal.SuccessOK)
	}
	stranger := newKey(t, mesh.CurveEd448)
	proofFor := func(service, account, tx string, signed time.Time, key *mesh.PrivateKey) portal.Entry {
		e, err := portal.SignAccountProof(service, account, tx, nil, signed, key)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	proof := func(account, tx string, signed time.Time, key *mesh.PrivateKey) portal.Entry {
		return proofFor(testService, account, tx, signed, key)
	}
	now := time.Now()
	valid := proof("alice", portal.TxConnectPending, now, alice.acctOnline)
	_, env, err := mesh.ParseEntry(valid)
	if err != nil {
		t.Fatal(err)
	}
	env.Trailer.Signatures[0].Value[3] ^= 1
	tampered, err := mesh.MarshalEntry("AccountProof", env)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		proof  any
		status int
		says   string
	}{
		{"no proof", nil, 401, "Proof is missing"},
		{"a stranger's proof", proof("alice", portal.TxConnectPending, now, stranger), 401, "unknown key"},
		{"a proof signed by another account's key", proof("alice", portal.TxConnectPending, now, bob.acctOnline), 401, "unknown key"},
		{"a proof for another account", proof("bob", portal.TxConnectPending, now, alice.acctOnline), 401, "is for account \"bob\""},
		{"a proof for another portal", proofFor("other.example", "alice", portal.TxConnectPending, now, alice.acctOnline), 401, `is for portal "other.example", not this portal "portal.test"`},
		{"a proof that names no portal", entryOf(t, &proofWithoutPortal{Account: "alice", Transaction: portal.TxConnectPending, Signed: now}, alice.acctOnline), 401, "names no Portal"},
		{"a proof for another transaction", proof("alice", portal.TxPublish, now, alice.acctOnline), 401, "is for transaction"},
		{"a stale proof", proof("alice", portal.TxConnectPending, now.Add(-10*time.Minute), alice.acctOnline), 401, "sign a fresh one"},
		{"a proof from the future", proof("alice", portal.TxConnectPending, now.Add(10*time.Minute), alice.acctOnline), 401, "sign a fresh one"},
		{"a delete proof", entryOf(t, &portal.DeleteProof{Account: "alice", Signed: now}, alice.acctOnline), 400, "AccountProof"},
		{"a tampered proof", json.RawMessage(tampered), 0, "ConnectPendingRequest.Proof"},
		{"a proof that is not an entry", []int{1}, 400, "Mesh entry"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := map[string]any{"AccountID": "alice"}
			if tc.proof != nil {
				req["Proof"] = tc.proof
			}
			_, resp := p.post(t, wire(t, "ConnectPendingRequest", req), nil)
			if (tc.status != 0 && resp.Status != tc.status) || resp.Status < 400 || resp.Status > 499 {
				t.Errorf("Status %d (%s), want %d", resp.Status, resp.StatusDescription, tc.status)
			}
			if !strings.Contains(resp.StatusDescription, tc.says) {
				t.Errorf("StatusDescription %q does not say %q", resp.StatusDescription, tc.says)
			}
		})
	}

	// With the proof, pages of one entry, each continuing where the last
	// stopped.
	page := &portal.SearchConstraints{MaxEntries: 1}
	first, err := p.client.ConnectPending(ctx, &portal.ConnectPendingRequest{AccountID: "alice", Proof: valid, SearchConstraints: page})
	mustStatus(t, err, portal.SuccessOK)
	if len(first.Pending) != 1 || first.PageKey == "" {
		t.Fatalf("first page: %d pending, page key %q", len(first.Pending), first.PageKey)
	}
	second, err := p.client.ConnectPending(ctx, &portal.ConnectPendingRequest{AccountID: "alice", Proof: valid,
		SearchConstraints: &portal.SearchConstraints{MaxEntries: 1, PageKey: first.PageKey}})
	mustStatus(t, err, portal.SuccessOK)
	if len(second.Pending) != 1 || jsonEqual(second.Pending[0], first.Pending[0]) {
		t.Fatal("the second page does not continue the first")
	}

	// Bob, with his own valid proof, cannot read Alice's requests with her
	// page key, nor with a key he made up, nor with hers edited.
	bobProof := proof("bob", portal.TxConnectPending, now, bob.acctOnline)
	forged := base64.RawURLEncoding.EncodeToString([]byte(`{"t":"ConnectPending","n":"alice","s":0}`))
	raw, _ := base64.RawURLEncoding.DecodeString(first.PageKey)
	edited := []byte(strings.Replace(string(raw), `"n":"alice"`, `"n":"bob"`, 1))
	for _, tc := range []struct{ name, key, says string }{
		{"Alice's page key", first.PageKey, "another account"},
		{"a forged page key", forged, "not a page key this portal issued"},
		{"Alice's page key edited", base64.RawURLEncoding.EncodeToString(edited), "not a page key this portal issued"},
	} {
		_, err := p.client.ConnectPending(ctx, &portal.ConnectPendingRequest{AccountID: "bob", Proof: bobProof,
			SearchConstraints: &portal.SearchConstraints{PageKey: tc.key}})
		if pe := mustStatus(t, err, portal.ClientBadRequest); !strings.Contains(pe.Description, tc.says) {
			t.Errorf("%s: %q does not say %q", tc.name, pe.Description, tc.says)
		}
	}
	// A forged Get page key is refused too.
	getKey := base64.RawURLEncoding.EncodeToString([]byte(`{"t":"Get","n":"` + alice.accountUDF() + `","s":0}`))
	_, resp := p.post(t, wire(t, "GetRequest", map[string]any{"Multiple": true, "SearchConstraints": map[string]any{"PageKey": getKey}}), http.Header{})
	if resp.Status != portal.ClientBadRequest {
		t.Fatalf("Get with a forged page key: %d %s", resp.Status, resp.StatusDescription)
	}
}

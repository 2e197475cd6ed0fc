package main

import (
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/portal/mesh"
	"github.com/intermesh/intermesh/testnet"
)

// TestGetVerifyRefusesABindingWithoutTheProfilesConsent: a lying origin
// logs an Account record binding bob's name to alice's public profile
// without her consent (its portal would refuse the CreateAccount, so it
// appends the record itself); the federation certifies it, since members
// do not check consent, and 'get --account bob --verify' refuses it,
// saying why, while alice's own account is proved.
func TestGetVerifyRefusesABindingWithoutTheProfilesConsent(t *testing.T) {
	net := startAuditNet(t)
	c, err := client.New(net.PortalURL(0))
	if err != nil {
		t.Fatal(err)
	}
	alice := newVersionedProfile(t)
	id := alice.key.Public().UDF().String()
	t0 := time.Now().UTC().Truncate(time.Second)
	entry := alice.version(t, t0)
	aliceAccount, bobAccount := net.Account(0, "alice"), net.Account(0, "bob")
	if _, err := testnet.CreateAccountWith(t.Context(), c, aliceAccount, entry, alice.key); err != nil {
		t.Fatal(err)
	}
	pe := &portal.PortalEntry{Transaction: portal.TxCreateAccount, Type: mesh.TypeProfileMesh, Entry: entry,
		Signer: id, OfflineKey: id, Updated: &t0, AccountID: bobAccount, Status: portal.AccountOpen}
	payload, err := portal.MarshalPortalEntry(pe)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := net.Node(0).Log().Append(t.Context(), log.Record{Kind: portal.KindAccount, Identifier: id,
		Account: portal.CanonicalAccount(bobAccount), Payload: payload}); err != nil {
		t.Fatalf("logging the binding without consent: %v", err)
	}
	keys, err := newGetVerifier(net.fedPath)
	if err != nil {
		t.Fatal(err)
	}
	provedLatest(t, net, keys, 0, latestQuery{account: portal.CanonicalAccount(aliceAccount)}, "certified by")

	u := &user{t: t, home: t.TempDir(), portal: net.PortalURL(0)}
	var last result
	err = testnet.WaitFor(t.Context(), 40*time.Second, "get --verify of bob's account refusing the binding", func() bool {
		last = u.run("get", "--account", bobAccount, "--verify", "--federation", net.fedPath)
		return strings.Contains(last.stdout+last.stderr, "without that profile's consent")
	})
	if err != nil {
		t.Fatalf("%v; last run: exit %d\n%s%s", err, last.code, last.stdout, last.stderr)
	}
	if last.code != exitFailure || strings.Contains(last.stdout, "Verified:") {
		t.Fatalf("bob's binding without consent: exit %d\n%s", last.code, last.stdout)
	}
}

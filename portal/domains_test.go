package portal_test

import (
	"context"
	"strings"
	"testing"

	"github.com/intermesh/intermesh/portal"
)

// A portal with domains is the home of their accounts only: it creates
// NAME@DOMAIN for its domains, refuses any other name without writing to
// its log, and ValidateAccount says why such a name is not valid here.
func TestCreateAccountOnlyForTheDomainsServed(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{Domains: []string{"example.com", "node1.example.com"},
		DomainHomes: map[string]string{"example.net": "fed/node2 at http://node2.example"}})
	for _, tc := range []struct {
		account string
		says    []string
	}{
		{"alice@example.org", []string{`CreateRequest.Account "alice@example.org"`, `the domain "example.org" is not served by this portal`, "serves example.com, node1.example.com"}},
		{"alice@sub.example.com", []string{`the domain "sub.example.com" is not served`}},
		{"alice@example.net", []string{`the domain "example.net" is not served by this portal`, "served by member fed/node2 at http://node2.example"}},
		{"alice@example.com.evil", []string{`the domain "example.com.evil" is not served`}},
		{"alice", []string{`CreateRequest.Account "alice"`, "has no domain", "NAME@DOMAIN", "(example.com, node1.example.com)"}},
	} {
		u := newUser(t, tc.account)
		size := p.log.Size()
		_, err := p.client.CreateAccount(ctx, consented(t, tc.account, entryOf(t, u.profileAccount, u.acctOffline), u.acctOffline))
		pe := mustStatus(t, err, portal.ClientUnauthorized)
		for _, s := range tc.says {
			if !strings.Contains(pe.Description, s) {
				t.Errorf("%s: %q does not say %q", tc.account, pe.Description, s)
			}
		}
		if p.log.Size() != size {
			t.Errorf("%s: a refused CreateAccount was logged", tc.account)
		}
		v, err := p.client.ValidateAccount(ctx, &portal.ValidateRequest{Account: tc.account})
		if err != nil {
			t.Fatal(err)
		}
		if v.Valid || !strings.Contains(v.Reason, tc.says[len(tc.says)-1]) {
			t.Errorf("ValidateAccount %s: valid %v, reason %q", tc.account, v.Valid, v.Reason)
		}
	}
	// Its own domains, compared in lower case as names are.
	for _, account := range []string{"alice@example.com", "Bob@NODE1.Example.com"} {
		v, err := p.client.ValidateAccount(ctx, &portal.ValidateRequest{Account: account})
		if err != nil || !v.Valid {
			t.Fatalf("ValidateAccount %s: %+v, %v", account, v, err)
		}
		u := newUser(t, account)
		size := p.log.Size()
		_, err = p.client.CreateAccount(ctx, consented(t, account, entryOf(t, u.profileAccount, u.acctOffline), u.acctOffline))
		mustStatus(t, err, portal.SuccessOK)
		if p.log.Size() != size+1 {
			t.Errorf("%s: log size %d after CreateAccount, want %d", account, p.log.Size(), size+1)
		}
	}
}

// Without domains (a solo node, a federation file without them) a portal
// creates every acceptable name, with a domain or without.
func TestCreateAccountWithoutDomainsServesEveryName(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{})
	for _, account := range []string{"alice@example.com", "bob@example.org", "carol"} {
		u := newUser(t, account)
		_, err := p.client.CreateAccount(ctx, consented(t, account, entryOf(t, u.profileAccount, u.acctOffline), u.acctOffline))
		mustStatus(t, err, portal.SuccessOK)
	}
}

func TestPortalDomainsMustBeLowerCaseDNSNames(t *testing.T) {
	for _, domains := range [][]string{{"Example.com"}, {""}, {"example.com", "example.com"}, {"a@example.com"}, {"example.com."}} {
		_, err := portal.New(portal.Config{Domains: domains}, portal.Deps{Log: newTestPortal(t, portal.Config{}).log, State: portal.NewState()})
		if err == nil || !strings.Contains(err.Error(), "Domains") {
			t.Errorf("Domains %q: %v", domains, err)
		}
	}
}

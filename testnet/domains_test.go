package testnet

import (
	"errors"
	"strings"
	"testing"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
)

// Each member of a testnet is the home of its own domain: it creates the
// accounts of that domain and refuses those of another member's, and
// names without a domain, writing nothing.
func TestEachMemberCreatesTheAccountsOfItsOwnDomainOnly(t *testing.T) {
	tn := startTestnet(t, 2)
	for i := range 2 {
		c, err := client.New(tn.PortalURL(i))
		if err != nil {
			t.Fatal(err)
		}
		own, other := tn.Account(i, "alice"), tn.Account(1-i, "bob")
		for _, tc := range []struct{ account, says string }{
			{other, `is not served by this portal, which serves ` + tn.opts.Domain(i) + `: it is served by member ` + tn.opts.Origin(1-i)},
			{"carol", "has no domain"},
		} {
			entry, _, key, err := NewProfile()
			if err != nil {
				t.Fatal(err)
			}
			size := tn.Node(i).Log().Size()
			_, err = CreateAccountWith(t.Context(), c, tc.account, entry, key)
			var pe *portal.Error
			if !errors.As(err, &pe) || pe.Status != portal.ClientUnauthorized || !strings.Contains(pe.Description, tc.says) {
				t.Fatalf("node %d: CreateAccount %s: %v, want 401 saying %q", i, tc.account, err, tc.says)
			}
			if got := tn.Node(i).Log().Size(); got > size+1 { // a round's MasterHash record may land meanwhile
				t.Fatalf("node %d: the log grew from %d to %d records on a refused CreateAccount", i, size, got)
			}
		}
		entry, _, key, err := NewProfile()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := CreateAccountWith(t.Context(), c, own, entry, key); err != nil {
			t.Fatalf("node %d: CreateAccount %s: %v", i, own, err)
		}
	}
}

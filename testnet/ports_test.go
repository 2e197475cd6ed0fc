package testnet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/config"
)

func TestFreeBasePortsAreBelowTheEphemeralRangeAndFree(t *testing.T) {
	for _, n := range []int{1, 8, 32} {
		base, err := FreeBasePort(n)
		if err != nil {
			t.Fatalf("FreeBasePort(%d): %v", n, err)
		}
		if base < minBasePort || base+n > maxBasePort {
			t.Errorf("FreeBasePort(%d) = %d: ports %d..%d leave %d..%d", n, base, base, base+n-1, minBasePort, maxBasePort-1)
		}
		other, err := FreeBasePort(n, base)
		if err != nil {
			t.Fatalf("FreeBasePort(%d, %d): %v", n, base, err)
		}
		if overlaps(other, n, []int{base}) {
			t.Errorf("FreeBasePort(%d, %d) = %d overlaps the excluded ports", n, base, other)
		}
	}
	for _, n := range []int{0, -1, maxBasePort} {
		if _, err := FreeBasePort(n); err == nil {
			t.Errorf("FreeBasePort(%d) did not fail", n)
		}
	}
}

func TestAGeneratedFederationFileStatesItsQuorum(t *testing.T) {
	base, err := FreeBasePort(4)
	if err != nil {
		t.Fatal(err)
	}
	p2p, err := FreeBasePort(4, base)
	if err != nil {
		t.Fatal(err)
	}
	l := Layout{Dir: t.TempDir(), Nodes: 4, HTTPBasePort: base, P2PBasePort: p2p, Period: time.Second}
	if _, err := Generate(l); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(l.Dir, FederationFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "quorum = 3\n") {
		t.Errorf("the federation file of 4 members does not say quorum = 3:\n%s", b)
	}
}

func TestEachGeneratedMemberServesItsOwnDomain(t *testing.T) {
	l := Layout{Dir: t.TempDir(), Nodes: 3, Name: "testnet", HTTPBasePort: 18080, P2PBasePort: 14001, Period: time.Second}
	if _, err := Generate(l); err != nil {
		t.Fatal(err)
	}
	fed, err := config.LoadFederation(filepath.Join(l.Dir, FederationFile))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"example.com", "node1.example.com", "node2.example.com"} {
		if got := fed.Members[i].Domains; len(got) != 1 || got[0] != want {
			t.Errorf("member %d serves %q, want [%s]", i, got, want)
		}
		account := accountAt(fed, l, i, "alice")
		if home, ok := fed.Home(account); !ok || home.Origin != l.Origin(i) {
			t.Errorf("the home of %s is %q (%v), want node %d", account, home.Origin, ok, i)
		}
	}
	// The README walk-through's accounts are node 0's.
	if home, _ := fed.Home("alice@example.com"); home.Origin != l.Origin(0) {
		t.Errorf("the home of alice@example.com is %q", home.Origin)
	}
	// A federation file without domains: accounts of the layout's domains.
	old := *fed
	old.Members = append([]config.Member(nil), fed.Members...)
	old.Members[2].Domains = nil
	if got := accountAt(&old, l, 2, "bob"); got != "bob@node2.example.com" {
		t.Errorf("account at a member without domains: %s", got)
	}
}

package testnet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

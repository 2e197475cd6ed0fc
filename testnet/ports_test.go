package testnet

import "testing"

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

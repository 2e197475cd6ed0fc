package portal_test

import (
	"testing"

	"github.com/intermesh/intermesh/internal/keyspace"
	"github.com/intermesh/intermesh/portal"
)

// TestWritesOnlyUnderItsPrefixes runs the portal's write paths (accounts,
// profiles, updates, connection requests, an epoch, a peer's replica with
// its replicated state) and checks that every key of both portals' DBs
// belongs to the portal or to the log and the Merkle trees that share the
// DB (internal/keyspace), and that the portal wrote some.
func TestWritesOnlyUnderItsPrefixes(t *testing.T) {
	a := newPortalAt(t, originA, portal.Config{})
	fill(t, a, 0, 3)
	a.closeEpoch(t, 1)
	b := newPortalAt(t, originB, portal.Config{})
	fill(t, b, 0, 1)
	replicate(t, a, b)
	for _, p := range []*testPortal{a, b} {
		if err := keyspace.CheckOwner(p.log.DB(), keyspace.OwnerPortal, keyspace.OwnerLog, keyspace.OwnerMerkle); err != nil {
			t.Errorf("%s: %v", p.origin, err)
		}
		n, err := keyspace.Count(p.log.DB())
		if err != nil {
			t.Fatal(err)
		}
		if n[keyspace.OwnerPortal] == 0 {
			t.Errorf("%s: no portal key in the DB: %v", p.origin, n)
		}
	}
}

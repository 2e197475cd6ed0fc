package witness

import (
	"crypto/ed25519"
	"net/http"
	"testing"

	"github.com/intermesh/intermesh/internal/keyspace"
)

// TestWritesOnlyUnderItsPrefix cosigns checkpoints of two logs and checks
// that every key the witness wrote belongs to it (internal/keyspace).
func TestWritesOnlyUnderItsPrefix(t *testing.T) {
	db := openDB(t, t.TempDir())
	t.Cleanup(func() { _ = db.Close() })
	_, key, _ := ed25519.GenerateKey(nil)
	a, b := newTestLog(t, "log.example/a"), newTestLog(t, "log.example/b")
	_, srv := newTestWitness(t, db, key, a, b)
	for _, l := range []*testLog{a, b} {
		l.grow(8)
		for _, c := range [][2]uint64{{0, 3}, {3, 8}} {
			if status, answer, _ := post(t, srv.URL, l.request(t, c[0], c[1])); status != http.StatusOK {
				t.Fatalf("add-checkpoint of %s size %d: %d %s", l.origin, c[1], status, answer)
			}
		}
	}
	if err := keyspace.CheckOwner(db, keyspace.OwnerWitness); err != nil {
		t.Error(err)
	}
}

package node

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/intermesh/intermesh/internal/keyspace"
)

// TestWritesOnlyUnderItsPrefix runs a node of a federation of one until it
// certifies a round and accepts a federation update, then checks that every
// key of its DB belongs to one of the packages that share it
// (internal/keyspace), and that the node wrote its federation history.
func TestWritesOnlyUnderItsPrefix(t *testing.T) {
	c := newSoloNode(t)
	c.HTTP.AdminToken = testAdminToken
	n, err := New(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	runNode(t, n)
	waitFor(t, 10*time.Second, "a certificate", func() bool {
		_, ok := n.Mesh().LatestCertificate()
		return ok
	})

	// Version 1 adds a member, certified by the node (quorum 1 of 1) and the new key.
	if status, body := postFederation(t, n, testAdminToken, joinerUpdate(t, n, n.Epoch()+10)); status != http.StatusOK {
		t.Fatalf("update: %d %s", status, body)
	}
	if got := len(n.FederationChain()); got != 2 {
		t.Fatalf("the node holds %d federation versions, want 2", got)
	}

	waitFor(t, 10*time.Second, "a checkpoint whose map is stored", func() bool {
		v, err := n.vmap.store.Committed()
		return err == nil && v > 0
	})
	db := n.log.DB()
	if err := keyspace.CheckOwner(db, keyspace.OwnerNode, keyspace.OwnerLog, keyspace.OwnerMerkle,
		keyspace.OwnerPortal, keyspace.OwnerWitness, keyspace.OwnerInterMesh, keyspace.OwnerMap); err != nil {
		t.Error(err)
	}
	count, err := keyspace.Count(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, owner := range []string{keyspace.OwnerNode, keyspace.OwnerLog, keyspace.OwnerMerkle, keyspace.OwnerInterMesh, keyspace.OwnerMap} {
		if count[owner] == 0 {
			t.Errorf("no key of %s in the DB: %v", owner, count)
		}
	}
}

package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"testing"
	"time"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/internal/keyspace"
	"github.com/intermesh/intermesh/merkle"
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

	// Version 1 adds a member; the node (quorum 1 of 1) and the new key sign.
	genesis := n.FederationChain()[0]
	pub, newKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	vkey, _ := config.VerifierKey("test.example/joiner", pub)
	id, _ := config.PeerIDFromKey(pub)
	next := genesis.Federation
	next.Quorum = 0
	next.Members = append(append([]config.Member(nil), genesis.Members...), config.Member{Origin: "test.example/joiner", PeerID: id.String(), Key: vkey})
	v1, err := genesis.Next(&next, n.Epoch()+10)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct {
		origin string
		key    ed25519.PrivateKey
	}{{c.Origin, n.key}, {"test.example/joiner", newKey}} {
		signer, err := merkle.NewSigner(s.origin, s.key)
		if err != nil {
			t.Fatal(err)
		}
		signed, err := config.SignFederationUpdate(v1.Text(), signer)
		if err != nil {
			t.Fatal(err)
		}
		if status, body := postFederation(t, n, testAdminToken, signed); status != http.StatusOK {
			t.Fatalf("update signed by %s: %d %s", s.origin, status, body)
		}
	}

	db := n.log.DB()
	if err := keyspace.CheckOwner(db, keyspace.OwnerNode, keyspace.OwnerLog, keyspace.OwnerMerkle,
		keyspace.OwnerPortal, keyspace.OwnerWitness, keyspace.OwnerInterMesh); err != nil {
		t.Error(err)
	}
	count, err := keyspace.Count(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, owner := range []string{keyspace.OwnerNode, keyspace.OwnerLog, keyspace.OwnerMerkle, keyspace.OwnerInterMesh} {
		if count[owner] == 0 {
			t.Errorf("no key of %s in the DB: %v", owner, count)
		}
	}
}

package intermesh

import (
	"context"
	"testing"

	"github.com/intermesh/intermesh/internal/keyspace"
	"github.com/intermesh/intermesh/log"
)

// TestWritesOnlyUnderItsPrefix appends an Evidence record (and its index)
// through the Mesh and persists a member's latest checkpoint, a certificate
// and evidence as the committer does, in the DB of a log whose indexers are
// the node's; every key must belong to the InterMesh or to the log and the
// Merkle tree sharing the DB (internal/keyspace), and the InterMesh must
// have written some.
func TestWritesOnlyUnderItsPrefix(t *testing.T) {
	fed, key, err := crashFederation()
	if err != nil {
		t.Fatal(err)
	}
	l, err := log.Open(context.Background(), crashLogOptions(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	m, err := newMesh(Config{Federation: fed, Origin: "crash/node0", Key: key, Listen: testListen, DB: l.DB(), Log: l})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.appendEvidence(context.Background(), crashEvidenceItem(0)); err != nil {
		t.Fatal(err)
	}
	e := crashEvidenceItem(1)
	job := storeJob{latest: map[string][]byte{"crash/node0": []byte("a note")}, cert: &Certificate{Round: 7}, evidence: &e}
	if err := m.store.write(job); err != nil {
		t.Fatal(err)
	}
	if err := keyspace.CheckOwner(l.DB(), keyspace.OwnerInterMesh, keyspace.OwnerLog, keyspace.OwnerMerkle); err != nil {
		t.Error(err)
	}
	n, err := keyspace.Count(l.DB())
	if err != nil {
		t.Fatal(err)
	}
	if n[keyspace.OwnerInterMesh] != 4 { // latest, certificate, evidence, evidence index
		t.Errorf("%d InterMesh keys in the DB, want 4: %v", n[keyspace.OwnerInterMesh], n)
	}
}

package merkle

import (
	"context"
	"testing"
	"time"

	"github.com/intermesh/intermesh/internal/keyspace"
	"github.com/intermesh/intermesh/log"
)

// TestWritesOnlyUnderItsPrefixes keeps the trees of a log and of a replica
// as their batch indexers, closes an epoch, and checks that every key in the
// shared DB belongs to package merkle or package log (internal/keyspace),
// and that the trees wrote some.
func TestWritesOnlyUnderItsPrefixes(t *testing.T) {
	ctx := context.Background()
	const own = "example.org/node2"
	l := openReplicatingLog(t, own)
	for i := range 9 {
		if _, err := l.Append(ctx, log.Record{Kind: "Profile", Identifier: "MB" + string(rune('A'+i)), Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := l.Replica(exampleOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Append(ctx, testRecords(0, 5)); err != nil {
		t.Fatal(err)
	}
	signer, err := NewSigner(own, testKey(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := NewTree(l.DB(), []byte(keyspace.TreeLocal)).CloseEpoch(ctx, 1, time.Unix(1728000000, 0), signer, own); err != nil {
		t.Fatal(err)
	}
	if err := keyspace.CheckOwner(l.DB(), keyspace.OwnerMerkle, keyspace.OwnerLog); err != nil {
		t.Error(err)
	}
	n, err := keyspace.Count(l.DB())
	if err != nil {
		t.Fatal(err)
	}
	if n[keyspace.OwnerMerkle] == 0 {
		t.Errorf("no merkle key in the DB: %v", n)
	}
}

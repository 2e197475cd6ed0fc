package log

import (
	"context"
	"testing"

	ks "github.com/intermesh/intermesh/internal/keyspace"
)

// TestWritesOnlyUnderItsPrefixes appends to the node's own log and to a
// replica and checks that every key in the DB belongs to package log
// (internal/keyspace).
func TestWritesOnlyUnderItsPrefixes(t *testing.T) {
	l, r := openTestReplica(t, Options{Origin: "me.example/log"})
	for i := range 5 {
		if _, err := l.Append(context.Background(), testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend(t, r, peerRecords(0, 10), 10)
	if err := ks.CheckOwner(l.DB(), ks.OwnerLog); err != nil {
		t.Error(err)
	}
}

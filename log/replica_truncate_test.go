package log

import (
	"context"
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func TestReplicaTruncateCutsRecordsAndHeadTogetherAndSurvivesAReopen(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{Origin: "self.example"})
	r, err := l.Replica(peer)
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, r, peerRecords(0, 10), 10)
	calls := 0
	reset := func(txn *badger.Txn) error { calls++; return txn.Set([]byte("test-derived"), []byte{6}) }
	if err := r.Truncate(context.Background(), 11, reset); !errors.Is(err, ErrGap) {
		t.Fatalf("Truncate past the end: %v, want ErrGap", err)
	}
	if err := r.Truncate(context.Background(), 6, reset); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("reset called %d times, want 1", calls)
	}
	checkHolds(t, r, 6)
	// Records appended again after the cut follow the held ones.
	mustAppend(t, r, peerRecords(6, 2), 2)
	checkHolds(t, r, 8)
	if err := r.Truncate(context.Background(), 6, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, dir, Options{Origin: "self.example"})
	r, err = l.Replica(peer)
	if err != nil {
		t.Fatal(err)
	}
	checkHolds(t, r, 6)
	if err := l.DB().View(func(txn *badger.Txn) error { _, err := txn.Get([]byte("test-derived")); return err }); err != nil {
		t.Fatalf("the derived state written by reset: %v", err)
	}
	if err := r.Truncate(context.Background(), 0, nil); err != nil {
		t.Fatal(err)
	}
	checkHolds(t, r, 0)
	mustAppend(t, r, peerRecords(0, 3), 3)
	checkHolds(t, r, 3)
}

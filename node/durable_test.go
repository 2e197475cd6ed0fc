package node

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/intermesh/intermesh/internal/faultfs"
	"github.com/intermesh/intermesh/log"
)

// A node whose store failed to sync a write signs no checkpoint and stops
// (Run returns ErrNotDurable): Badger may hold the write in memory, where
// the tree would count it. Its data directory is on a file system that
// fails the value log's fsync on demand (package faultfs).
func TestANodeWhoseStoreFailedASyncStopsAndSignsNothing(t *testing.T) {
	fs := faultfs.Mount(t)
	n, err := New(context.Background(), newTestNode(t, fs.Dir), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	p := growthProfiles(t, 1)[0]
	appendNext := func(first bool) error {
		rec, err := p.next(first)
		if err != nil {
			t.Fatal(err)
		}
		_, err = n.Log().Append(context.Background(), rec)
		return err
	}
	if err := appendNext(true); err != nil {
		t.Fatal(err)
	}
	fs.FailSyncs(true)
	if err := appendNext(false); !errors.Is(err, log.ErrNotDurable) {
		t.Fatalf("append while the value log's sync fails: %v, want ErrNotDurable", err)
	}
	if err := n.CloseEpoch(context.Background(), 1<<40, time.Now()); !errors.Is(err, log.ErrNotDurable) {
		t.Fatalf("closing an epoch after a failed sync: %v, want ErrNotDurable", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, log.ErrNotDurable) {
			t.Fatalf("Run returned %v, want ErrNotDurable", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the node still runs 10 s after its store failed a sync")
	}
}

package log_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/intermesh/intermesh/internal/faultfs"
	"github.com/intermesh/intermesh/log"
)

// A write whose values Badger put in its value log, and could not sync
// there, fails, and so does every write after it, even once syncs succeed
// again: Badger v4.9 only logs that failure and commits. The log's
// directory is on a file system that fails the fsync (and so the msync) of
// .vlog files on demand (package faultfs).
func TestAFailedValueLogSyncFailsTheWrite(t *testing.T) {
	fs := faultfs.Mount(t)
	l, err := log.Open(context.Background(), log.Options{
		Dir:    filepath.Join(fs.Dir, "store"),
		Logger: slog.New(slog.DiscardHandler),
		// Every record's bytes go to the value log, whatever the default.
		TuneBadger: func(o badger.Options) badger.Options { return o.WithValueThreshold(64) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	payload := []byte(strings.Repeat("x", 300))
	if _, err := l.Append(ctx, log.Record{Kind: "Profile", Identifier: "a", Payload: payload}); err != nil {
		t.Fatalf("append before the fault: %v", err)
	}
	fs.FailSyncs(true)
	_, err = l.Append(ctx, log.Record{Kind: "Profile", Identifier: "b", Payload: payload})
	if !errors.Is(err, log.ErrNotDurable) {
		t.Fatalf("append while the value log's sync fails: %v, want ErrNotDurable", err)
	}
	fs.FailSyncs(false)
	_, err = l.Append(ctx, log.Record{Kind: "Profile", Identifier: "c", Payload: payload})
	if !errors.Is(err, log.ErrNotDurable) {
		t.Fatalf("append after a failed sync, once syncs succeed again: %v, want ErrNotDurable", err)
	}
	r, err := l.Replica("peer.example/log")
	if err != nil {
		t.Fatal(err)
	}
	peer := log.Record{Seq: 0, Time: time.Now().UTC(), Origin: "peer.example/log", Kind: "Profile", Identifier: "p", Payload: payload}
	if _, err := r.Append(ctx, []log.Record{peer}); !errors.Is(err, log.ErrNotDurable) {
		t.Fatalf("replica append after a failed sync: %v, want ErrNotDurable", err)
	}
	if !errors.Is(l.Durability(), log.ErrNotDurable) {
		t.Fatalf("Durability() = %v, want ErrNotDurable", l.Durability())
	}
	if got := l.Size(); got != 1 {
		t.Fatalf("size %d after the failed writes, want 1", got)
	}
}

package node

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestMappedLimitReleasesThePagesOfTablesAndValueLog(t *testing.T) {
	if _, err := rssFile(); err != nil {
		t.Skipf("no RssFile in /proc/self/status: %v", err)
	}
	c := newTestNode(t, t.TempDir())
	c.Store.MappedLimitMB = 1 // the test binary's own pages are above it: release every second
	// Records appended and the node stopped: Badger writes its memtable to
	// a table file, which the restarted node reads through its mapping, and
	// the records' bytes through the value log's.
	n, err := New(context.Background(), c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stop := runNode(t, n)
	const records = 2000
	profiles := growthProfiles(t, 20)
	var wg sync.WaitGroup
	for _, p := range profiles {
		wg.Go(func() {
			for i := range records / len(profiles) {
				rec, err := p.next(i == 0)
				if err == nil {
					_, err = n.Log().Append(context.Background(), rec)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	n, err = New(context.Background(), c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stop = runNode(t, n)
	defer stop()
	dir, err := filepath.Abs(c.DataDir())
	if err != nil {
		t.Fatal(err)
	}
	lsm, vlog := storeSizes(dir)
	stored := lsm + vlog
	if vlog < records*500 {
		t.Fatalf("the value log holds %d bytes, want the %d records in it", vlog, records)
	}
	// Every record read: the tables' pages touched, RssFile (with the
	// test binary's own pages) above the limit. The node must advise every
	// table mapping; what the kernel then reclaims is
	// TestReleaseMappedPagesDropsStorePagesAndKeepsRecords's (package log).
	for seq := range uint64(records) {
		if _, err := n.Log().Get(seq); err != nil {
			t.Fatalf("Get(%d): %v", seq, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for n.mappedReleased.Load() < stored {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s with store.mapped_limit_mb = 1 the node advised %d bytes of mappings, want at least the tables' and value log's %d",
				n.mappedReleased.Load(), stored)
		}
		time.Sleep(100 * time.Millisecond) // polling a counter the node's goroutine sets
	}
}

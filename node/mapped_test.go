package node

import (
	"bufio"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// tableResident sums the resident memory (the Rss lines of
// /proc/self/smaps) of the process's mappings of .sst files in dir.
func tableResident(t *testing.T, dir string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rss int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 6 && strings.Contains(fields[0], "-"):
			path := strings.Join(fields[5:], " ")
			in = filepath.Ext(path) == ".sst" && filepath.Dir(path) == dir
		case len(fields) >= 2 && fields[0] == "Rss:" && in:
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			rss += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rss
}

func TestMappedLimitReleasesThePagesOfTables(t *testing.T) {
	if _, err := rssFile(); err != nil {
		t.Skipf("no RssFile in /proc/self/status: %v", err)
	}
	c := newTestNode(t, t.TempDir())
	c.Store.MappedLimitMB = 1 // the test binary's own pages are above it: release every second
	// Records appended and the node stopped: Badger writes its memtable to
	// a table file, which the restarted node reads through its mapping.
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
	var tables int64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(path) == ".sst" {
			if info, err := d.Info(); err == nil {
				tables += info.Size()
			}
		}
		return nil
	})
	if tables < records*500 {
		t.Fatalf("the tables hold %d bytes, want the %d records in them", tables, records)
	}
	// Every record read: every page of the tables touched. Without the
	// limit they would stay resident (the machine is not short of memory);
	// with it, most are released (the running node keeps reading some:
	// its rounds read the tree).
	for seq := range uint64(records) {
		if _, err := n.Log().Get(seq); err != nil {
			t.Fatalf("Get(%d): %v", seq, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		rss := tableResident(t, dir)
		if rss < tables/2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the tables' %d bytes still resident after 30 s with store.mapped_limit_mb = 1", rss, tables)
		}
		time.Sleep(100 * time.Millisecond) // polling /proc: nothing to wait on
	}
}

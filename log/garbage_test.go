package log

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// vlogBytes returns the bytes of dir's value-log files.
func vlogBytes(t *testing.T, dir string) int64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		n += st.Size()
	}
	return n
}

// reopenTestReplica closes l unless it is nil, and opens the log in dir and
// the replica of peer.
func reopenTestReplica(t *testing.T, l *Log, dir string, opts Options) (*Log, *Replica) {
	t.Helper()
	if l != nil {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	l = openTestLog(t, dir, opts)
	r, err := l.Replica(peer)
	if err != nil {
		t.Fatal(err)
	}
	return l, r
}

// The records of a replica cut back are garbage in the value log, and
// CollectGarbage gives their space back while the kept records still read.
func TestCollectGarbageRewritesTheValueLogOfARecordsCutBack(t *testing.T) {
	dir := t.TempDir()
	opts := Options{TuneBadger: func(o badger.Options) badger.Options {
		return o.WithValueLogFileSize(1 << 20).WithNumLevelZeroTables(1).WithNumLevelZeroTablesStall(2)
	}}
	l, r := reopenTestReplica(t, nil, dir, opts)
	recs := peerRecords(0, 1200)
	for i := range recs {
		recs[i].Payload = bytes.Repeat([]byte{byte(i)}, 4<<10)
	}
	for i := 0; i < len(recs); i += 100 {
		mustAppend(t, r, recs[i:i+100], 100)
	}
	ctx := context.Background()
	if n, err := l.CollectGarbage(ctx); err != nil || n != 0 {
		t.Fatalf("CollectGarbage with nothing deleted = %d, %v; want 0 files rewritten", n, err)
	}
	before := vlogBytes(t, dir)
	// Badger counts a value as garbage when a compaction drops the last key
	// that points to it: the records and their deletions are flushed to two
	// tables of level 0, which takes one, and compacted.
	l, r = reopenTestReplica(t, l, dir, opts)
	if err := r.Truncate(ctx, 100, nil); err != nil {
		t.Fatal(err)
	}
	l, _ = reopenTestReplica(t, l, dir, opts)
	if err := l.DB().Flatten(1); err != nil {
		t.Fatal(err)
	}
	n, err := l.CollectGarbage(ctx)
	if err != nil || n == 0 {
		t.Fatalf("CollectGarbage after cutting back 1100 of 1200 records = %d, %v; want files rewritten", n, err)
	}
	if after := vlogBytes(t, dir); after >= before/2 {
		t.Fatalf("value log %d bytes after rewriting %d files, %d before; want under half", after, n, before)
	}
	r, err = l.Replica(peer)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range recs[:100] {
		got, err := r.Get(want.Seq)
		if err != nil || !bytes.Equal(got.MarshalLeaf(), want.MarshalLeaf()) {
			t.Fatalf("Get(%d) after the collection = %v; want the record", want.Seq, err)
		}
	}
}

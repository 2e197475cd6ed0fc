package log

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// A kill -9 just after Badger created a value-log file, before it sized
// the file, leaves a zero-length .vlog behind. Badger v4.9 then refuses to
// open the directory ("Open existing file ... Create a new file"), so the
// node would never restart; Open removes such a file first (it holds no
// byte of data, not even the file's header).
func TestOpenAfterAKillLeftAnEmptyValueLogFile(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{})
	for i := range 10 {
		if _, err := l.Append(context.Background(), testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	vlogs, err := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err != nil || len(vlogs) == 0 {
		t.Fatalf("no value-log file in %s (%v)", dir, err)
	}
	empty := filepath.Join(dir, "000099.vlog")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	l = openTestLog(t, dir, Options{})
	if got := l.Size(); got != 10 {
		t.Fatalf("size after reopening: %d, want 10", got)
	}
	for i := range 10 {
		if _, err := l.Get(uint64(i)); err != nil {
			t.Fatalf("record %d after reopening: %v", i, err)
		}
	}
	if _, err := l.Append(context.Background(), testRecord(10)); err != nil {
		t.Fatalf("append after reopening: %v", err)
	}
}

// A value-log file that holds data is never removed, whatever its name.
func TestOpenKeepsValueLogFilesThatHoldData(t *testing.T) {
	dir := t.TempDir()
	l := openTestLog(t, dir, Options{})
	if _, err := l.Append(context.Background(), testRecord(0)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	before, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if err := removeEmptyValueLogs(dir, nil); err != nil {
		t.Fatal(err)
	}
	after, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if len(after) != len(before) {
		t.Fatalf("value-log files %v became %v", before, after)
	}
}

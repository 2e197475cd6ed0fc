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
	testOpenAfterAKillLeftAnEmptyFile(t, "*.vlog", "000099.vlog")
}

// The same for a memtable's write-ahead log (.mem): Badger creates one
// each time a memtable fills, and TestCrashKillWriter's kills found this.
func TestOpenAfterAKillLeftAnEmptyMemtableLog(t *testing.T) {
	testOpenAfterAKillLeftAnEmptyFile(t, "", "00099.mem")
}

// testOpenAfterAKillLeftAnEmptyFile writes records, closes the log, adds
// the empty file name (beside the files matching existing, unless "";
// a clean close leaves no memtable log), and reopens.
func testOpenAfterAKillLeftAnEmptyFile(t *testing.T, existing, name string) {
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
	if existing != "" {
		files, err := filepath.Glob(filepath.Join(dir, existing))
		if err != nil || len(files) == 0 {
			t.Fatalf("no %s file in %s (%v)", existing, dir, err)
		}
	}
	empty := filepath.Join(dir, name)
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
	if err := removeEmptyLogFiles(dir, nil); err != nil {
		t.Fatal(err)
	}
	after, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	if len(after) != len(before) {
		t.Fatalf("value-log files %v became %v", before, after)
	}
}

package log

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// storeRSS sums the resident memory (the Rss lines of /proc/self/smaps) of
// the process's mappings of releasable files in dir.
func storeRSS(t *testing.T, dir string) (rss int64, mappings int) {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 6 && strings.Contains(fields[0], "-"):
			path := strings.Join(fields[5:], " ")
			in = releasable(path) && filepath.Dir(path) == dir
			if in {
				mappings++
			}
		case len(fields) >= 2 && fields[0] == "Rss:" && in:
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			rss += kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rss, mappings
}

func TestReleaseMappedPagesDropsStorePagesAndKeepsRecords(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("MADV_PAGEOUT and /proc/self/smaps are Linux only")
	}
	dir, err := filepath.Abs(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// The log is opened through a symbolic link: /proc/self/maps names
	// the files by their real path.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	// Records written, then the log closed: Badger flushes its memtable
	// to a table file; the reopened log reads the records' keys through
	// the table's mapping and their bytes through the value log's.
	const n = 3000
	want := make([]Record, n)
	l := openTestLog(t, link, Options{})
	for i := range want {
		rec := testRecord(i)
		rec.Payload = []byte(strings.Repeat(strconv.Itoa(i%10), 1000))
		got, err := l.Append(context.Background(), rec)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = got
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTestLog(t, link, Options{})
	readAll := func() {
		t.Helper()
		for i, w := range want {
			got, err := l.Get(uint64(i))
			if err != nil || !sameRecord(got, w) {
				t.Fatalf("Get(%d) = %+v, %v; want %+v", i, got, err, w)
			}
		}
	}
	readAll()
	before, mappings := storeRSS(t, dir)
	if mappings == 0 || before < n*1000/2 {
		t.Fatalf("after reading every record: %d bytes resident in %d store mappings, want the files mapped and read", before, mappings)
	}
	st, err := l.ReleaseMappedPages()
	if err != nil {
		t.Fatalf("ReleaseMappedPages: %v", err)
	}
	if st.Mappings != mappings || st.Bytes <= 0 {
		t.Errorf("ReleaseMappedPages = %+v, want the %d store mappings", st, mappings)
	}
	// The kernel may keep some pages (those of large folios it cannot
	// split), but most must go.
	after, _ := storeRSS(t, dir)
	if after > before/2 {
		t.Errorf("store pages resident: %d bytes before ReleaseMappedPages, %d after; want most released", before, after)
	}
	// The records read the same, from disk.
	readAll()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ReleaseMappedPages(); err != ErrClosed {
		t.Errorf("ReleaseMappedPages after Close = %v, want ErrClosed", err)
	}
}

func TestStoreMappingsParsesOnlyTablesAndValueLogsOfTheDirectory(t *testing.T) {
	maps := strings.Join([]string{
		"7f0000000000-7f0000100000 r--s 00000000 08:01 1234 /data/node/000001.sst",
		"7f0000100000-7f0000200000 rw-s 00000000 08:01 1235 /data/node/000001.vlog",
		"7f0000200000-7f0000300000 r--s 00000000 08:01 1236 /data/other/000002.sst",
		"7f0000300000-7f0000400000 r--s 00000000 08:01 1237 /data/node/sub/000003.sst",
		"7f0000400000-7f0000500000 r--s 00000000 08:01 1238 /data/node/000004.sst (deleted)",
		"7f0000500000-7f0000600000 rw-p 00000000 00:00 0",
		"7f0000600000-7f0000700000 r--s 00000000 08:01 1239 /data/node/with space 5.sst",
		"7f0000700000-7f0000800000 r--s 00000000 08:01 1239 /data/node/000005.sst.tmp",
		"zzzz-7f0000800000 r--s 00000000 08:01 1240 /data/node/000006.sst",
		"7f0000900000-7f0000800000 r--s 00000000 08:01 1241 /data/node/000007.sst",
		"7f0000a00000 r--s 00000000 08:01 1242 /data/node/000008.sst",
		"short line",
		"",
		"7f0000b00000-7f0000c00000 r--s 00000000 08:01 1243 /data/node/000009.sst",
		"7f0000c00000-7f0000d00000 rw-s 00000000 08:01 1244 /data/node/00001.mem",
	}, "\n")
	got := storeMappings([]byte(maps), "/data/node")
	want := []mapping{{0x7f0000000000, 0x7f0000100000}, {0x7f0000100000, 0x7f0000200000}, {0x7f0000600000, 0x7f0000700000}, {0x7f0000b00000, 0x7f0000c00000}}
	if len(got) != len(want) {
		t.Fatalf("storeMappings = %x, want %x", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d = %x, want %x", i, got[i], want[i])
		}
	}
}

package log

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Badger v4 memory-maps every table (.sst), the value log (.vlog) and the
// memtables' write-ahead logs (.mem), and has no option to read them
// otherwise; the pages of those files it has touched count in the process's
// resident memory (RssFile), so a node's RSS grows with its store until the
// kernel needs the memory back. ReleaseMappedPages gives them back at once
// for the tables and the value log, which hold every record.

// releasable reports whether pages of Badger's file called name may be given
// back: tables (.sst) are immutable, and the value log (.vlog) is appended
// to and synced before a commit returns, so a page given back is read from
// disk again as it was. The memtables' write-ahead logs are rewritten in
// place and stay.
func releasable(name string) bool {
	ext := filepath.Ext(name)
	return ext == ".sst" || ext == ".vlog"
}

// MappedStats are the table mappings ReleaseMappedPages advised.
type MappedStats struct {
	Mappings int   // mappings of the log's table and value-log files
	Bytes    int64 // their total length
}

// ReleaseMappedPages asks the kernel to reclaim the resident pages of the
// log's memory-mapped table and value-log files (Badger's .sst and .vlog
// files in Options.Dir), as it would under memory pressure: they are read
// from disk again when next touched. This loses nothing (see releasable);
// only later reads of those pages cost a disk read. It is Linux only (it reads
// /proc/self/maps and needs MADV_PAGEOUT, Linux 5.4); elsewhere it returns
// an error and changes nothing.
func (l *Log) ReleaseMappedPages() (MappedStats, error) {
	if l.closed.Load() {
		return MappedStats{}, ErrClosed
	}
	// /proc/self/maps names files by their absolute path, symbolic links
	// resolved.
	dir, err := filepath.Abs(l.opts.Dir)
	if err == nil {
		dir, err = filepath.EvalSymlinks(dir)
	}
	if err != nil {
		return MappedStats{}, fmt.Errorf("log: releasing mapped pages: %w", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return MappedStats{}, fmt.Errorf("log: releasing mapped pages: %w", err)
	}
	var st MappedStats
	var errs []error
	for _, m := range storeMappings(maps, dir) {
		unmapped, err := pageout(m)
		if err != nil {
			// The others may still succeed (EAGAIN, EINTR).
			errs = append(errs, err)
			continue
		}
		if !unmapped {
			st.Mappings++
			st.Bytes += int64(m.end - m.start)
		}
	}
	if len(errs) > 0 {
		return st, fmt.Errorf("log: releasing mapped pages: %d of %d mappings failed, the first with %w", len(errs), st.Mappings+len(errs), errs[0])
	}
	return st, nil
}

// mapping is an address range of /proc/self/maps.
type mapping struct{ start, end uintptr }

// storeMappings returns the ranges of maps (the text of /proc/self/maps)
// that map a releasable Badger file directly inside dir. Lines it cannot
// parse are skipped.
func storeMappings(maps []byte, dir string) []mapping {
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(maps))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		// address perms offset dev inode pathname
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		path := strings.Join(fields[5:], " ")
		if !releasable(path) || filepath.Dir(path) != dir {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err := errors.Join(err1, err2); err != nil || end <= start {
			continue
		}
		out = append(out, mapping{start: uintptr(start), end: uintptr(end)})
	}
	return out
}

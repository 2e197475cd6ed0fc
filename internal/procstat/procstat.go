// Package procstat reads a Linux process's memory from /proc/<pid>/status,
// for the tests and benchmarks that watch a node's memory.
package procstat

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Memory returns the resident set (VmRSS) and its anonymous part (RssAnon)
// of process pid, or of this process when pid is 0, in bytes.
func Memory(pid int) (rss, anon uint64, err error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("procstat: %w", err)
	}
	defer f.Close()
	rss, anon, err = parse(f)
	if err != nil {
		return 0, 0, fmt.Errorf("procstat: %s: %w", path, err)
	}
	return rss, anon, nil
}

// parse reads VmRSS and RssAnon, in kB, from the text of a status file.
func parse(r io.Reader) (rss, anon uint64, err error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		var v *uint64
		switch fields[0] {
		case "VmRSS:":
			v = &rss
		case "RssAnon:":
			v = &anon
		default:
			continue
		}
		kb, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s %w", fields[0], err)
		}
		*v = kb << 10
	}
	return rss, anon, sc.Err()
}

package procstat

import (
	"os"
	"runtime"
	"strings"
	"testing"
)

func TestParseReadsVmRSSAndRssAnonInBytes(t *testing.T) {
	status := "Name:\tmeshd\nVmPeak:\t  900 kB\nVmRSS:\t  2048 kB\nRssAnon:\t  1024 kB\nRssFile:\t  1024 kB\n"
	rss, anon, err := parse(strings.NewReader(status))
	if err != nil || rss != 2048<<10 || anon != 1024<<10 {
		t.Fatalf("parse = %d, %d, %v; want %d, %d", rss, anon, err, 2048<<10, 1024<<10)
	}
	if _, _, err := parse(strings.NewReader("VmRSS:\tlots kB\n")); err == nil {
		t.Error("parse of a VmRSS that is not a number: no error")
	}
}

func TestMemoryOfThisProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/<pid>/status is Linux's")
	}
	self, _, err := Memory(0)
	if err != nil || self == 0 {
		t.Fatalf("Memory(0) = %d, %v", self, err)
	}
	byPid, anon, err := Memory(os.Getpid())
	if err != nil || byPid == 0 || anon == 0 || anon > byPid {
		t.Fatalf("Memory(own pid) = %d, %d, %v", byPid, anon, err)
	}
}

package log

import (
	"fmt"
	"syscall"
)

// madvPageout is MADV_PAGEOUT (Linux 5.4): reclaim the pages of a range now;
// clean file pages are dropped and read from the file again when next
// touched. It changes no data, so advising a range that was unmapped and
// reused meanwhile costs only a later page fault.
const madvPageout = 21

// pageout advises MADV_PAGEOUT on m. unmapped reports that m is no longer
// (wholly) mapped: a table deleted by a compaction since /proc/self/maps was
// read.
func pageout(m mapping) (unmapped bool, err error) {
	_, _, errno := syscall.Syscall(syscall.SYS_MADVISE, m.start, m.end-m.start, madvPageout)
	switch errno {
	case 0:
		return false, nil
	case syscall.ENOMEM:
		return true, nil
	default:
		return false, fmt.Errorf("madvise(MADV_PAGEOUT): %w", errno)
	}
}

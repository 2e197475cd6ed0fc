package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/intermesh/intermesh/log"
)

// mappedCheckPeriod is how often the node compares its file-mapped resident
// memory with store.mapped_limit_mb.
const mappedCheckPeriod = 250 * time.Millisecond

// runMappedLimit keeps the node's file-mapped resident memory (RssFile)
// near cfg.Store.MappedLimitMB until ctx is done: every mappedCheckPeriod,
// when RssFile is above the limit, the log has the kernel reclaim the pages
// of Badger's tables and value log. If that cannot be done at all (not Linux, a kernel
// before 5.4) it says so once and stops; other failures are logged and
// retried at the next check.
func (n *Node) runMappedLimit(ctx context.Context) {
	limit := uint64(n.cfg.Store.MappedLimitMB) << 20
	t := time.NewTicker(mappedCheckPeriod)
	defer t.Stop()
	warned := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		before, err := rssFile()
		if err != nil {
			n.logger.Error("store.mapped_limit_mb is not enforced", "err", err)
			return
		}
		if before <= limit {
			continue
		}
		st, err := n.log.ReleaseMappedPages()
		n.mappedReleased.Add(st.Bytes)
		switch {
		case errors.Is(err, log.ErrClosed):
			return
		case errors.Is(err, errors.ErrUnsupported) || errors.Is(err, syscall.EINVAL):
			n.logger.Error("store.mapped_limit_mb is not enforced", "err", err)
			return
		case err != nil:
			if !warned {
				n.logger.Warn("releasing the pages of Badger's tables and value log failed; retrying", "err", err)
				warned = true
			}
			continue
		}
		after, _ := rssFile()
		n.logger.Debug("released the pages of Badger's tables and value log", "rss_file_before", before, "rss_file_after", after,
			"mappings", st.Mappings, "mapped_bytes", st.Bytes)
	}
}

// rssFile returns the process's resident memory mapped from files (RssFile
// in /proc/self/status).
func rssFile() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("node: reading RssFile: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != "RssFile" {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("node: parsing RssFile %q: %w", value, err)
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("node: reading RssFile: %w", err)
	}
	return 0, errors.New("node: /proc/self/status has no RssFile line")
}

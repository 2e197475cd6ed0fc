package node

import (
	"context"
	"errors"
	"time"

	"github.com/intermesh/intermesh/log"
)

// garbagePeriod is how often the node rewrites the value-log files of its
// store that are mostly garbage (log.Log.CollectGarbage): older versions of
// large map buckets and the records of replicas cut back. A file is 64 MiB;
// at 500 writes/s a node writes about one every two minutes.
const garbagePeriod = 10 * time.Minute

// runGarbageCollection calls the log's CollectGarbage every garbagePeriod
// until ctx is done, logging what it rewrote and its failures.
func (n *Node) runGarbageCollection(ctx context.Context) {
	t := time.NewTicker(garbagePeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		files, err := n.log.CollectGarbage(ctx)
		n.garbageFiles.Add(int64(files))
		switch {
		case errors.Is(err, log.ErrClosed) || ctx.Err() != nil:
			return
		case err != nil:
			n.logger.Warn("collecting the value log's garbage failed; retrying later", "err", err)
		case files > 0:
			n.logger.Info("rewrote value-log files that were mostly garbage", "files", files, "took", time.Since(start))
		}
	}
}

package log

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// garbageRatio is the share of a value-log file's bytes that must be
// garbage before CollectGarbage rewrites it: Badger's recommended 0.5,
// which bounds what the value log rewrites over its lifetime to the bytes
// written once more.
const garbageRatio = 0.5

// CollectGarbage rewrites the files of the database's value log of which at
// least half the bytes are values no key points to any more, and returns
// how many it rewrote. Records never become garbage (but those of a replica
// cut back); what does is the state written over or deleted whose values are
// at least ValueThreshold bytes, such as the older versions of a large
// map's buckets. Badger finds it by sampling each file it picks; it never
// rewrites the file being written. It stops when a file picked is not worth
// rewriting, or when ctx ends; it returns nil when another collection is
// running.
func (l *Log) CollectGarbage(ctx context.Context) (int, error) {
	n := 0
	for ctx.Err() == nil {
		err := l.withDB(func() error { return l.db.RunValueLogGC(garbageRatio) })
		switch {
		case errors.Is(err, badger.ErrNoRewrite), errors.Is(err, badger.ErrRejected):
			return n, nil
		case err != nil:
			return n, fmt.Errorf("log: collecting the value log's garbage: %w", err)
		}
		n++
	}
	return n, ctx.Err()
}

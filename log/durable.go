package log

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/dgraph-io/badger/v4"
)

// ErrNotDurable wraps the failure that made the log stop taking writes: a
// write Badger did not make durable. Every write after it fails with it too,
// until the node is restarted (and recovers what the disk kept).
var ErrNotDurable = errors.New("log: a write was not made durable")

// vlogSyncFailure is how Badger v4.9 reports that syncing its value log
// failed: in valueLog.write it syncs the value log once the transactions'
// values are written, logs the error with this format, and commits the
// transactions anyway. The line is logged on the write goroutine before any
// transaction of the batch is done, so a commit that returns has seen it.
const vlogSyncFailure = "Error while curlf sync"

// durability keeps the first write failure Badger reported only in its log
// (see vlogSyncFailure). It is sticky: after a failed sync (fsync or msync)
// the kernel may have dropped the dirty pages and report the next sync as a
// success, so nothing written since can be trusted to be on disk either.
type durability struct {
	err    atomic.Pointer[error]
	failed chan struct{} // closed when err is set
}

// newDurability returns the durability of a store whose writes all were
// made durable so far.
func newDurability() *durability { return &durability{failed: make(chan struct{})} }

// fail records err unless a failure is already recorded.
func (d *durability) fail(err error) {
	err = fmt.Errorf("%w: %w", ErrNotDurable, err)
	if d.err.CompareAndSwap(nil, &err) {
		close(d.failed)
	}
}

// Err returns the recorded failure, or nil.
func (d *durability) Err() error {
	if p := d.err.Load(); p != nil {
		return *p
	}
	return nil
}

// badgerLogged records the failure when the line Badger logs with format f
// says that a write it went on with was not made durable.
func (d *durability) badgerLogged(f string, a []any) {
	if d != nil && strings.HasPrefix(f, vlogSyncFailure) {
		d.fail(fmt.Errorf("syncing Badger's value log: %s", strings.TrimSpace(fmt.Sprintf(f, a...))))
	}
}

// newWriteTxn starts a read-write transaction, unless a write was not made
// durable: from then on the log writes nothing, not even to Badger's
// memory, where a transaction whose commit failed that way still is.
func (l *Log) newWriteTxn() (*badger.Txn, error) {
	if err := l.dur.Err(); err != nil {
		return nil, err
	}
	return l.db.NewTransaction(true), nil
}

// commit commits txn if the log's writes are still durable, and returns an
// error if they are not, before or after the commit: a commit of a
// transaction whose values Badger failed to sync returns nil, and only the
// log line it wrote says otherwise.
func (l *Log) commit(txn *badger.Txn) error {
	if err := l.dur.Err(); err != nil {
		return err
	}
	if err := txn.Commit(); err != nil {
		return err
	}
	return l.dur.Err()
}

// Durability returns nil while every write of the log has been made durable,
// and otherwise the failure (wrapping ErrNotDurable) that made the log stop
// taking writes: every Append, replica append and cut-back fails with it.
// Writes of other packages to DB are not checked; they should call it after
// committing.
func (l *Log) Durability() error { return l.dur.Err() }

// NotDurable returns a channel closed when a write of the log was not made
// durable (when Durability starts to return an error).
func (l *Log) NotDurable() <-chan struct{} { return l.dur.failed }

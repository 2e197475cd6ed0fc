package log

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// ValueThreshold is the size from which Badger keeps a value in its value
// log rather than in its LSM tree (see badgerOptions).
const ValueThreshold = 256

// badgerOptions returns the Badger options of a log directory: durable
// commits (SyncWrites: a commit returns only after the write-ahead log is
// synced), and options that bound the memory Badger allocates on the Go
// heap, which is mostly its table builders (a compaction builds each output
// table in memory, several at once) and its memtables. None of them changes
// what is stored or when a commit is durable. These are TuningSmall's;
// TuningLarge changes the memtables, level 0 and the table sizes (see
// Tuning).
//
//   - 8 MiB memtables, two of them: a transaction may hold at most 15% of a
//     memtable (1.2 MiB), and smaller memtables cost writes (6 MiB: 12%
//     fewer on the node's append path; 2 MiB: 40-50% fewer; see
//     docs/performance.md, "Why the flush holds so much").
//   - Level 0 stalls writes at 3 tables. Badger compacts level 0 into
//     itself, as one table of unbounded size built in memory (from a 256 MiB
//     buffer), when it has 4 tables it cannot move down; with at most 3 that
//     never happens, and writes wait for compaction instead.
//   - 512 KiB tables at every level (TableSizeMultiplier 1). A compaction
//     builds each output table in a buffer of twice the table size, and
//     runs up to 8 + (number of key-range splits) builders at once, which
//     wait on the table file's msync; a memtable flush uses the same
//     builder, grown by doubling to the memtable's size. (Each builder
//     also allocates a fixed 3 MiB FlatBuffers builder for the table's
//     index, so tables much smaller than this do not pay: with 256 KiB
//     tables more indexes were being built at once and the peaks were no
//     lower.)
//   - A level-size multiplier of 4 instead of 10: a compaction from level
//     n merges one table with the tables it overlaps on level n+1, about
//     as many as the multiplier, so it has fewer output tables (and key
//     splits) in flight at once. There are more levels (each 4 times the
//     one above), and fewer bytes rewritten per byte stored.
//   - No block compression: with it every builder also holds a compressed
//     copy of each block, and reads need a block cache. Tables take about
//     50% more disk. So no block cache either, and an 8 MiB cache of the
//     tables' indexes and Bloom filters.
//   - 64 MiB value-log files instead of 1 GiB: Badger maps the file it
//     writes at twice its size, and CollectGarbage rewrites a file at a
//     time, so smaller files bound both.
//   - Values read from the value log are checked against their checksum:
//     a page the disk lost reads as an error, never as other bytes.
//   - Two compactors, one per core of the machine the figures come from.
//
// Badger memory-maps its files (tables, value log, memtable logs) and has no
// option not to, so resident memory still grows with the database; see
// Log.ReleaseMappedPages.
//
// Values of ValueThreshold bytes and more (the records: a portal's are
// 1 to 2 KB) go to Badger's value log, appended once and never moved by a
// compaction; the LSM tree keeps their keys with 12-byte pointers, and the
// small state (the tree's 32-byte nodes, heads, index entries, small map
// buckets). The LSM tree then holds a tenth of the bytes, so it is flushed
// and compacted ten times less: one node grown to 150,000 records appends
// 2.3 times faster with a third less peak RssAnon (docs/performance.md,
// "Records in the value log"). A commit syncs the value log before the
// write-ahead log; Badger v4.9 only logs a failure of the first, so the
// logger (badgerLogger) catches that line and the log's commits fail from
// then on (see durability): a write is never acknowledged on a failed
// sync. Values written over or deleted in the value log are garbage until
// Log.CollectGarbage rewrites their files.
func badgerOptions(opts Options, logger *slog.Logger, dur *durability) badger.Options {
	o := badger.DefaultOptions(opts.Dir).
		WithLogger(badgerLogger{logger, dur}).
		WithMetricsEnabled(false). // Badger's metrics are process-global expvars
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(3).
		WithBaseTableSize(512 << 10).
		WithLevelSizeMultiplier(4).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(8 << 20).
		WithVerifyValueChecksum(true).
		WithValueLogFileSize(64 << 20).
		WithValueThreshold(ValueThreshold).
		WithNumCompactors(2)
	o.TableSizeMultiplier = 1
	if opts.Tuning == TuningLarge {
		o = o.WithMemTableSize(32 << 20).
			WithNumLevelZeroTables(4).
			WithNumLevelZeroTablesStall(8).
			WithBaseTableSize(2 << 20).
			WithLevelSizeMultiplier(10)
		o.TableSizeMultiplier = 2
	}
	if opts.TuneBadger != nil {
		o = opts.TuneBadger(o)
	}
	// Not negotiable: an acknowledged record must survive power loss.
	return o.WithSyncWrites(true)
}

// badgerLogger sends Badger's log lines to slog. Badger reports routine
// events (tables opened, compactions) at info level; they go to debug here
// to keep the node's log about what an operator can act on. One info line
// is not routine: "L0 was stalled for D" (D over a second) says that level 0
// was full and every write, acknowledgments included, waited for a
// compaction; it goes out as a warning.
type badgerLogger struct {
	l   *slog.Logger
	dur *durability // told of every error line; may be nil
}

func (b badgerLogger) Errorf(f string, a ...any) {
	b.dur.badgerLogged(f, a)
	b.log(slog.LevelError, f, a)
}

func (b badgerLogger) Warningf(f string, a ...any) { b.log(slog.LevelWarn, f, a) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.log(slog.LevelDebug-4, f, a) }

func (b badgerLogger) Infof(f string, a ...any) {
	if strings.HasPrefix(f, "L0 was stalled") {
		b.log(slog.LevelWarn, f, a)
		return
	}
	b.log(slog.LevelDebug, f, a)
}

func (b badgerLogger) log(level slog.Level, f string, a []any) {
	ctx := context.Background()
	if !b.l.Enabled(ctx, level) {
		return
	}
	b.l.Log(ctx, level, strings.TrimSpace(fmt.Sprintf(f, a...)), "component", "badger")
}

// classifyWriteError wraps an error of a Badger write in ErrDiskFull when
// the disk is full. Badger keeps the error chain of some failures but
// flattens others into text (its y.Wrap formats with %+v), so the ENOSPC is
// also recognised by its message.
func classifyWriteError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), syscall.ENOSPC.Error()) {
		return fmt.Errorf("%w: %w", ErrDiskFull, err)
	}
	return err
}

// removeEmptyLogFiles deletes the zero-length value-log (.vlog) and
// memtable write-ahead log (.mem) files of dir. A process killed between
// Badger creating such a file and sizing it leaves one behind, and Badger
// v4.9 then refuses to open the directory ("Create a new file"): a node
// killed at that moment would never start again. A zero-length file holds
// nothing, not even the 20-byte header every such file starts with, so no
// key can point into it, no acknowledged write can be in it, and removing
// it loses nothing. logger may be nil.
func removeEmptyLogFiles(dir string, logger *slog.Logger) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("log: reading %s: %w", dir, err)
	}
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); e.IsDir() || ext != ".vlog" && ext != ".mem" {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("log: %w", err)
		}
		if info.Size() != 0 {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("log: removing the empty log file %s: %w", path, err)
		}
		if logger != nil {
			logger.Warn("removed an empty Badger log file left by a crash", "file", path)
		}
	}
	return nil
}

package log

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// Each profile keeps writes durable, and they differ only in memory:
// TuningLarge's memtables hold four times as much and level 0 takes more
// tables before writes wait.
func TestTuningsKeepSyncWritesAndDifferInMemory(t *testing.T) {
	small := badgerOptions(Options{Dir: t.TempDir()}, nil, nil)
	large := badgerOptions(Options{Dir: t.TempDir(), Tuning: TuningLarge}, nil, nil)
	if !small.SyncWrites || !large.SyncWrites {
		t.Fatalf("SyncWrites: small %v, large %v; want both on", small.SyncWrites, large.SyncWrites)
	}
	if small.MemTableSize != 8<<20 || large.MemTableSize != 32<<20 {
		t.Errorf("memtables: small %d, large %d; want 8 and 32 MiB", small.MemTableSize, large.MemTableSize)
	}
	if small.NumLevelZeroTablesStall != 3 || large.NumLevelZeroTablesStall != 8 {
		t.Errorf("level 0 stalls at: small %d, large %d tables; want 3 and 8", small.NumLevelZeroTablesStall, large.NumLevelZeroTablesStall)
	}
	if small.ValueThreshold != large.ValueThreshold {
		t.Errorf("value threshold: small %d, large %d; the profiles must store records alike", small.ValueThreshold, large.ValueThreshold)
	}
}

// A store written with one profile opens with the other and keeps every
// record: a node's profile can change between restarts (store.profile
// auto changes it when the node joins a federation).
func TestAStoreWrittenWithOneTuningOpensWithTheOther(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	n := 0
	for _, p := range []Tuning{TuningLarge, TuningSmall, TuningLarge} {
		l := openTestLog(t, dir, Options{Tuning: p})
		if got := l.Size(); got != uint64(n) {
			t.Fatalf("profile %d: size %d after reopening, want %d", p, got, n)
		}
		for i := range 50 {
			if _, err := l.Append(ctx, testRecord(n+i)); err != nil {
				t.Fatal(err)
			}
		}
		n += 50
		for i := range n {
			if _, err := l.Get(uint64(i)); err != nil {
				t.Fatalf("profile %d: record %d: %v", p, i, err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Badger's routine info lines go to debug, but a level-0 stall (every write
// waited) is a warning an operator sees.
func TestBadgerStallIsAWarning(t *testing.T) {
	var buf bytes.Buffer
	b := badgerLogger{l: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	b.Infof("Compaction for level: %d DONE\n", 0)
	b.Infof("L0 was stalled for %s\n", "2.5s")
	out := buf.String()
	if strings.Contains(out, "Compaction") {
		t.Errorf("a routine line reached the info level: %s", out)
	}
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, `msg="L0 was stalled for 2.5s"`) || !strings.Contains(out, "component=badger") {
		t.Errorf("the stall line: %q", out)
	}
}

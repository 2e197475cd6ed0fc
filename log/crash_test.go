package log

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The crash test runs a writer process (this test binary, re-executed) that
// appends from many goroutines and prints an "ack <seq> <sha256 of payload>"
// line after each Append returns, SIGKILLs it at a random moment, reopens the
// log and checks that every acknowledged record is there, that the log has
// no holes, and that the derived state agrees with the records.

const (
	crashWriterEnv     = "INTERMESH_CRASH_WRITER" // the log directory, in the writer process
	crashKillsEnv      = "INTERMESH_CRASH_KILLS"  // how many times to kill the writer
	defaultCrashKills  = 20
	crashWriterWorkers = 32
	crashTallyKey      = "T/crash/tally"
)

// crashWriterOptions are the options the writer and the checker open the log
// with. Derived state added here (a BatchIndexer) is committed under kill -9;
// checkCrashLog then has to check it too.
func crashWriterOptions(dir string) Options {
	return Options{
		Dir:           dir,
		Origin:        "crash.example",
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		BatchIndexers: []BatchIndexer{crashTally{}},
	}
}

// crashTally is derived state that depends on every record: the number of
// records and a hash chain over their leaves, chain = SHA-256(chain || leaf),
// stored as count (8 bytes) | chain (32 bytes).
type crashTally struct{}

func (crashTally) IndexBatch(txn *badger.Txn, recs []Record) error {
	count, chain, err := readCrashTally(txn)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.Seq != count {
			return fmt.Errorf("record %d follows a tally of %d", r.Seq, count)
		}
		chain = chainLeaf(chain, &r)
		count++
	}
	return txn.Set([]byte(crashTallyKey), append(fmt.Appendf(nil, "%016x", count), chain[:]...))
}

func chainLeaf(chain [32]byte, r *Record) [32]byte {
	return sha256.Sum256(append(chain[:], r.MarshalLeaf()...))
}

func readCrashTally(txn *badger.Txn) (uint64, [32]byte, error) {
	var chain [32]byte
	item, err := txn.Get([]byte(crashTallyKey))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, chain, nil
	}
	if err != nil {
		return 0, chain, err
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return 0, chain, err
	}
	count, err := strconv.ParseUint(string(v[:16]), 16, 64)
	copy(chain[:], v[16:])
	return count, chain, err
}

// TestCrashWriterProcess is the writer of TestCrashKillWriter; it does
// nothing unless INTERMESH_CRASH_WRITER names a directory. It appends until
// killed, or until its standard input closes (the parent test is gone).
func TestCrashWriterProcess(t *testing.T) {
	dir := os.Getenv(crashWriterEnv)
	if dir == "" {
		t.Skip("runs only as the writer process of TestCrashKillWriter")
	}
	l, err := Open(context.Background(), crashWriterOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	var outMu sync.Mutex
	var wg sync.WaitGroup
	for range crashWriterWorkers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				payload := make([]byte, 16+rand.N(496))
				for i := range payload {
					payload[i] = byte(rand.Uint32())
				}
				rec, err := l.Append(context.Background(), Record{Kind: KindProfile, Identifier: "crash", Payload: payload})
				if err != nil {
					fmt.Fprintln(os.Stderr, "writer: append:", err)
					t.Error(err)
					return
				}
				sum := sha256.Sum256(payload)
				line := fmt.Sprintf("ack %d %x\n", rec.Seq, sum)
				outMu.Lock()
				os.Stdout.WriteString(line)
				outMu.Unlock()
			}
		})
	}
	wg.Wait()
	l.Close()
}

func crashKills(t *testing.T) int {
	s := os.Getenv(crashKillsEnv)
	if s == "" {
		return defaultCrashKills
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", crashKillsEnv, s)
	}
	return n
}

// crashCheckState is what the checker has verified so far: records below
// verified never change, so each round checks only the new ones.
type crashCheckState struct {
	acked    map[uint64][32]byte
	verified uint64
	chain    [32]byte
	lastTime time.Time
}

func TestCrashKillWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash test starts and kills writer processes")
	}
	if os.Getenv(crashWriterEnv) != "" {
		t.Skip("this is the writer process")
	}
	kills := crashKills(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("kills: %d, seed: %d", kills, seed)
	rng := rand.New(rand.NewPCG(seed, seed>>7))
	dir := t.TempDir()
	st := &crashCheckState{acked: map[uint64][32]byte{}}
	for k := range kills {
		// Most kills come some time after the writer is under load; every
		// fourth comes at a random moment after start, also during Open.
		fromStart := k%4 == 3
		delay := time.Duration(1+rng.IntN(300)) * time.Millisecond
		if fromStart {
			delay = time.Duration(rng.IntN(150)) * time.Millisecond
		}
		acks := runAndKillWriter(t, dir, delay, fromStart)
		checkCrashLog(t, dir, st, acks, k)
		if t.Failed() {
			t.Fatalf("after kill %d (delay %s, from start %v)", k+1, delay, fromStart)
		}
	}
	// Finally check the whole log again from the start.
	full := &crashCheckState{acked: st.acked}
	checkCrashLog(t, dir, full, nil, kills)
	t.Logf("%d records, %d acknowledged", full.verified, len(st.acked))
}

// crashAck is one acknowledgement line of the writer.
type crashAck struct {
	seq uint64
	sum [32]byte
}

// runAndKillWriter starts the writer on dir, SIGKILLs it delay after its
// first acknowledgement (or after its start), and returns the acks it printed.
func runAndKillWriter(t *testing.T, dir string, delay time.Duration, fromStart bool) []crashAck {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashWriterProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashWriterEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe() // the writer stops when this closes
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	firstAck := make(chan struct{})
	readDone := make(chan struct{})
	var acks []crashAck
	var parseErr error
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "ack ") {
				continue
			}
			a, err := parseCrashAck(line)
			if err != nil {
				parseErr = err
				continue
			}
			if len(acks) == 0 {
				close(firstAck)
			}
			acks = append(acks, a)
		}
	}()
	if fromStart {
		<-time.After(delay - time.Since(started))
	} else {
		select {
		case <-firstAck:
			<-time.After(delay)
		case <-readDone:
			t.Fatalf("the writer exited before acknowledging anything: %s", stderr.String())
		case <-time.After(time.Minute):
			t.Fatalf("no acknowledgement from the writer within a minute: %s", stderr.String())
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("killing the writer: %v", err)
	}
	<-readDone
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("writer ended with %v before it was killed: %s", err, stderr.String())
	}
	if parseErr != nil {
		t.Fatal(parseErr)
	}
	return acks
}

func parseCrashAck(line string) (crashAck, error) {
	f := strings.Fields(line)
	if len(f) != 3 {
		return crashAck{}, fmt.Errorf("bad ack line %q", line)
	}
	seq, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return crashAck{}, fmt.Errorf("bad ack line %q: %w", line, err)
	}
	var a crashAck
	a.seq = seq
	if n, err := hex.Decode(a.sum[:], []byte(f[2])); err != nil || n != 32 {
		return crashAck{}, fmt.Errorf("bad ack line %q: %v", line, err)
	}
	return a, nil
}

// checkCrashLog reopens the log and checks the new acks, the records since
// st.verified, and the derived tally.
func checkCrashLog(t *testing.T, dir string, st *crashCheckState, acks []crashAck, round int) {
	t.Helper()
	l, err := Open(t.Context(), crashWriterOptions(dir))
	if err != nil {
		t.Fatalf("reopening after kill %d: %v", round+1, err)
	}
	defer l.Close()
	size := l.Size()
	for _, a := range acks {
		if old, ok := st.acked[a.seq]; ok && old != a.sum {
			t.Errorf("seq %d acknowledged twice with different payloads", a.seq)
		}
		st.acked[a.seq] = a.sum
		if a.seq >= size {
			t.Errorf("acknowledged record %d is lost: the log has %d records", a.seq, size)
			continue
		}
		rec, err := l.Get(a.seq)
		if err != nil {
			t.Errorf("acknowledged record %d: %v", a.seq, err)
		} else if sha256.Sum256(rec.Payload) != a.sum {
			t.Errorf("acknowledged record %d holds another payload", a.seq)
		}
	}
	c := Constraints{From: st.verified, MaxEntries: MaxPageEntries}
	for {
		page, err := l.Range(t.Context(), c)
		if err != nil {
			t.Fatalf("reading records from %d: %v", c.From, err)
		}
		for _, r := range page.Records {
			if r.Seq != st.verified {
				t.Fatalf("hole: record %d follows %d", r.Seq, st.verified-1)
			}
			if r.Time.Before(st.lastTime) {
				t.Errorf("record %d time %s is before the previous record's %s", r.Seq, r.Time, st.lastTime)
			}
			if sum, ok := st.acked[r.Seq]; ok && sha256.Sum256(r.Payload) != sum {
				t.Errorf("acknowledged record %d holds another payload", r.Seq)
			}
			st.chain = chainLeaf(st.chain, &r)
			st.lastTime = r.Time
			st.verified++
		}
		if page.PageKey == "" {
			break
		}
		c.PageKey = page.PageKey
	}
	if st.verified != size {
		t.Errorf("read %d records, the log says it has %d", st.verified, size)
	}
	err = l.DB().View(func(txn *badger.Txn) error {
		count, chain, err := readCrashTally(txn)
		if err != nil {
			return err
		}
		if count != size || chain != st.chain {
			t.Errorf("derived tally = %d records, chain %x; the records imply %d, %x", count, chain[:4], size, st.chain[:4])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

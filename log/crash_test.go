package log_test

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

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/intermesh/intermesh/internal/faultfs"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
)

// The crash test runs a writer process (this test binary, re-executed) that
// appends from many goroutines and prints an "ack <seq> <sha256 of payload>"
// line after each Append returns, SIGKILLs it at a random moment, reopens the
// log and checks that every acknowledged record is there, that the log has
// no holes, and that the derived state (the Merkle tree, written in the same
// transactions as the records) agrees with the records: its stored root
// equals a root recomputed from the records alone.

const (
	crashWriterEnv     = "INTERMESH_CRASH_WRITER" // the log directory, in the writer process
	crashKillsEnv      = "INTERMESH_CRASH_KILLS"  // how many times to kill the writer
	defaultCrashKills  = 20
	crashWriterWorkers = 32
)

// crashTreePrefix is the Merkle tree's prefix in the crash test's database.
var crashTreePrefix = []byte("crash")

// crashWriterOptions are the options the writer and the checker open the log
// with: the real Merkle tree is the derived state committed under kill -9,
// and checkCrashLog checks it against the records.
func crashWriterOptions(dir string) log.Options {
	return log.Options{
		Dir:           dir,
		Origin:        "crash.example",
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		BatchIndexers: []log.BatchIndexer{merkle.NewTree(nil, crashTreePrefix)},
	}
}

// TestMain makes this test binary the writer process of TestCrashKillWriter
// when INTERMESH_CRASH_WRITER names a directory, and the server of a
// faultfs mount when it was started for one.
func TestMain(m *testing.M) {
	faultfs.ServeIfAsked()
	if dir := os.Getenv(crashWriterEnv); dir != "" {
		if err := runCrashWriter(dir); err != nil {
			fmt.Fprintln(os.Stderr, "writer:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runCrashWriter appends from many goroutines, printing an ack line after
// each Append returns, until killed or until its standard input closes (the
// parent test is gone).
func runCrashWriter(dir string) error {
	l, err := log.Open(context.Background(), crashWriterOptions(dir))
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	var (
		outMu  sync.Mutex
		wg     sync.WaitGroup
		errMu  sync.Mutex
		failed error
	)
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
				rec, err := l.Append(context.Background(), log.Record{Kind: "Profile", Identifier: "crash", Payload: payload})
				if err != nil {
					errMu.Lock()
					failed = errors.Join(failed, err)
					errMu.Unlock()
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
	return errors.Join(failed, l.Close())
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
	// tree is the compact range of every verified record, recomputed by
	// the checker from the records alone.
	tree     *compact.Range
	lastTime time.Time
}

func newCrashCheckState(acked map[uint64][32]byte) *crashCheckState {
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	return &crashCheckState{acked: acked, tree: rf.NewEmptyRange(0)}
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
	st := newCrashCheckState(map[uint64][32]byte{})
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
	full := newCrashCheckState(st.acked)
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
	cmd := exec.Command(os.Args[0])
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
	l, err := log.Open(t.Context(), crashWriterOptions(dir))
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
	c := log.Constraints{From: st.verified, MaxEntries: log.MaxPageEntries}
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
			if err := st.tree.Append(rfc6962.DefaultHasher.HashLeaf(r.MarshalLeaf()), nil); err != nil {
				t.Fatal(err)
			}
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
	tree := merkle.NewTree(l.DB(), crashTreePrefix)
	treeSize, err := tree.Size()
	if err != nil {
		t.Fatal(err)
	}
	if treeSize != size {
		t.Fatalf("the Merkle tree covers %d records, the log holds %d", treeSize, size)
	}
	want, err := st.tree.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tree.Root(size)
	if err != nil {
		t.Fatalf("stored root at %d: %v", size, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("stored root at %d is %x; recomputed from the records it is %x", size, got, want)
	}
}

package intermesh

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
)

// The evidence crash test runs an appender process (this test binary,
// re-executed) that appends the Evidence records of crashEvidence pieces of
// evidence, one after the other, as a restarted node does, and SIGKILLs it
// at random moments, again and again; every run starts over from the first
// piece. Afterwards the log must hold exactly one Evidence record of each
// piece appended: a record and its index are written in one transaction
// (EvidenceIndexer), so no kill can leave a record the next run does not
// know about.

const (
	evidenceCrashEnv = "INTERMESH_EVIDENCE_CRASH" // the log directory, in the appender process
	crashEvidence    = 400
	evidenceKills    = 6
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(evidenceCrashEnv); dir != "" {
		if err := runEvidenceAppender(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// crashFederation is a one-member federation with a fixed key, the same in
// both processes.
func crashFederation() (*config.Federation, ed25519.PrivateKey, error) {
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	origin := "crash/node0"
	vkey, err := config.VerifierKey(origin, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, nil, err
	}
	id, err := config.PeerIDFromKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, nil, err
	}
	fed := &config.Federation{Name: "crash", EpochPeriod: config.Duration{Duration: time.Second},
		Members: []config.Member{{Origin: origin, PeerID: id.String(), Key: vkey}}}
	return fed, key, fed.Validate()
}

func crashLogOptions(dir string) log.Options {
	return log.Options{
		Dir: dir, Origin: "crash/node0", Logger: slog.New(slog.DiscardHandler),
		Indexers:      []log.Indexer{EvidenceIndexer{}},
		BatchIndexers: []log.BatchIndexer{merkle.NewTree(nil, []byte("local"))},
	}
}

// crashEvidenceItem is the i-th piece of evidence of the test (its notes
// need not verify: only the Evidence records are counted).
func crashEvidenceItem(i int) Evidence {
	return Evidence{Origin: "crash/node0", Reason: "test", Notes: [2][]byte{fmt.Appendf(nil, "a%d", i), fmt.Appendf(nil, "b%d", i)}}
}

// runEvidenceAppender is the appender process.
func runEvidenceAppender(dir string) error {
	fed, key, err := crashFederation()
	if err != nil {
		return err
	}
	l, err := log.Open(context.Background(), crashLogOptions(dir))
	if err != nil {
		return err
	}
	m, err := newMesh(Config{Federation: fed, Origin: "crash/node0", Key: key, Listen: testListen, DB: l.DB(), Log: l})
	if err != nil {
		return err
	}
	fmt.Println("ready")
	for i := range crashEvidence {
		if err := m.appendEvidence(context.Background(), crashEvidenceItem(i)); err != nil {
			return err
		}
	}
	fmt.Println("done")
	return l.Close()
}

func TestEvidenceIsAppendedOnceAcrossKills(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for range evidenceKills {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), evidenceCrashEnv+"="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		if !sc.Scan() || sc.Text() != "ready" {
			t.Fatalf("appender did not start: %q", sc.Text())
		}
		// Kill it somewhere in the middle of its appends.
		timer := time.AfterFunc(time.Duration(rand.IntN(150)+20)*time.Millisecond, func() { cmd.Process.Kill() })
		for sc.Scan() {
		}
		timer.Stop()
		_ = cmd.Wait()
	}
	l, err := log.Open(context.Background(), crashLogOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	seen := map[string]int{}
	for seq := range l.Size() {
		rec, err := l.Get(seq)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kind != KindEvidence {
			continue
		}
		var e Evidence
		if err := json.Unmarshal(rec.Payload, &e); err != nil {
			t.Fatal(err)
		}
		seen[string(e.Notes[0])]++
	}
	if len(seen) == 0 {
		t.Fatal("no Evidence record was appended before the kills")
	}
	var dups []string
	for k, n := range seen {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%s×%d", k, n))
		}
	}
	if len(dups) > 0 {
		t.Fatalf("%d of %d pieces of evidence were appended more than once: %s", len(dups), len(seen), strings.Join(dups, " "))
	}
	t.Logf("%d pieces of evidence appended once each over %d kills", len(seen), evidenceKills)
}

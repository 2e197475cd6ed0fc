package testnet

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/mod/sumdb/note"
	"zombiezen.com/go/sqlite"
	"zombiezen.com/go/sqlite/sqlitex"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/node"
	"github.com/intermesh/intermesh/portal/witness"
)

// This file runs a real outside witness, torchwood's litewitness (built
// from its module by the test), and checks that a node's checkpoints get
// cosigned by it and by the federation's other members.

// buildLitewitness builds litewitness into dir.
func buildLitewitness(t *testing.T, dir string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build litewitness: %v", err)
	}
	bin := filepath.Join(dir, "litewitness")
	cmd := exec.CommandContext(t.Context(), goTool, "build", "-o", bin, "filippo.io/torchwood/cmd/litewitness")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building litewitness: %v\n%s", err, out)
	}
	return bin
}

// serveSSHAgent serves an ssh-agent holding key on a unix socket (what
// litewitness signs with) until the test ends.
func serveSSHAgent(t *testing.T, key ed25519.PrivateKey) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lw") // a short path: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "agent")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: key}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { defer c.Close(); _ = agent.ServeAgent(keyring, c) })
		}
	})
	return sock
}

// seedLitewitness writes litewitness's database, witnessing origin with
// the log key vkey (what its witnessctl add-log and add-key do).
func seedLitewitness(t *testing.T, path, origin, vkey string) {
	t.Helper()
	conn, err := sqlite.OpenConn(path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = sqlitex.ExecuteScript(conn, `
		CREATE TABLE IF NOT EXISTS log (origin TEXT PRIMARY KEY, tree_size INTEGER NOT NULL, tree_hash TEXT NOT NULL);
		CREATE TABLE IF NOT EXISTS key (origin TEXT NOT NULL, key TEXT NOT NULL, FOREIGN KEY(origin) REFERENCES log(origin));`, nil)
	if err != nil {
		t.Fatal(err)
	}
	empty := sha256.Sum256(nil)
	if err := sqlitex.Execute(conn, "INSERT INTO log (origin, tree_size, tree_hash) VALUES (?, 0, ?)",
		&sqlitex.ExecOptions{Args: []any{origin, base64.StdEncoding.EncodeToString(empty[:])}}); err != nil {
		t.Fatal(err)
	}
	if err := sqlitex.Execute(conn, "INSERT INTO key (origin, key) VALUES (?, ?)", &sqlitex.ExecOptions{Args: []any{origin, vkey}}); err != nil {
		t.Fatal(err)
	}
}

// startLitewitness runs litewitness as name with key, witnessing origin,
// and returns its URL.
func startLitewitness(t *testing.T, name string, key ed25519.PrivateKey, origin, logKey string) string {
	t.Helper()
	dir := t.TempDir()
	bin := buildLitewitness(t, dir)
	db := filepath.Join(dir, "litewitness.db")
	seedLitewitness(t, db, origin, logKey)
	port, err := FreeBasePort(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	pub := sha256.Sum256(key.Public().(ed25519.PublicKey))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-name="+name, "-db="+db, "-ssh-agent="+serveSSHAgent(t, key),
		"-listen="+addr, "-key="+hex.EncodeToString(pub[:]))
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("litewitness logs:\n%s", logs.String())
		}
	})
	err = WaitFor(t.Context(), 30*time.Second, "litewitness listening", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + addr
}

// cosignedCheckpoint GETs a node's cosigned checkpoint; nil if none yet.
func cosignedCheckpoint(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url + "/cosigned/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	return b
}

func TestALitewitnessAndTheOtherMembersCosignANodesCheckpoints(t *testing.T) {
	httpBase, err := FreeBasePort(2)
	if err != nil {
		t.Fatal(err)
	}
	p2pBase, err := FreeBasePort(2, httpBase)
	if err != nil {
		t.Fatal(err)
	}
	l := Layout{Dir: t.TempDir(), Nodes: 2, Name: "testnet", HTTPBasePort: httpBase, P2PBasePort: p2pBase, Period: time.Second}
	fed, err := Generate(l)
	if err != nil {
		t.Fatal(err)
	}
	origin0, origin1 := fed.Members[0].Origin, fed.Members[1].Origin

	// litewitness witnesses node 0's log only: node 1 learns it does not
	// know its log (a 403, litewitness's answer for an unknown origin).
	_, wkey, _ := ed25519.GenerateKey(nil)
	const wname = "witness.example/litewitness"
	url := startLitewitness(t, wname, wkey, origin0, fed.Members[0].Key)
	tw, err := torchwood.NewCosignatureSigner(wname, wkey)
	if err != nil {
		t.Fatal(err)
	}
	litewitness := tw.Verifier() // torchwood's own cosignature/v1 verifier
	policy := fmt.Sprintf("# the test's outside witness\nwitness lw %s %s\nquorum 1\n", litewitness.String(), url)
	for i := range 2 {
		if err := os.WriteFile(filepath.Join(l.NodeDir(i), node.WitnessPolicyFile), []byte(policy), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tn, err := Start(t.Context(), Options{Layout: l})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tn.Close(); err != nil {
			t.Errorf("closing the testnet: %v", err)
		}
	})

	// Node 1's cosignature as a witness, checked by torchwood with node 1's
	// own key.
	key1, err := config.LoadKey(filepath.Join(l.NodeDir(1), config.KeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	member1, err := torchwood.NewCosignatureSigner(witness.CosignerName(origin1), key1)
	if err != nil {
		t.Fatal(err)
	}
	logKey0, err := note.NewVerifier(fed.Members[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	cosignedBy := func(signed []byte) (size uint64, byWitness, byMember bool) {
		n, err := note.Open(signed, note.VerifierList(logKey0, litewitness, member1.Verifier()))
		if err != nil {
			t.Fatalf("the cosigned checkpoint does not verify: %v\n%s", err, signed)
		}
		for _, s := range n.Sigs {
			byWitness = byWitness || s.Name == wname
			byMember = byMember || s.Name == member1.Name()
		}
		size, err = strconv.ParseUint(strings.Split(n.Text, "\n")[1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return size, byWitness, byMember
	}
	var first []byte
	err = WaitFor(t.Context(), 30*time.Second, "a checkpoint of node 0 cosigned by litewitness and node 1", func() bool {
		first = cosignedCheckpoint(t, tn.PortalURL(0))
		if first == nil {
			return false
		}
		_, w, m := cosignedBy(first)
		return w && m
	})
	if err != nil {
		t.Fatal(err)
	}
	firstSize, _, _ := cosignedBy(first)

	// A changed byte of litewitness's cosignature does not verify.
	lines := strings.Split(strings.TrimSuffix(string(first), "\n"), "\n")
	for i, line := range lines {
		if !strings.HasPrefix(line, "— "+wname+" ") {
			continue
		}
		sig, _ := base64.StdEncoding.DecodeString(line[strings.LastIndex(line, " ")+1:])
		sig[len(sig)-1] ^= 1
		lines[i] = "— " + wname + " " + base64.StdEncoding.EncodeToString(sig)
	}
	changed := []byte(strings.Join(lines, "\n") + "\n")
	if n, err := note.Open(changed, note.VerifierList(litewitness)); err == nil {
		t.Fatalf("a changed litewitness cosignature verified: %v", n.Sigs)
	}

	// Node 1 goes on without a policy cosignature: litewitness refused its
	// unknown log, and node 1 serves no cosigned checkpoint.
	if err := WaitFor(t.Context(), 10*time.Second, "node 1's failed submission counted", func() bool {
		return metric(t, tn, 1, `intermesh_witness_submissions_total{outcome="failed"}`) > 0
	}); err != nil {
		t.Fatal(err)
	}
	if c := cosignedCheckpoint(t, tn.PortalURL(1)); c != nil {
		t.Fatalf("node 1 serves a cosigned checkpoint though its only policy witness refused it:\n%s", c)
	}

	// A restarted node 0 no longer knows what litewitness cosigned: it gets
	// a 409, retries from the size litewitness knows with a consistency
	// proof, and is cosigned again.
	if err := tn.StopNode(0); err != nil {
		t.Fatal(err)
	}
	if err := tn.StartNode(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	err = WaitFor(t.Context(), 30*time.Second, "a larger checkpoint cosigned after node 0's restart", func() bool {
		c := cosignedCheckpoint(t, tn.PortalURL(0))
		if c == nil {
			return false
		}
		size, w, _ := cosignedBy(c)
		return w && size > firstSize
	})
	if err != nil {
		t.Fatal(err)
	}
}

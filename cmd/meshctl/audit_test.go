package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/intermesh/intermesh/audit"
	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/testnet"
)

// auditToken is the Transfer token the test federation's nodes accept.
const auditToken = "audit-token"

// auditNet is a running 4-node federation with 1 s rounds whose nodes
// serve Transfer only with auditToken.
type auditNet struct {
	*testnet.Testnet
	layout  testnet.Layout
	fedPath string
}

func startAuditNet(t *testing.T) *auditNet {
	t.Helper()
	httpBase, err := testnet.FreeBasePort(4)
	if err != nil {
		t.Fatal(err)
	}
	p2pBase, err := testnet.FreeBasePort(4, httpBase)
	if err != nil {
		t.Fatal(err)
	}
	l := testnet.Layout{Dir: t.TempDir(), Nodes: 4, Name: "testnet", HTTPBasePort: httpBase, P2PBasePort: p2pBase, Period: time.Second}
	if _, err := testnet.Generate(l); err != nil {
		t.Fatal(err)
	}
	for i := range l.Nodes {
		path := filepath.Join(l.NodeDir(i), config.FileName)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.Replace(b, []byte(`# transfer_token = ""`), []byte(`transfer_token = "`+auditToken+`"`), 1)
		b = bytes.Replace(b, []byte(`transfer_public = true`), []byte(`transfer_public = false`), 1)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tn, err := testnet.Start(t.Context(), testnet.Options{Layout: l})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tn.Close(); err != nil {
			t.Errorf("closing the testnet: %v", err)
		}
	})
	return &auditNet{Testnet: tn, layout: l, fedPath: filepath.Join(l.Dir, testnet.FederationFile)}
}

// publish publishes n fresh profiles at each node.
func (a *auditNet) publish(t *testing.T, n int) {
	t.Helper()
	for i := range a.Size() {
		c, err := client.New(a.PortalURL(i))
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			entry, id, key, err := testnet.NewProfile()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := testnet.CreateAccountWith(t.Context(), c, a.Account(i, id), entry, key); err != nil {
				t.Fatalf("publish at node %d: %v", i, err)
			}
		}
	}
}

// waitForProofs waits until every node's Status proves a certificate that
// covers every member, with a consistency proof from an earlier checkpoint
// for at least one of them.
func (a *auditNet) waitForProofs(t *testing.T) {
	t.Helper()
	for i := range a.Size() {
		c, err := client.New(a.PortalURL(i))
		if err != nil {
			t.Fatal(err)
		}
		err = testnet.WaitFor(t.Context(), 20*time.Second, "Status proofs of every member", func() bool {
			st, err := c.Status(t.Context())
			return err == nil && len(st.Peers) == a.Size() &&
				slices.ContainsFunc(st.Peers, func(p portal.PeerProof) bool { return p.PreviousCheckpoint != "" })
		})
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
}

// audit runs meshctl audit with --json and returns its report and result.
func (a *auditNet) audit(t *testing.T, args ...string) (auditReportJSON, result) {
	t.Helper()
	full := append([]string{"--json", "audit", "--federation", a.fedPath, "--token", auditToken}, args...)
	var out, errb bytes.Buffer
	code := run(t.Context(), full, strings.NewReader(""), &out, &errb)
	r := result{stdout: out.String(), stderr: errb.String(), code: code}
	var rep auditReportJSON
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("audit --json: exit %d, output is not JSON: %v\n%s\n%s", code, err, r.stdout, r.stderr)
	}
	return rep, r
}

// auditReportJSON is the report as a machine reads it.
type auditReportJSON struct {
	OK    bool `json:"ok"`
	Nodes []struct {
		URL             string                `json:"url"`
		Origin          string                `json:"origin"`
		Size            uint64                `json:"size"`
		Entries         uint64                `json:"entries"`
		Failed          int                   `json:"failed"`
		Checks          map[string]checkCount `json:"checks"`
		RoundsCertified int                   `json:"rounds_certified"`
		Unreachable     string                `json:"unreachable"`
	} `json:"nodes"`
	Failures []auditFailure   `json:"failures"`
	Evidence []evidenceReport `json:"evidence"`
}

// failuresOf returns the failures of check at the node of origin.
func (r *auditReportJSON) failuresOf(origin, check string) []auditFailure {
	var out []auditFailure
	for _, f := range r.Failures {
		if f.Origin == origin && f.Check == check {
			out = append(out, f)
		}
	}
	return out
}

func TestAuditUsageMistakesExitWithTwo(t *testing.T) {
	fed := filepath.Join(t.TempDir(), "federation.toml")
	for name, args := range map[string][]string{
		"no federation file":    {"audit"},
		"a missing federation":  {"audit", "--federation", fed},
		"a node that is no URL": {"audit", "--federation", fed, "--node", "localhost:8080"},
		"an argument":           {"audit", "--federation", fed, "extra"},
	} {
		var out, errb bytes.Buffer
		if code := run(t.Context(), args, strings.NewReader(""), &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "audit") {
			t.Errorf("%s: exit %d, stderr %q", name, code, errb.String())
		}
	}
}

// TestAuditOfATestnet audits a live 4-node federation: it passes while every
// node is honest, fails naming the member when one serves a checkpoint that
// contradicts what the federation certified, and fails naming the node and
// the root check when a node's data is changed on disk. The cases share one
// testnet (to keep the suite fast) and run in this order.
func TestAuditOfATestnet(t *testing.T) {
	net := startAuditNet(t)
	net.publish(t, 3)
	net.waitForProofs(t)

	t.Run("a healthy federation passes every check", func(t *testing.T) {
		cache := t.TempDir()
		rep, r := net.audit(t, "--cache", cache)
		if r.code != exitOK || !rep.OK {
			t.Fatalf("exit %d, failures:\n%v\n%s", r.code, rep.Failures, r.stderr)
		}
		if len(rep.Nodes) != 4 {
			t.Fatalf("%d nodes in the report", len(rep.Nodes))
		}
		for _, n := range rep.Nodes {
			if n.RoundsCertified == 0 || n.Entries < n.Size || n.Size == 0 {
				t.Errorf("%s: %d rounds certified, %d entries, size %d", n.Origin, n.RoundsCertified, n.Entries, n.Size)
			}
			for _, check := range []string{checkCheckpoint, checkEntries, checkRoot, checkPeerCP, checkConsistency, checkStatusCert, checkMasterIncl, checkRecordIncl, checkMasterRecords, checkEquivocation, checkMap} {
				if n.Checks[check].Passed == 0 {
					t.Errorf("%s: check %q never ran", n.Origin, check)
				}
			}
			t.Logf("%s: map lines checked %+v", n.Origin, n.Checks[checkMap])
		}
		// A second run reads the cache back and fetches only what is new;
		// the human report says it passed.
		args := []string{"audit", "--federation", net.fedPath, "--token", auditToken, "--cache", cache}
		var out, errb bytes.Buffer
		if code := run(t.Context(), args, strings.NewReader(""), &out, &errb); code != exitOK ||
			!strings.Contains(out.String(), "Audit passed") || !strings.Contains(out.String(), "rounds certified") {
			t.Fatalf("second run: exit %d\n%s%s", code, out.String(), errb.String())
		}
		files, _ := filepath.Glob(filepath.Join(cache, "*", "*.jsonl"))
		if len(files) < 4 {
			t.Errorf("cache holds %d logs, want at least the 4 nodes' own", len(files))
		}
	})

	t.Run("without the Transfer token the audit fails, naming the node", func(t *testing.T) {
		args := []string{"--json", "audit", "--federation", net.fedPath, "--node", net.PortalURL(0), "--token", ""}
		var out, errb bytes.Buffer
		code := run(t.Context(), args, strings.NewReader(""), &out, &errb)
		if code != exitFailure || !strings.Contains(out.String(), "Transfer refused") || !strings.Contains(out.String(), "testnet/node0") {
			t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
		}
	})

	t.Run("a node equivocating about a certified checkpoint is named", func(t *testing.T) {
		forged := forgeCertifiedCheckpoint(t, net, 2)
		fake := fakeCheckpointServer(t, net.PortalURL(2), forged)
		rep, r := net.audit(t, "--node", net.PortalURL(0), "--node", net.PortalURL(1), "--node", fake, "--node", net.PortalURL(3))
		if r.code != exitFailure || rep.OK {
			t.Fatalf("exit %d, ok %v", r.code, rep.OK)
		}
		eq := rep.failuresOf("testnet/node2", checkEquivocation)
		if len(eq) == 0 || !strings.Contains(eq[0].Detail, "two roots for tree size") {
			t.Fatalf("no equivocation failure of testnet/node2: %v", rep.Failures)
		}
		if len(rep.Evidence) == 0 || rep.Evidence[0].Origin != "testnet/node2" ||
			(rep.Evidence[0].Notes[0] != forged && rep.Evidence[0].Notes[1] != forged) {
			t.Fatalf("the evidence does not carry the forged note: %+v", rep.Evidence)
		}
		roots := rep.failuresOf("testnet/node2", checkRoot)
		if len(roots) == 0 || roots[0].URL != fake {
			t.Errorf("no checkpoint root failure at %s: %v", fake, rep.Failures)
		}
		for _, f := range rep.Failures {
			if f.Origin != "testnet/node2" {
				t.Errorf("an honest node failed: %s", f)
			}
		}
	})

	t.Run("a node whose Status proofs do not verify is named", func(t *testing.T) {
		fake := fakeStatusServer(t, net.PortalURL(3))
		rep, r := net.audit(t, "--node", fake, "--no-replicas")
		if r.code != exitFailure || rep.OK {
			t.Fatalf("exit %d, ok %v", r.code, rep.OK)
		}
		incl := rep.failuresOf("testnet/node3", checkMasterIncl)
		if len(incl) == 0 || incl[0].URL != fake {
			t.Fatalf("no master hash inclusion failure at %s: %v", fake, rep.Failures)
		}
	})

	t.Run("a member that is down is reported unreachable and the others judged", func(t *testing.T) {
		if err := net.StopNode(3); err != nil {
			t.Fatal(err)
		}
		rep, r := net.audit(t, "--no-replicas")
		if r.code != exitOK || !rep.OK {
			t.Fatalf("exit %d, failures:\n%v\n%s", r.code, rep.Failures, r.stderr)
		}
		down := 0
		for _, n := range rep.Nodes {
			switch {
			case n.Origin == "testnet/node3" && n.Unreachable != "":
				down++
			case n.Origin != "testnet/node3" && (n.Unreachable != "" || n.RoundsCertified == 0):
				t.Errorf("%s: unreachable %q, %d rounds certified", n.Origin, n.Unreachable, n.RoundsCertified)
			}
		}
		if down != 1 {
			t.Fatalf("the stopped member is not reported unreachable: %+v", rep.Nodes)
		}
		var out, errb bytes.Buffer
		run(t.Context(), []string{"audit", "--federation", net.fedPath, "--token", auditToken, "--no-replicas"}, strings.NewReader(""), &out, &errb)
		if !strings.Contains(out.String(), "UNREACHABLE") || !strings.Contains(out.String(), "not reached: testnet/node3") {
			t.Errorf("human report:\n%s", out.String())
		}
		// With the replicas, the down member's map lines are still checked.
		rep, r = net.audit(t)
		if r.code != exitOK || !rep.OK {
			t.Fatalf("with replicas: exit %d, failures:\n%v\n%s", r.code, rep.Failures, r.stderr)
		}
		for _, n := range rep.Nodes {
			if n.Origin == "testnet/node3" && n.Checks[checkMap].Passed == 0 {
				t.Errorf("the down member's map lines were not checked from a replica: %+v", n.Checks)
			}
		}
		if err := net.StartNode(t.Context(), 3); err != nil {
			t.Fatal(err)
		}
		net.waitForProofs(t)
	})

	t.Run("a node whose data was changed on disk is named", func(t *testing.T) {
		if err := net.StopNode(1); err != nil {
			t.Fatal(err)
		}
		tamperFirstRecord(t, filepath.Join(net.layout.NodeDir(1), "data"))
		if err := net.StartNode(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		net.waitForProofs(t)
		rep, r := net.audit(t)
		if r.code != exitFailure || rep.OK {
			t.Fatalf("exit %d, ok %v", r.code, rep.OK)
		}
		roots := rep.failuresOf("testnet/node1", checkRoot)
		if len(roots) == 0 || !strings.Contains(roots[0].Node, net.PortalURL(1)) || !strings.Contains(roots[0].Detail, "the checkpoint of testnet/node1") {
			t.Fatalf("no checkpoint root failure of testnet/node1: %v", rep.Failures)
		}
		for _, f := range rep.Failures {
			if f.Origin != "testnet/node1" {
				t.Errorf("another node failed: %s", f)
			}
		}
		// The human report names the node and the check.
		var out, errb bytes.Buffer
		run(t.Context(), []string{"audit", "--federation", net.fedPath, "--token", auditToken, "--node", net.PortalURL(1)}, strings.NewReader(""), &out, &errb)
		if !strings.Contains(out.String(), "testnet/node1 ("+net.PortalURL(1)+"): checkpoint root: the root of the first") {
			t.Errorf("human report:\n%s", out.String())
		}
	})
}

// forgeCertifiedCheckpoint takes node i's checkpoint from a certificate
// that node 0 proves in Status and signs, with node i's own key, the same
// checkpoint with another root: an equivocation.
func forgeCertifiedCheckpoint(t *testing.T, net *auditNet, i int) string {
	t.Helper()
	c, _ := client.New(net.PortalURL(0))
	st, err := c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	origin := net.layout.Origin(i)
	for _, p := range st.Peers {
		if p.Origin != origin {
			continue
		}
		cp, err := merkle.ParseCheckpoint([]byte(audit.NoteText(p.Checkpoint)))
		if err != nil {
			t.Fatal(err)
		}
		cp.Root[0] ^= 1
		key, err := config.LoadKey(filepath.Join(net.layout.NodeDir(i), config.KeyFileName))
		if err != nil {
			t.Fatal(err)
		}
		signer, err := merkle.NewSigner(origin, key)
		if err != nil {
			t.Fatal(err)
		}
		forged, err := merkle.SignCheckpoint(cp, signer)
		if err != nil {
			t.Fatal(err)
		}
		return string(forged)
	}
	t.Fatalf("node 0's Status proves no checkpoint of %s", origin)
	return ""
}

// fakeCheckpointServer stands in for a node: it serves checkpoint at GET
// /checkpoint and passes everything else to the real node at target.
func fakeCheckpointServer(t *testing.T, target, checkpoint string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/checkpoint" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write([]byte(checkpoint))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// fakeStatusServer stands in for the node at target, passing everything to
// it but changing a byte of the first master-hash inclusion proof in each
// Status answer.
func fakeStatusServer(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = func(resp *http.Response) error {
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var m map[string]*portal.StatusResponse
		if bytes.Contains(b, []byte(`"StatusResponse"`)) && json.Unmarshal(b, &m) == nil {
			if st := m["StatusResponse"]; st != nil && len(st.Peers) > 0 && len(st.Peers[0].MasterHashInclusion) > 0 {
				st.Peers[0].MasterHashInclusion[0][0] ^= 1
				b, _ = json.Marshal(m)
			}
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Del("Content-Length")
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return srv.URL
}

// tamperFirstRecord opens a stopped node's Badger store and moves the time
// of its log's record 0 by one nanosecond (the leaf encoding's bytes 9–16),
// as an operator rewriting history on disk would.
func tamperFirstRecord(t *testing.T, dir string) {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithMetricsEnabled(false).WithValueLogFileSize(64 << 20))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key := []byte{'L', 0, 0, 'r', 0, 0, 0, 0, 0, 0, 0, 0} // own log, record 0 (log/keys.go)
	err = db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if err != nil {
			return err
		}
		leaf, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		leaf[16]++
		return txn.Set(key, leaf)
	})
	if err != nil {
		t.Fatal(err)
	}
}

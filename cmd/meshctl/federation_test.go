package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/intermesh"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/node"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/testnet"
)

const federationToken = "federation-test-operator-token"

// meshctl runs meshctl with args and returns its result.
func meshctl(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(t.Context(), args, strings.NewReader(""), &out, &errb)
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// TestAFifthMemberAddedWithMeshctlIsAuditedAcrossTheChange drives the
// README's walk-through on real in-process nodes: propose, sign at each
// member's own node, the new member's own signature, start it, then audit
// the federation across the change from the genesis file alone.
func TestAFifthMemberAddedWithMeshctlIsAuditedAcrossTheChange(t *testing.T) {
	httpBase, err := testnet.FreeBasePort(4)
	if err != nil {
		t.Fatal(err)
	}
	p2pBase, err := testnet.FreeBasePort(4, httpBase)
	if err != nil {
		t.Fatal(err)
	}
	l := testnet.Layout{Dir: t.TempDir(), Nodes: 4, Name: "testnet", HTTPBasePort: httpBase, P2PBasePort: p2pBase,
		Period: time.Second, AdminToken: federationToken}
	tn, err := testnet.Start(t.Context(), testnet.Options{Layout: l})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tn.Close(); err != nil {
			t.Errorf("closing the testnet: %v", err)
		}
	})
	i, fifth, err := tn.AddNodeDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	memberFile := filepath.Join(dir, "member.toml")
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(struct {
		Member []config.Member `toml:"member"`
	}{[]config.Member{fifth}}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(memberFile, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	update := filepath.Join(dir, "update.txt")
	url := func(j int) string { return tn.PortalURL(j) }
	if r := meshctl(t, "--portal", url(0), "federation", "propose", "--add", memberFile, "--in", "10", "--out", update); r.code != 0 {
		t.Fatalf("propose: exit %d: %s", r.code, r.stderr)
	}
	key := func(j int) string { return filepath.Join(l.NodeDir(j), config.KeyFileName) }

	t.Run("a submission without the admin token is refused", func(t *testing.T) {
		r := meshctl(t, "--portal", url(0), "--token", "not-the-operator-token", "federation", "sign", "--key", key(0), "--in", update, "--out", filepath.Join(dir, "x.txt"), "--submit", url(0))
		if r.code == 0 || !strings.Contains(r.stderr, "401") {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	})

	for j := range 3 {
		r := meshctl(t, "--portal", url(j), "--token", federationToken, "federation", "sign", "--key", key(j), "--in", update, "--out", update, "--submit", url(j))
		if r.code != 0 || !strings.Contains(r.stderr, "pending") {
			t.Fatalf("sign by node %d: exit %d: %s", j, r.code, r.stderr)
		}
	}
	r := meshctl(t, "--portal", url(0), "--token", federationToken, "federation", "sign", "--key", key(i), "--in", update, "--out", update,
		"--submit", strings.Join([]string{url(0), url(1), url(2), url(3)}, ","))
	if r.code != 0 || strings.Count(r.stderr, "accepted") != 4 {
		t.Fatalf("the new member's signature: exit %d: %s", r.code, r.stderr)
	}
	r = meshctl(t, "--json", "federation", "status", "--nodes", strings.Join([]string{url(0), url(1), url(2), url(3)}, ","))
	var rows []struct {
		Node  string
		State *node.FederationState
	}
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 4 {
		t.Fatalf("status: %v: %s %s", err, r.stdout, r.stderr)
	}
	for _, row := range rows {
		if row.State == nil || row.State.Version != 1 || len(row.State.Members) != 5 || len(row.State.Pending) != 0 {
			t.Errorf("%s: %+v", row.Node, row.State)
		}
	}

	if err := tn.StartNode(t.Context(), i); err != nil {
		t.Fatal(err)
	}
	chain := tn.Node(0).FederationChain()
	v1 := chain[1]
	// Wait until every node's Status proves a certificate of the five
	// under version 1.
	for j := range 5 {
		base := fifth.HTTP
		if j < 4 {
			base = url(j)
		}
		c, err := client.New(base)
		if err != nil {
			t.Fatal(err)
		}
		err = testnet.WaitFor(t.Context(), 40*time.Second, fmt.Sprintf("node %d's Status proving a certificate of the five", j), func() bool {
			st, err := c.Status(t.Context())
			if err != nil || len(st.Peers) != 5 {
				return false
			}
			cert, ok := tn.Node(j).Mesh().LatestCertificate()
			return ok && cert.Round >= v1.Effective && intermesh.VerifyCertificate(&cert, &v1.Federation) == nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"--json", "audit", "--federation", filepath.Join(l.Dir, testnet.FederationFile)}, strings.NewReader(""), &out, &errb)
	var rep struct {
		OK                bool   `json:"ok"`
		FederationVersion uint64 `json:"federation_version"`
		Nodes             []struct {
			Origin          string                `json:"origin"`
			Checks          map[string]checkCount `json:"checks"`
			RoundsCertified int                   `json:"rounds_certified"`
		} `json:"nodes"`
		Failures []auditFailure `json:"failures"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("audit: exit %d: %v\n%s\n%s", code, err, out.String(), errb.String())
	}
	if code != 0 || !rep.OK {
		t.Fatalf("audit across the change: exit %d, failures: %+v", code, rep.Failures)
	}
	if rep.FederationVersion != 1 || len(rep.Nodes) != 5 {
		t.Fatalf("audit followed version %d over %d nodes", rep.FederationVersion, len(rep.Nodes))
	}
	for _, n := range rep.Nodes {
		if n.Checks[checkFederationRecords].Passed != 1 || n.RoundsCertified == 0 {
			t.Errorf("%s: federation records %+v, %d rounds certified", n.Origin, n.Checks[checkFederationRecords], n.RoundsCertified)
		}
	}
	if !slices.ContainsFunc(rep.Nodes, func(n struct {
		Origin          string                `json:"origin"`
		Checks          map[string]checkCount `json:"checks"`
		RoundsCertified int                   `json:"rounds_certified"`
	}) bool {
		return n.Origin == fifth.Origin
	}) {
		t.Error("the audit did not reach the member that joined")
	}

	// A removal: version 2 retires node 3 (signed by four of the five);
	// the audit passes across both changes.
	gone := tn.Federation().Members[3].Origin
	removal := filepath.Join(dir, "removal.txt")
	if r := meshctl(t, "--portal", url(0), "federation", "propose", "--remove", gone, "--in", "10", "--out", removal); r.code != 0 {
		t.Fatalf("propose --remove: exit %d: %s", r.code, r.stderr)
	}
	members := []string{url(0), url(1), url(2), url(3), fifth.HTTP}
	for _, j := range []int{0, 1, 2, i} {
		submitTo := members[min(j, 4)]
		if j == 2 {
			submitTo = strings.Join(members, ",") // the third signature completes the quorum of four with the fourth below
		}
		if j == i {
			submitTo = strings.Join(members, ",")
		}
		r := meshctl(t, "--portal", url(0), "--token", federationToken, "federation", "sign", "--key", key(j), "--in", removal, "--out", removal, "--submit", submitTo)
		if r.code != 0 {
			t.Fatalf("sign the removal by node %d: exit %d: %s", j, r.code, r.stderr)
		}
	}
	chain = tn.Node(0).FederationChain()
	if len(chain) != 3 {
		t.Fatalf("node 0's chain has %d versions after the removal was signed by four", len(chain))
	}
	v2 := chain[2]
	for _, j := range []int{0, 1, 2, i} {
		err := testnet.WaitFor(t.Context(), 40*time.Second, fmt.Sprintf("node %d certifying under version 2", j), func() bool {
			cert, ok := tn.Node(j).Mesh().LatestCertificate()
			return ok && cert.Round >= v2.Effective+1 && intermesh.VerifyCertificate(&cert, &v2.Federation) == nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	out.Reset()
	errb.Reset()
	code = run(t.Context(), []string{"--json", "audit", "--federation", filepath.Join(l.Dir, testnet.FederationFile)}, strings.NewReader(""), &out, &errb)
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("audit: exit %d: %v\n%s\n%s", code, err, out.String(), errb.String())
	}
	if code != 0 || !rep.OK || rep.FederationVersion != 2 {
		t.Fatalf("audit across the join and the removal: exit %d, version %d, failures: %+v", code, rep.FederationVersion, rep.Failures)
	}
}

// TestARotatedKeyIsRefusedAfterItsRoundAndTheAuditSpansBothKeys rotates
// node 3's key by an update signed by a quorum and the new key: from the
// effective round its old key no longer takes part (its node, still
// holding the old key, stops voting and is not dialled), it restarts with
// the new key and is certified again, and the audit verifies its
// checkpoints and the certificates with the key in force in each round.
func TestARotatedKeyIsRefusedAfterItsRoundAndTheAuditSpansBothKeys(t *testing.T) {
	httpBase, err := testnet.FreeBasePort(4)
	if err != nil {
		t.Fatal(err)
	}
	p2pBase, err := testnet.FreeBasePort(4, httpBase)
	if err != nil {
		t.Fatal(err)
	}
	l := testnet.Layout{Dir: t.TempDir(), Nodes: 4, Name: "testnet", HTTPBasePort: httpBase, P2PBasePort: p2pBase, Period: time.Second}
	tn, err := testnet.Start(t.Context(), testnet.Options{Layout: l})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tn.Close(); err != nil {
			t.Errorf("closing the testnet: %v", err)
		}
	})
	old := tn.Federation().Members[3]
	pub, newKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rotated := old
	if rotated.Key, err = config.VerifierKey(old.Origin, pub); err != nil {
		t.Fatal(err)
	}
	id, err := config.PeerIDFromKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	rotated.PeerID = id.String()
	members := slices.Clone(tn.Federation().Members)
	members[3] = rotated
	now := node.Schedule{Period: time.Second}.Round(time.Now())
	v1, err := config.Genesis(tn.Federation()).Next(&config.Federation{Name: "testnet", EpochPeriod: tn.Federation().EpochPeriod, Members: members}, now+5)
	if err != nil {
		t.Fatal(err)
	}
	signed := v1.Text()
	newSigner, err := merkle.NewSigner(old.Origin, newKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range []int{0, 1, 2, -1} {
		s := newSigner
		if j >= 0 {
			if s, err = tn.Signer(j); err != nil {
				t.Fatal(err)
			}
		}
		if signed, err = config.SignFederationUpdate(signed, s); err != nil {
			t.Fatal(err)
		}
	}
	for j := range 4 {
		if sub, err := tn.Node(j).SubmitFederationUpdate(t.Context(), signed); err != nil || !sub.Accepted {
			t.Fatalf("node %d: %+v, %v", j, sub, err)
		}
	}
	// From the effective round, node 3 (still with its old key) is out.
	oldID, err := peer.Decode(old.PeerID)
	if err != nil {
		t.Fatal(err)
	}
	err = testnet.WaitFor(t.Context(), 20*time.Second, "node 3's old key out of the federation", func() bool {
		if tn.Node(3).Mesh() != nil {
			return false
		}
		for j := range 3 {
			if m := tn.Node(j).Mesh(); m == nil || slices.Contains(m.Peers(), oldID) {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	// The operator gives node 3 its new key and restarts it.
	if err := tn.StopNode(3); err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(l.NodeDir(3), config.KeyFileName)
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	if err := config.WriteKey(keyPath, newKey); err != nil {
		t.Fatal(err)
	}
	if err := tn.StartNode(t.Context(), 3); err != nil {
		t.Fatal(err)
	}
	for j := range 4 {
		c, err := client.New(tn.PortalURL(j))
		if err != nil {
			t.Fatal(err)
		}
		err = testnet.WaitFor(t.Context(), 40*time.Second, fmt.Sprintf("node %d proving a certificate covering the new key", j), func() bool {
			st, err := c.Status(t.Context())
			if err != nil || len(st.Peers) != 4 {
				return false
			}
			m := tn.Node(j).Mesh()
			if m == nil {
				return false
			}
			cert, ok := m.LatestCertificate()
			return ok && cert.Round >= v1.Effective && intermesh.VerifyCertificate(&cert, &v1.Federation) == nil && len(cert.Checkpoints) == 4
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"--json", "audit", "--federation", filepath.Join(l.Dir, testnet.FederationFile)}, strings.NewReader(""), &out, &errb)
	var rep struct {
		OK                bool           `json:"ok"`
		FederationVersion uint64         `json:"federation_version"`
		Failures          []auditFailure `json:"failures"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("audit: exit %d: %v\n%s\n%s", code, err, out.String(), errb.String())
	}
	if code != 0 || !rep.OK || rep.FederationVersion != 1 {
		t.Fatalf("audit across the rotation: exit %d, version %d, failures: %+v", code, rep.FederationVersion, rep.Failures)
	}
}

package testnet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/intermesh"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/node"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
)

// latestCheckpoint returns node i's latest signed checkpoint, opened.
func latestCheckpoint(t *testing.T, tn *Testnet, i int) (merkle.Checkpoint, []byte, bool) {
	t.Helper()
	n := tn.Node(i)
	signed, err := n.Tree().LatestCheckpoint()
	if err != nil || len(signed) == 0 {
		return merkle.Checkpoint{}, nil, false
	}
	cp, _, err := merkle.OpenCheckpoint(signed, federationVerifiers(t, tn))
	if err != nil {
		t.Fatalf("node %d's checkpoint: %v", i, err)
	}
	return cp, signed, true
}

// waitForReplicas waits up to 10 s until replicasVerified(want) holds.
func waitForReplicas(t *testing.T, tn *Testnet, want map[string]uint64, what string) error {
	t.Helper()
	return WaitFor(t.Context(), 10*time.Second, what, func() bool { return replicasVerified(t, tn, want) })
}

// replicasVerified reports whether every running node's replica of every
// other running node reproduces the root of that node's checkpoint of at
// least want[origin] records, and none is untrusted.
func replicasVerified(t *testing.T, tn *Testnet, want map[string]uint64) bool {
	t.Helper()
	for i := range tn.Size() {
		n := tn.Node(i)
		if n == nil {
			continue
		}
		reps := n.Mesh().Replicas()
		for j := range tn.Size() {
			if j == i || tn.Node(j) == nil {
				continue
			}
			origin := tn.opts.Origin(j)
			st := reps[origin]
			if st.Untrusted != "" {
				t.Fatalf("node %d does not trust its replica of %s: %s", i, origin, st.Untrusted)
			}
			if st.Verified == nil || st.VerifiedSize < want[origin] {
				return false
			}
			cp, _, err := merkle.OpenCheckpoint(st.Verified, federationVerifiers(t, tn))
			if err != nil {
				t.Fatal(err)
			}
			// Recompute the root from the records held, independently of
			// the replicator's bookkeeping.
			tree := merkle.NewTree(n.Log().DB(), merkle.ReplicaPrefix(origin))
			if err := tree.VerifyCheckpoint(cp); err != nil {
				t.Fatalf("node %d's replica of %s: %v", i, origin, err)
			}
		}
	}
	return true
}

// checkpointSizes returns the size of each running node's latest checkpoint.
func checkpointSizes(t *testing.T, tn *Testnet) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for i := range tn.Size() {
		if tn.Node(i) == nil {
			continue
		}
		if cp, _, ok := latestCheckpoint(t, tn, i); ok {
			out[cp.Origin] = cp.Size
		}
	}
	return out
}

func TestEveryReplicaMatchesItsOriginAndGetFindsProfilesPublishedElsewhere(t *testing.T) {
	tn := startTestnet(t, 4)
	waitForAgreement(t, tn, 15*time.Second, 4)

	c0, err := client.New(tn.PortalURL(0))
	if err != nil {
		t.Fatal(err)
	}
	entry, id, key, err := NewProfile()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CreateAccountWith(t.Context(), c0, tn.Account(0, id), entry, key); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{tn.opts.Origin(0): tn.Node(0).Log().Size()}
	if err := waitForReplicas(t, tn, want, "every replica verified past the profile"); err != nil {
		t.Fatal(err)
	}
	// Once every node's checkpoints of the moment verify too, every
	// replica of every origin matches.
	sizes := checkpointSizes(t, tn)
	if err := waitForReplicas(t, tn, sizes, "every replica verified at the latest checkpoints"); err != nil {
		t.Fatal(err)
	}

	c3, err := client.New(tn.PortalURL(3))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c3.Get(t.Context(), &portal.GetRequest{Identifier: id})
	if err != nil {
		t.Fatalf("Get at node 3 of a profile published at node 0: %v", err)
	}
	if len(resp.DataItems) != 1 {
		t.Fatalf("Get at node 3: %d items", len(resp.DataItems))
	}
	if it := resp.DataItems[0]; !it.Replicated || it.Origin != tn.opts.Origin(0) {
		t.Errorf("Get at node 3: Replicated %v, Origin %q; want true, %q", it.Replicated, it.Origin, tn.opts.Origin(0))
	}
	checkConsistencyProofs(t, tn, 3)
}

// checkConsistencyProofs asks node i's Status for its proof chains and
// checks every consistency proof it carries (there must be at least one).
func checkConsistencyProofs(t *testing.T, tn *Testnet, i int) {
	t.Helper()
	c, err := client.New(tn.PortalURL(i))
	if err != nil {
		t.Fatal(err)
	}
	vs := federationVerifiers(t, tn)
	err = WaitFor(t.Context(), 5*time.Second, "Status with consistency proofs", func() bool {
		resp, err := c.Status(t.Context())
		if err != nil {
			return false
		}
		checked := 0
		for _, p := range resp.Peers {
			if p.PreviousCheckpoint == "" {
				continue
			}
			prev, _, err1 := merkle.OpenCheckpoint([]byte(p.PreviousCheckpoint), vs)
			cur, _, err2 := merkle.OpenCheckpoint([]byte(p.Checkpoint), vs)
			if err := errors.Join(err1, err2); err != nil {
				t.Fatalf("%s: %v", p.Origin, err)
			}
			if err := merkle.VerifyConsistent(prev, cur, p.ConsistencyProof); err != nil {
				t.Fatalf("%s: %v", p.Origin, err)
			}
			checked++
		}
		return checked >= len(resp.Peers)-1 && checked > 0
	})
	if err != nil {
		t.Fatal(err)
	}
}

// runTraffic drives portal traffic until the test ends.
func runTraffic(t *testing.T, tn *Testnet, interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { tn.Traffic(ctx, interval) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// metric reads a counter or gauge from node i's /metrics.
func metric(t *testing.T, tn *Testnet, i int, name string) float64 {
	t.Helper()
	resp, err := http.Get(tn.PortalURL(i) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sum := 0.0
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

func TestAStoppedNodeCatchesUpOverTransferAndItsReplicasVerify(t *testing.T) {
	tn := startTestnet(t, 4)
	runTraffic(t, tn, 30*time.Millisecond)
	waitForAgreement(t, tn, 15*time.Second, 4)
	if err := tn.StopNode(3); err != nil {
		t.Fatal(err)
	}
	// The others keep publishing for several rounds.
	before := tn.Node(0).Log().Size()
	s := node.Schedule{Period: time.Second}
	stopped := s.Round(time.Now())
	if err := WaitFor(t.Context(), 10*time.Second, "three rounds without node 3", func() bool {
		return s.Round(time.Now()) >= stopped+3 && tn.Node(0).Log().Size() > before+10
	}); err != nil {
		t.Fatal(err)
	}
	if err := tn.StartNode(t.Context(), 3); err != nil {
		t.Fatal(err)
	}
	sizes := checkpointSizes(t, tn)
	if err := waitForReplicas(t, tn, sizes, "node 3's replicas verified at the others' checkpoints"); err != nil {
		for o, st := range tn.Node(3).Mesh().Replicas() {
			t.Logf("node 3's replica of %s: size %d known %d verified %d", o, st.Size, st.Known, st.VerifiedSize)
		}
		t.Fatal(err)
	}
	if got := metric(t, tn, 3, `intermesh_transfer_entries_total{direction="fetched"}`); got == 0 {
		t.Errorf("node 3 fetched nothing over /intermesh/transfer/1")
	}
	waitForAgreement(t, tn, 15*time.Second, 4)
}

// forkNode replaces node i's store with a fresh log of another history of
// the given number of records, keeping its key and config: a member that
// rolls back and rewrites its log.
func forkNode(t *testing.T, tn *Testnet, i, records int) {
	t.Helper()
	c, err := config.Load(tn.opts.NodeDir(i), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(c.DataDir()); err != nil {
		t.Fatal(err)
	}
	c.P2P.Federation = "" // write the other history alone
	n, err := node.New(t.Context(), c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for k := range records {
		rec := log.Record{Kind: intermesh.KindMasterHash, Identifier: fmt.Sprintf("rewritten/%d", k), Payload: []byte(`{}`)}
		if _, err := n.Log().Append(t.Context(), rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestANodeRestartedWithAForkedLogIsCaughtByEveryHonestNode(t *testing.T) {
	tn := startTestnet(t, 4)
	fed := tn.Federation()
	liar := tn.opts.Origin(3)
	waitForAgreement(t, tn, 15*time.Second, 4)
	if err := WaitFor(t.Context(), 10*time.Second, "node 3's log to grow", func() bool {
		return tn.Node(3).Log().Size() >= 3
	}); err != nil {
		t.Fatal(err)
	}
	waitForAgreement(t, tn, 15*time.Second, 4) // the others hold a checkpoint of the grown log
	if err := tn.StopNode(3); err != nil {
		t.Fatal(err)
	}
	forkNode(t, tn, 3, 1)
	if err := tn.StartNode(t.Context(), 3); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()

	// Every honest node holds evidence within a round of the forked
	// node's first checkpoint, which it makes at the next round close.
	waitForEvidence(t, tn, 3, 3*time.Second, restarted)
	for i := range 3 {
		checkEvidence(t, tn, fed, i, liar)
		if got := metric(t, tn, i, "intermesh_evidence "); got != 1 {
			t.Errorf("node %d: intermesh_evidence is %v, want 1", i, got)
		}
	}

	checkUncounted(t, tn, 3)
}

// checkEvidence checks node i's evidence against origin as an auditor
// would: from Status over HTTP, verified with the federation file alone,
// and the Evidence record at the index Status gives, which it returns.
func checkEvidence(t *testing.T, tn *Testnet, fed *config.Federation, i int, origin string) intermesh.Evidence {
	t.Helper()
	c, err := client.New(tn.PortalURL(i))
	if err != nil {
		t.Fatal(err)
	}
	var ev portal.Evidence
	err = WaitFor(t.Context(), 3*time.Second, fmt.Sprintf("node %d's Status with an indexed Evidence record", i), func() bool {
		resp, err := c.Status(t.Context())
		if err != nil || len(resp.Evidence) == 0 || resp.Evidence[0].RecordIndex == nil {
			return false
		}
		ev = resp.Evidence[0]
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Origin != origin {
		t.Fatalf("node %d: evidence against %q, want %q", i, ev.Origin, origin)
	}
	rec, err := tn.Node(i).Log().Get(*ev.RecordIndex)
	if err != nil || rec.Kind != intermesh.KindEvidence {
		t.Fatalf("node %d: record %d is %q (%v), want an Evidence record", i, *ev.RecordIndex, rec.Kind, err)
	}
	var logged intermesh.Evidence
	if err := json.Unmarshal(rec.Payload, &logged); err != nil {
		t.Fatal(err)
	}
	why, err := intermesh.VerifyEvidence(logged, fed)
	if err != nil || logged.Origin != origin {
		t.Fatalf("node %d: the logged evidence does not verify: %v", i, err)
	}
	if string(logged.Notes[0]) != ev.Notes[0] || string(logged.Notes[1]) != ev.Notes[1] {
		t.Fatalf("node %d: Status and the Evidence record give different notes", i)
	}
	if logged.Root1 == nil {
		// Evidence of this kind conflicts on its face: Status alone proves it.
		e := intermesh.Evidence{Origin: ev.Origin, Notes: [2][]byte{[]byte(ev.Notes[0]), []byte(ev.Notes[1])}}
		if _, err := intermesh.VerifyEvidence(e, fed); err != nil {
			t.Fatalf("node %d's evidence does not verify offline from Status: %v", i, err)
		}
	}
	t.Logf("node %d: %s (record %d)", i, why, *ev.RecordIndex)
	return logged
}

// waitForHonestCertificate waits for a round after now that the first
// honest nodes all certified, and returns it.
func waitForHonestCertificate(t *testing.T, tn *Testnet, honest int) uint64 {
	t.Helper()
	s := node.Schedule{Period: time.Second}
	start := s.Round(time.Now())
	var found uint64
	err := WaitFor(t.Context(), 10*time.Second, "a certificate of the honest nodes", func() bool {
		for r := s.Round(time.Now()) - 1; r > start; r-- {
			all := true
			for i := range honest {
				if _, ok := tn.Node(i).Mesh().Certificate(r); !ok {
					all = false
				}
			}
			if all {
				found = r
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// waitForEvidence waits until nodes 0..honest-1 all hold evidence, and logs
// how long after since that took.
func waitForEvidence(t *testing.T, tn *Testnet, honest int, within time.Duration, since time.Time) {
	t.Helper()
	var caught time.Time
	if err := WaitFor(t.Context(), within, "evidence on every honest node", func() bool {
		for i := range honest {
			if len(tn.Node(i).Mesh().Evidence()) == 0 {
				return false
			}
		}
		caught = time.Now()
		return true
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("caught %s after the restart", caught.Sub(since).Round(time.Millisecond))
}

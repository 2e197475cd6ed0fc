package node

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/intermesh"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
)

// newTestNode initializes a node directory with a 1 s epoch on a free port.
func newTestNode(t *testing.T, dir string) config.Config {
	t.Helper()
	c, err := config.Init(dir, config.InitOptions{
		Origin:      "test.example/node",
		HTTPListen:  "127.0.0.1:0",
		EpochPeriod: config.Duration{Duration: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// runNode starts n and returns a function that stops it and returns Run's
// error.
func runNode(t *testing.T, n *Node) (stop func() error) {
	t.Helper()
	if err := n.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	return stop
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}

func TestDebugListenServesTheProfilerAndNothingElse(t *testing.T) {
	c := newTestNode(t, t.TempDir())
	c.HTTP.DebugListen = "127.0.0.1:0"
	n, err := New(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	runNode(t, n)
	waitFor(t, 5*time.Second, "the debug server", func() bool { return n.DebugAddr() != "" })
	base := "http://" + n.DebugAddr()
	if got := get(t, base+"/debug/pprof/"); !strings.Contains(got, "goroutine") {
		t.Errorf("/debug/pprof/ served %q", got)
	}
	if got := get(t, base+"/debug/pprof/goroutine?debug=1"); !strings.Contains(got, "goroutine profile") {
		t.Errorf("goroutine profile: %q", got)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the debug address serves /metrics: %s", resp.Status)
	}
	resp, err = http.Get("http://" + n.HTTPAddr() + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Error("the portal's address serves the profiler")
	}
}

func TestNodeClosesEpochsAndServesItsCheckpoint(t *testing.T) {
	c := newTestNode(t, t.TempDir())
	ctx := context.Background()
	n, err := New(ctx, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runNode(t, n)
	base := "http://" + n.HTTPAddr()

	if _, err := n.Log().Append(ctx, log.Record{Kind: intermesh.KindMasterHash, Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	var cp merkle.Checkpoint
	waitFor(t, 5*time.Second, "a checkpoint covering the record", func() bool {
		signed, err := n.Tree().LatestCheckpoint()
		if err != nil || len(signed) == 0 {
			return false
		}
		cp, _, err = merkle.OpenCheckpoint(signed, n.verifiers())
		return err == nil && cp.Size == 1
	})
	served := get(t, base+"/checkpoint")
	if !strings.HasPrefix(served, "test.example/node\n") {
		t.Errorf("/checkpoint served %q", served)
	}
	if n.LastCheckpointTime().IsZero() || !n.NextCheckpointTime().After(n.LastCheckpointTime()) {
		t.Errorf("last %v next %v", n.LastCheckpointTime(), n.NextCheckpointTime())
	}
	metrics := get(t, base+"/metrics")
	if !strings.Contains(metrics, "intermesh_epoch_close_seconds") {
		t.Error("/metrics lacks the epoch metrics")
	}
	// The store's size is read from its files (Badger's own Size answers 0
	// without its global metrics): the value log holds the record.
	vlogSize := regexp.MustCompile(`(?m)^intermesh_store_bytes\{part="vlog"\} (\S+)$`).FindStringSubmatch(metrics)
	if vlogSize == nil {
		t.Error("/metrics lacks intermesh_store_bytes{part=\"vlog\"}")
	} else if v, err := strconv.ParseFloat(vlogSize[1], 64); err != nil || v <= 0 {
		t.Errorf("intermesh_store_bytes{part=\"vlog\"} = %s, want the value log's size", vlogSize[1])
	}
	// The record's batch went through the store's commit, and was timed.
	commits := regexp.MustCompile(`(?m)^intermesh_log_commit_seconds_count (\S+)$`).FindStringSubmatch(metrics)
	if commits == nil {
		t.Error("/metrics lacks intermesh_log_commit_seconds")
	} else if v, err := strconv.ParseFloat(commits[1], 64); err != nil || v < 1 {
		t.Errorf("intermesh_log_commit_seconds_count = %s, want at least the record's batch", commits[1])
	}
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v on a clean stop", err)
	}

	// Restarted, the node has its log, tree and checkpoints.
	n2, err := New(ctx, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	if n2.Log().Size() != 1 {
		t.Errorf("log size after restart %d", n2.Log().Size())
	}
	if n2.LastCheckpointTime().IsZero() {
		t.Error("the restarted node forgot its last checkpoint time")
	}
	root, err := n2.Tree().Root(1)
	if err != nil || string(root) != string(cp.Root) {
		t.Errorf("root after restart %x, %v; want %x", root, err, cp.Root)
	}
}

func TestNodeRefusesABrokenSetup(t *testing.T) {
	ctx := context.Background()
	t.Run("a missing key", func(t *testing.T) {
		dir := t.TempDir()
		c := newTestNode(t, dir)
		c.Dir = t.TempDir() // no key there
		if _, err := New(ctx, c, nil); err == nil || !strings.Contains(err.Error(), "node key") {
			t.Fatalf("New: %v", err)
		}
	})
	t.Run("an invalid config", func(t *testing.T) {
		c := newTestNode(t, t.TempDir())
		c.Origin = ""
		if _, err := New(ctx, c, nil); err == nil || !strings.Contains(err.Error(), "origin") {
			t.Fatalf("New: %v", err)
		}
	})
	t.Run("a busy port", func(t *testing.T) {
		a := newTestNode(t, t.TempDir())
		n, err := New(ctx, a, nil)
		if err != nil {
			t.Fatal(err)
		}
		runNode(t, n)
		b := newTestNode(t, t.TempDir())
		b.HTTP.Listen = n.HTTPAddr()
		m, err := New(ctx, b, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Run(ctx); err == nil || !strings.Contains(err.Error(), "listener") {
			t.Fatalf("Run on a busy port: %v", err)
		}
	})
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package node

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/intermesh/intermesh/loadgen"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/vmap"
)

// TestEveryCheckpointEndsWithTheMapOfItsRecords: the node's checkpoints end
// with the root of the verifiable map over exactly their records, as a
// checker recomputes it from the leaves, before and after a restart.
func TestEveryCheckpointEndsWithTheMapOfItsRecords(t *testing.T) {
	c := newTestNode(t, t.TempDir())
	ctx := context.Background()
	appendNames := func(n *Node, count int) {
		// Real transactions over HTTP: accounts created, profiles published.
		_, err := loadgen.Run(ctx, loadgen.Config{Portals: []string{"http://" + n.HTTPAddr()}, Rate: float64(4 * count),
			Duration: time.Second, Accounts: count, Concurrency: 4, Timeout: 5 * time.Second, Acks: filepath.Join(t.TempDir(), "acks.jsonl")})
		if err != nil {
			t.Fatal(err)
		}
	}
	var covered uint64 // records the map of the last checkpoint covers
	run := func(count int) {
		n, err := New(ctx, c, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := n.vmap.lm.Size(); got != covered {
			t.Fatalf("the map reopened covering %d records, want the %d its last commit covered", got, covered)
		}
		stop := runNode(t, n)
		appendNames(n, count)
		covered = n.Log().Size()
		cp := checkMapLine(t, n, covered)
		// The status page shows it too.
		var st struct{ MapRoot string }
		getJSON(t, "http://"+n.HTTPAddr()+"/status.json", &st)
		if want := base64.StdEncoding.EncodeToString(cp.Map); st.MapRoot != want {
			t.Errorf("/status.json shows map root %q, the checkpoint %q", st.MapRoot, want)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	run(5)
	run(4) // restarted: the map reopens from the database and goes on
}

// checkMapLine waits for a checkpoint of size records and checks its map
// line against the map recomputed from the log's leaves.
func checkMapLine(t *testing.T, n *Node, size uint64) merkle.Checkpoint {
	t.Helper()
	var cp merkle.Checkpoint
	waitFor(t, 5*time.Second, fmt.Sprintf("a checkpoint of %d records", size), func() bool {
		signed, err := n.Tree().LatestCheckpoint()
		if err != nil || len(signed) == 0 {
			return false
		}
		cp, _, err = merkle.OpenCheckpoint(signed, n.verifiers())
		return err == nil && cp.Size == size
	})
	lm := vmap.NewLogMap()
	for i := range size {
		r, err := n.Log().Get(i)
		if err != nil {
			t.Fatal(err)
		}
		if err := lm.Append(r.MarshalLeaf()); err != nil {
			t.Fatal(err)
		}
	}
	want := lm.Root()
	if !bytes.Equal(cp.Map, want[:]) {
		t.Fatalf("checkpoint of %d records has map %x, the records' map is %x", size, cp.Map, want)
	}
	if lm.Tree().Len() == 0 {
		t.Fatal("the records set no key: the test checks nothing")
	}
	return cp
}

// TestTheMapFollowsTheLogBetweenCloses: the map takes the log's records as
// they are appended, so an epoch close finds it (almost) there, and the
// close's root is the map of exactly the checkpoint's records.
func TestTheMapFollowsTheLogBetweenCloses(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := log.Open(ctx, log.Options{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Origin: "test/follow"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	metrics, err := newNodeMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m, err := openOwnMap(l, metrics)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); m.follow(ctx, 5*time.Millisecond, slog.Default()) }()
	for i := range 3 * followChunk {
		if _, err := l.Append(ctx, log.Record{Kind: portal.KindProfile, Identifier: fmt.Sprint("P-", i%700), Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	size := l.Size()
	covered := func() uint64 { m.mu.Lock(); defer m.mu.Unlock(); return m.lm.Size() }
	waitFor(t, 10*time.Second, "the map following the log", func() bool { return covered() == size })

	want := vmap.NewLogMap()
	if err := want.Follow(ctx, l, size); err != nil {
		t.Fatal(err)
	}
	var got []byte
	err = m.closeEpoch(ctx, func(mapRoot merkle.MapRoot) error {
		if _, err := mapRoot(size - 1); err == nil {
			t.Error("a root below the map's size that no checkpoint committed was given")
		}
		got, err = mapRoot(size)
		return err
	})
	if w := want.Root(); err != nil || !bytes.Equal(got, w[:]) {
		t.Fatalf("close: root %x, %v; want %x", got, err, w)
	}
	cancel()
	<-done
}

// TestTheCloseLeavesTheMapsWriteToTheFollower: an epoch close commits the
// map in memory only; the follower writes the commit after it, and once
// more as it stops. A node killed between a close and that write reopens
// the map at the last commit written, within the log, and following the
// log gives the same root again.
func TestTheCloseLeavesTheMapsWriteToTheFollower(t *testing.T) {
	ctx := context.Background()
	l, err := log.Open(ctx, log.Options{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Origin: "test/save"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	metrics, err := newNodeMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m, err := openOwnMap(l, metrics)
	if err != nil {
		t.Fatal(err)
	}
	appendRecords := func(n int) uint64 {
		for i := range n {
			if _, err := l.Append(ctx, log.Record{Kind: portal.KindProfile, Identifier: fmt.Sprint("P-", i%300), Payload: []byte(`{}`)}); err != nil {
				t.Fatal(err)
			}
		}
		return l.Size()
	}
	closeAt := func(m *ownMap, size uint64) []byte {
		var root []byte
		err := m.closeEpoch(ctx, func(mapRoot merkle.MapRoot) error {
			var err error
			root, err = mapRoot(size)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return root
	}
	written := func(m *ownMap) uint64 {
		v, err := m.store.Committed()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	first := appendRecords(500)
	closeAt(m, first)
	m.save(slog.Default())
	second := appendRecords(700)
	want := closeAt(m, second)
	if got := written(m); got != first {
		t.Fatalf("after the close at %d the store holds the map at %d, want %d: the close wrote it", second, got, first)
	}

	// Killed now: the map reopens at the first close, and follows.
	restarted, err := openOwnMap(l, metrics)
	if err != nil {
		t.Fatal(err)
	}
	if got := restarted.lm.Size(); got != first {
		t.Fatalf("the map reopened at %d records, want %d", got, first)
	}
	if got := closeAt(restarted, second); !bytes.Equal(got, want) {
		t.Fatalf("after the restart the close at %d gives root %x, before it %x", second, got, want)
	}
	if got, err := restarted.lm.Tree().RootAt(first); err != nil || got == (vmap.Hash{}) {
		t.Fatalf("RootAt(%d) after the restart: %x, %v", first, got, err)
	}

	// The follower writes the commit as it stops.
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); restarted.follow(fctx, time.Hour, slog.Default()) }()
	cancel()
	<-done
	if got := written(restarted); got != second {
		t.Fatalf("after the follower stopped the store holds the map at %d, want %d", got, second)
	}
}

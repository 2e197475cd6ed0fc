package node

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/intermesh/intermesh/loadgen"
	"github.com/intermesh/intermesh/merkle"
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
		checkMapLine(t, n, covered)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
	run(5)
	run(4) // restarted: the map reopens from the database and goes on
}

// checkMapLine waits for a checkpoint of size records and checks its map
// line against the map recomputed from the log's leaves.
func checkMapLine(t *testing.T, n *Node, size uint64) {
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
}

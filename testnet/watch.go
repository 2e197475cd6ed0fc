package testnet

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/node"
)

// Watch prints, shortly after every round close, each node's tree size and
// checkpoint root until ctx ends. Traffic, if positive, is the interval of
// the generated portal transactions.
func (t *Testnet) Watch(ctx context.Context, w io.Writer, traffic time.Duration) error {
	s := node.Schedule{Period: t.opts.Period}
	if traffic > 0 {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			t.Traffic(ctx, traffic)
		}()
	}
	for {
		at, round := s.NextClose(time.Now())
		timer := time.NewTimer(time.Until(at.Add(t.opts.Period / 5)))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		fmt.Fprintln(w, t.RoundReport(round))
	}
}

// RoundReport describes every node's checkpoint of round r in one line a node.
func (t *Testnet) RoundReport(r uint64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "round %d", r)
	for i := range t.nodes {
		n := t.Node(i)
		if n == nil {
			fmt.Fprintf(&b, "\n  node%d  stopped", i)
			continue
		}
		note, err := n.Tree().CheckpointAt(r)
		if err != nil {
			fmt.Fprintf(&b, "\n  node%d  no checkpoint: %v", i, err)
			continue
		}
		cp, err := merkle.ParseCheckpoint(noteText(note))
		if err != nil {
			fmt.Fprintf(&b, "\n  node%d  bad checkpoint: %v", i, err)
			continue
		}
		fmt.Fprintf(&b, "\n  node%d  size %-6d root %s", i, cp.Size, base64.StdEncoding.EncodeToString(cp.Root)[:12])
	}
	return b.String()
}

// noteText is the body of a signed note: everything before the blank line.
func noteText(signed []byte) []byte {
	s := string(signed)
	if i := strings.Index(s, "\n\n"); i >= 0 {
		return []byte(s[:i+1])
	}
	return signed
}

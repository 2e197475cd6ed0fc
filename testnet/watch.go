package testnet

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/node"
)

// Watch prints, shortly after every round close, each node's checkpoint and
// master-hash certificate of that round until ctx ends. Traffic, if
// positive, is the interval of the generated portal transactions.
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
		timer := time.NewTimer(time.Until(at.Add(t.opts.Period / 2)))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		fmt.Fprintln(w, t.RoundReport(round).String())
	}
}

// NodeRound is one node's view of a round.
type NodeRound struct {
	Running bool
	// Member reports that the node is a member of the federation version
	// in force in the round (as its own chain says); a running node that
	// is not (removed, or not yet joined) is left out of Agreed.
	Member     bool
	Size       uint64 // tree size of its checkpoint, if it made one
	Root       []byte // root of its checkpoint
	Map        []byte // its checkpoint's map line (the root of its verifiable map), if any
	Err        error  // why there is no checkpoint
	MasterHash []byte // M_r of the certificate it holds, if any
	Covered    int    // checkpoints the certificate covers
	Signatures int    // member signatures on the certificate
}

// RoundReport is every node's view of a round.
type RoundReport struct {
	Round uint64
	Nodes []NodeRound
}

// Agreed reports whether every running member (of the federation version
// in force in the round) holds a certificate for the round and all of them
// have the same master hash.
func (r RoundReport) Agreed() bool {
	var first []byte
	running := 0
	for _, n := range r.Nodes {
		if !n.Running || !n.Member {
			continue
		}
		running++
		if n.MasterHash == nil || (first != nil && !bytes.Equal(first, n.MasterHash)) {
			return false
		}
		first = n.MasterHash
	}
	return running > 0
}

// String renders the report for a terminal, one line a node.
func (r RoundReport) String() string {
	var b strings.Builder
	verdict := "certificate formed and matches on every running node"
	if !r.Agreed() {
		verdict = "NO common certificate yet"
	}
	fmt.Fprintf(&b, "round %d: %s", r.Round, verdict)
	for i, n := range r.Nodes {
		switch {
		case !n.Running:
			fmt.Fprintf(&b, "\n  node%-2d stopped", i)
		case !n.Member:
			fmt.Fprintf(&b, "\n  node%-2d not a member in this round", i)
		case n.Err != nil:
			fmt.Fprintf(&b, "\n  node%-2d no checkpoint: %v", i, n.Err)
		default:
			fmt.Fprintf(&b, "\n  node%-2d size %-6d root %s  map %s", i, n.Size, b64prefix(n.Root), b64prefixOrDash(n.Map))
			if n.MasterHash != nil {
				fmt.Fprintf(&b, "  master %s (%d checkpoints, %d signatures)", b64prefix(n.MasterHash), n.Covered, n.Signatures)
			} else {
				b.WriteString("  master -")
			}
		}
	}
	return b.String()
}

func b64prefix(h []byte) string { return base64.StdEncoding.EncodeToString(h)[:12] }

// b64prefixOrDash is b64prefix, or "-" for no hash (a checkpoint without a
// map line).
func b64prefixOrDash(h []byte) string {
	if len(h) == 0 {
		return "-"
	}
	return b64prefix(h)
}

// RoundReport collects every node's checkpoint and certificate of round r.
func (t *Testnet) RoundReport(r uint64) RoundReport {
	rep := RoundReport{Round: r, Nodes: make([]NodeRound, len(t.nodes))}
	for i := range t.nodes {
		n := t.Node(i)
		if n == nil {
			continue
		}
		nr := &rep.Nodes[i]
		nr.Running = true
		v := inForce(n, t.fed, r)
		_, nr.Member = v.Member(n.Origin())
		signed, err := n.Tree().CheckpointAt(r)
		if err != nil {
			nr.Err = err
			continue
		}
		cp, err := merkle.ParseCheckpoint(noteText(signed))
		if err != nil {
			nr.Err = err
			continue
		}
		nr.Size, nr.Root, nr.Map = cp.Size, cp.Root, cp.Map
		if m := n.Mesh(); m != nil {
			if cert, ok := m.Certificate(r); ok {
				nr.MasterHash, nr.Covered = cert.MasterHash, len(cert.Checkpoints)
				nr.Signatures = countSignatures(&v.Federation, cert.Note)
			}
		}
	}
	return rep
}

// inForce is the federation version in force in round r as node n's chain
// says (the federation file if n runs without one).
func inForce(n *node.Node, genesis *config.Federation, r uint64) *config.FederationVersion {
	if chain := n.FederationChain(); len(chain) > 0 {
		return config.InForce(chain, r)
	}
	return config.Genesis(genesis)
}

// countSignatures counts the valid signatures of fed's members on a signed
// note.
func countSignatures(fed *config.Federation, signed []byte) int {
	vs, err := fed.Verifiers()
	if err != nil {
		return 0
	}
	n, err := note.Open(signed, vs)
	if err != nil {
		return 0
	}
	return len(n.Sigs)
}

// noteText is the body of a signed note: everything before the blank line.
func noteText(signed []byte) []byte {
	s := string(signed)
	if i := strings.Index(s, "\n\n"); i >= 0 {
		return []byte(s[:i+1])
	}
	return signed
}

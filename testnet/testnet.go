package testnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/node"
)

// Options configure a testnet.
type Options struct {
	Layout
	// Logger receives the nodes' logs; nil discards them.
	Logger *slog.Logger
}

// Testnet is a federation of in-process nodes on 127.0.0.1, each with its
// own directory, Badger store, portal port and libp2p ports: real nodes,
// sharing only the process.
type Testnet struct {
	opts  Options
	fed   *config.Federation
	mu    sync.Mutex
	nodes []*member
}

// member is one node slot of the testnet, running or stopped.
type member struct {
	node   *node.Node
	cancel context.CancelFunc
	done   chan error
}

// Start generates the testnet in opts.Dir if it is not there yet, and starts
// every node. Stop them with Close.
func Start(ctx context.Context, opts Options) (*Testnet, error) {
	if opts.Name == "" {
		opts.Name = "testnet"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Testnet{opts: opts, nodes: make([]*member, opts.Nodes)}
	fedPath := filepath.Join(opts.Dir, FederationFile)
	var err error
	if _, statErr := os.Stat(fedPath); statErr == nil {
		t.fed, err = config.LoadFederation(fedPath)
	} else {
		t.fed, err = Generate(opts.Layout)
	}
	if err != nil {
		return nil, err
	}
	if len(t.fed.Members) != opts.Nodes {
		return nil, fmt.Errorf("testnet: %s has %d members, not %d", fedPath, len(t.fed.Members), opts.Nodes)
	}
	// A testnet started again keeps the period it was made with.
	t.opts.Period = t.fed.EpochPeriod.Duration
	for i := range t.nodes {
		if err := t.StartNode(ctx, i); err != nil {
			t.Close()
			return nil, err
		}
	}
	return t, nil
}

// Federation is the testnet's federation.
func (t *Testnet) Federation() *config.Federation { return t.fed }

// Size is the number of node slots.
func (t *Testnet) Size() int { return len(t.nodes) }

// Node returns node i, or nil if it is stopped.
func (t *Testnet) Node(i int) *node.Node {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nodes[i] == nil {
		return nil
	}
	return t.nodes[i].node
}

// PortalURL is the base URL of node i's portal, as the federation file
// lists it.
func (t *Testnet) PortalURL(i int) string { return t.fed.Members[i].HTTP }

// Account is the account name name@DOMAIN that node i creates: DOMAIN is
// the domain node i serves (Layout.Domain), so that i is its home.
func (t *Testnet) Account(i int, name string) string { return accountAt(t.fed, t.opts.Layout, i, name) }

// Period is the testnet's epoch period.
func (t *Testnet) Period() time.Duration { return t.opts.Period }

// StartNode starts node i from its directory (it must be stopped).
func (t *Testnet) StartNode(ctx context.Context, i int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nodes[i] != nil {
		return fmt.Errorf("testnet: node %d is running", i)
	}
	c, err := config.Load(t.opts.NodeDir(i), nil)
	if err != nil {
		return err
	}
	logger := t.opts.Logger.With("node", i)
	n, err := node.New(ctx, c, logger)
	if err != nil {
		return fmt.Errorf("testnet: node %d: %w", i, err)
	}
	if err := n.Listen(); err != nil {
		n.Close()
		return fmt.Errorf("testnet: node %d: %w", i, err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m := &member{node: n, cancel: cancel, done: make(chan error, 1)}
	go func() { m.done <- n.Run(runCtx) }()
	t.nodes[i] = m
	return nil
}

// StopNode stops node i gracefully and waits until it has closed its store.
func (t *Testnet) StopNode(i int) error {
	t.mu.Lock()
	m := t.nodes[i]
	t.nodes[i] = nil
	t.mu.Unlock()
	if m == nil {
		return nil
	}
	m.cancel()
	return <-m.done
}

// Close stops every node.
func (t *Testnet) Close() error {
	var err error
	for i := range t.nodes {
		err = errors.Join(err, t.StopNode(i))
	}
	return err
}

// WaitFor polls cond every 20 ms until it holds, ctx ends or timeout passes.
func WaitFor(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("testnet: waiting for %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

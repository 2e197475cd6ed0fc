package testnet

import (
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/merkle"
)

// AddNodeDir generates the directory of a new node slot (the next index),
// on free ports, naming the testnet's federation file, and returns its
// index and [[member]] entry. The node is not a member until a federation
// update adds it; start it with StartNode once the members accepted that
// update (it bootstraps the chain of updates from them).
func (t *Testnet) AddNodeDir() (int, config.Member, error) {
	httpPort, err := FreeBasePort(1)
	if err != nil {
		return 0, config.Member{}, err
	}
	p2pPort, err := FreeBasePort(1, httpPort)
	if err != nil {
		return 0, config.Member{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	i := len(t.nodes)
	m, err := t.opts.GenerateNode(i, httpPort, p2pPort)
	if err != nil {
		return 0, config.Member{}, err
	}
	t.nodes = append(t.nodes, nil)
	return i, m, nil
}

// Signer is the note signer of node i's key (the key in its directory),
// named by its origin: what signs its checkpoints, votes and federation
// updates.
func (t *Testnet) Signer(i int) (note.Signer, error) {
	c, err := config.Load(t.opts.NodeDir(i), nil)
	if err != nil {
		return nil, err
	}
	key, err := config.LoadKey(c.KeyPath())
	if err != nil {
		return nil, err
	}
	s, err := merkle.NewSigner(c.Origin, key)
	if err != nil {
		return nil, fmt.Errorf("testnet: node %d: %w", i, err)
	}
	return s, nil
}

// DefaultAdminToken is the operator token `meshd testnet` gives its nodes
// unless told otherwise: a testnet listens on 127.0.0.1 only, and its
// README walk-through (adding a member) needs one.
const DefaultAdminToken = "intermesh-testnet-operator"

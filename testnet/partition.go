package testnet

import "fmt"

// Partition cuts node i off from every other running node: each side's
// libp2p connection gater refuses the other, and open connections are
// closed. The node keeps running and serving its portal. Heal undoes it.
// A node restarted while partitioned starts connected again.
func (t *Testnet) Partition(i int) error { return t.gate(i, true) }

// Heal reconnects node i to the others after Partition.
func (t *Testnet) Heal(i int) error { return t.gate(i, false) }

func (t *Testnet) gate(i int, block bool) error {
	n := t.Node(i)
	if n == nil || n.Mesh() == nil {
		return fmt.Errorf("testnet: node %d is not running in a federation", i)
	}
	for j := range t.nodes {
		m := t.Node(j)
		if j == i || m == nil || m.Mesh() == nil {
			continue
		}
		if block {
			m.Mesh().Block(n.Mesh().ID())
			n.Mesh().Block(m.Mesh().ID())
		} else {
			m.Mesh().Unblock(n.Mesh().ID())
			n.Mesh().Unblock(m.Mesh().ID())
		}
	}
	return nil
}

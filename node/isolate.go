package node

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Isolate cuts the node off from every other federation member (on true)
// or lets it reconnect (on false): its connection gater refuses and closes
// every connection with them, while its portal keeps serving. It is the
// operator's lever for taking a member out of the federation without
// stopping it (meshd run does it on SIGUSR1 and undoes it on SIGUSR2), and
// how `meshd testnet --chaos` partitions separate processes. The other
// members see the node as unreachable and certify without it.
func (n *Node) Isolate(on bool) error {
	im, fed := n.Mesh(), n.federation()
	if im == nil || fed == nil {
		return fmt.Errorf("node: %s runs alone: nothing to isolate it from", n.cfg.Origin)
	}
	for _, m := range fed.Members {
		if m.Origin == n.cfg.Origin {
			continue
		}
		id, err := peer.Decode(m.PeerID)
		if err != nil {
			return fmt.Errorf("node: member %s: peer ID: %w", m.Origin, err)
		}
		if on {
			im.Block(id)
		} else {
			im.Unblock(id)
		}
	}
	if on {
		n.logger.Warn("isolated from the federation: every member connection refused", "origin", n.cfg.Origin)
	} else {
		n.logger.Warn("rejoining the federation", "origin", n.cfg.Origin)
	}
	return nil
}

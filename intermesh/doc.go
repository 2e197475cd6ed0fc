// Package intermesh replicates a node's log with its federation over libp2p:
// gossiped checkpoints, the quorum master hash, replica logs of peers and the
// Transfer stream.
package intermesh

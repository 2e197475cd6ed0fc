// Package node wires one intermesh node together: config, log, Merkle tree,
// portal, InterMesh and metrics, with the epoch schedule and graceful stop.
package node

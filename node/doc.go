// Package node wires one intermesh node together: config, log, Merkle tree,
// portal, InterMesh and metrics, with the epoch schedule and graceful stop.
//
// It also owns the federation's history on the node (federation.go,
// membership.go): the certified federation updates it accepted, kept as
// FederationUpdate records in its log, and one intermesh.Mesh per version of
// the federation, replaced at the round from which the next version is in
// force.
package node

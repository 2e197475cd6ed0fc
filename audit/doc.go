// Package audit verifies a federation from the outside: given only the
// federation file and HTTP access to the nodes' public endpoints, it
// fetches each node's latest checkpoint (GET /checkpoint), its Status with
// the proof chains, every entry of its log and of the replicas it serves
// (Transfer), and the federation's signed updates (GET /federation/updates),
// then verifies offline:
//
//   - checkpoints: signed by the member's key in force in their round, well
//     formed, and the RFC 6962 root of the entries at every size seen;
//   - logs: dense indexes from 0, every leaf decodes and matches its item;
//   - maps: each member's verifiable map, recomputed from its own log's
//     records (or a replica's, when no node served its own), has at every
//     checkpoint's size the root its map line says; a map line that
//     appears, then disappears fails;
//   - Status proof chains: peer checkpoints, consistency proofs, the
//     master-hash certificate and both inclusion proofs;
//   - certificates: every MasterHash record holds a quorum of the members
//     in force and M_r recomputed from its checkpoints; the nodes'
//     certificates of one round agree;
//   - evidence: evidence of misbehaviour the nodes show holds up, and no
//     member signed two checkpoints that cannot both be true;
//   - federation updates: the chain verifies from the file, and each
//     FederationUpdate record is its certified, not backdated, step.
//
// [Run] does one audit and returns a [Report]; a failed check is in the
// report, not an error. The readers of the wire formats ([ParseLeaf],
// [Keys.OpenCheckpoint], [Keys.VerifyCertificate] ...) and the map's
// computation (not package vmap's) are written from
// docs/formats.md and docs/design.md, not shared with the node, so that a
// bug in the node's encoders cannot hide behind the same bug in its
// decoders; other offline verifiers (meshctl get --verify, load --verify)
// use them too.
//
// The package does not run or trust a node: it talks to nodes only through
// their public HTTP endpoints (with the portal's client and wire types),
// imports none of the node's log, consensus or storage code, holds no keys,
// and writes nothing but its optional cache of fetched entries. Flags, exit
// codes and the progress bar are meshctl's ('meshctl audit').
package audit

// Package merkle keeps the RFC 6962 Merkle tree over a log and the signed
// checkpoints that commit to it.
//
// The tree is stored in the same Badger database as the log and is updated in
// the same transaction as the records it covers, so tree and log never
// disagree. Hashing, compact ranges and proof verification come from
// github.com/transparency-dev/merkle; checkpoints are C2SP signed notes
// (golang.org/x/mod/sumdb/note) in the tlog-checkpoint format.
package merkle

// Package merkle keeps the RFC 6962 Merkle tree over a log and the signed
// checkpoints that commit to it.
//
// The tree is stored in the same Badger database as the log and is updated in
// the same transaction as the records it covers, so tree and log never
// disagree. Hashing, compact ranges and proof verification come from
// github.com/transparency-dev/merkle; checkpoints are C2SP signed notes
// (golang.org/x/mod/sumdb/note) in the tlog-checkpoint format.
//
// # The tree
//
// Leaf i of the tree is record i of the log: its leaf hash is
// SHA-256(0x00 || leaf), where leaf is the record's leaf encoding
// (log.Record.MarshalLeaf), and an interior node is SHA-256(0x01 || left ||
// right), as in RFC 6962. A Tree is the log's BatchIndexer: IndexBatch
// appends a committed batch with a compact range, storing every full subtree
// node it completes and the new size, root and compact range. A replica log
// of a peer (log.Replica) keeps its own tree the same way, as its batch
// indexer, under the prefix ReplicaPrefix(origin) ("replica/" + origin), and
// Tree.VerifyCheckpoint checks it against the origin's signed checkpoints by
// recomputing the root at the checkpoint's size. AppendLeafHashes appends
// leaf hashes directly.
//
// Because every full subtree node is stored, the root at any past size, an
// inclusion proof and a consistency proof each read O(log n) nodes, and an
// epoch close reads only the stored state.
//
// # Keys
//
// Every key the package writes starts with one of two bytes, which the log
// (whose keys start with 'L') and the other users of the database never use
// as their first byte (see internal/keyspace, the list of every prefix of the
// store):
//
//	't'  tree keys (keyspace.MerkleTree)
//	'c'  checkpoint keys (keyspace.MerkleCheckpoint)
//
// followed by the tree's prefix (as given to NewTree) written as a uvarint
// length and the prefix bytes, so that the key spaces of two trees with
// different prefixes never overlap, whatever the prefixes are. Then:
//
//	't' | uvarint len(p) | p | 'n' | level (1 byte) | index (8 bytes, big-endian)
//	    the hash of the full subtree node (level, index): level 0 holds the
//	    leaf hashes, level k the root of leaves [index<<k, (index+1)<<k)
//	't' | uvarint len(p) | p | 's'
//	    the tree state: size (8 bytes, big-endian), root hash (32 bytes),
//	    then the hashes of the compact range [0, size), left to right
//	'c' | uvarint len(p) | p | 'r' | round (8 bytes, big-endian)
//	    the signed checkpoint note closed for that round
//	'c' | uvarint len(p) | p | 'l'
//	    the latest closed round and the tree size its checkpoint covers
//	    (8 bytes each, big-endian)
//
// For example, with the prefix "L" the leaf hash of leaf 5 is stored under
// the key 74 01 4c 6e 00 0000000000000005, and the state under 74 01 4c 73.
//
// # Checkpoints and epochs
//
// Tree.CloseEpoch closes a round: it signs a Checkpoint of the current tree
// (origin, size, root, then "round", "time" and "prev" extension lines; see
// Checkpoint for the exact format and an example) with the node's Ed25519
// key, chains it to the previous checkpoint by the SHA-256 of that signed
// note, and stores it. OpenCheckpoint verifies and parses a peer's
// checkpoint, and VerifyConsistent checks that a checkpoint extends an
// earlier one of the same origin; a failure is evidence of equivocation.
//
// This package does not decide when epochs close, hold the federation's keys
// or gossip anything; the node and intermesh packages do.
package merkle

// Package log is intermesh's append-only log: every portal transaction and
// every InterMesh record of a node, stored in Badger.
//
// The log owns records, their dense sequence numbers (from 0, issued in commit
// order; a record's sequence number is its leaf index in the Merkle tree),
// paging with the SearchConstraints of the Mesh Portal Protocol, group commit
// and crash safety. It does not own the Merkle tree (package merkle) or the
// portal's materialized state (package portal): both are kept by an Indexer or
// BatchIndexer that the log calls inside the very Badger transaction that
// commits the records, so derived state can never disagree with the log.
//
// The leaf encoding of a record (what is hashed into the tree) is documented on
// Record.MarshalLeaf; auditors recompute leaf hashes from it.
package log

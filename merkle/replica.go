package merkle

import (
	"bytes"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/intermesh/intermesh/internal/keyspace"
)

// replicaPrefixPrefix starts the tree prefix of every replica log.
const replicaPrefixPrefix = keyspace.TreeReplica

// ReplicaPrefix returns the tree prefix of the replica log of a peer origin:
// "replica/" followed by the origin, e.g. "replica/example.org/node2". The
// node's own tree uses another prefix ("local", keyspace.TreeLocal), so the
// two never share keys (see "Keys" in the package comment and
// internal/keyspace). The replica's tree is kept by
// NewTree(nil, ReplicaPrefix(origin)) as the replica's batch indexer, and read
// with NewTree(db, ReplicaPrefix(origin)).
func ReplicaPrefix(origin string) []byte {
	return []byte(replicaPrefixPrefix + origin)
}

// VerifyCheckpoint checks the tree against a peer's checkpoint (opened and
// verified with OpenCheckpoint): the tree must hold at least cp.Size leaves,
// else the error wraps ErrBeyondTree (the replica is behind: fetch the
// missing records and verify again), and its root at cp.Size must be
// cp.Root, else the error wraps ErrInconsistent and gives both roots (the
// records held are not the ones the origin signed).
func (t *Tree) VerifyCheckpoint(cp Checkpoint) error {
	return t.db.View(func(txn *badger.Txn) error { return t.VerifyCheckpointTxn(txn, cp) })
}

// VerifyCheckpointTxn is VerifyCheckpoint as seen by txn.
func (t *Tree) VerifyCheckpointTxn(txn *badger.Txn, cp Checkpoint) error {
	root, err := t.RootTxn(txn, cp.Size)
	if err != nil {
		return fmt.Errorf("merkle: verify checkpoint of %q at size %d: %w", cp.Origin, cp.Size, err)
	}
	if !bytes.Equal(root, cp.Root) {
		return fmt.Errorf("%w: checkpoint of %q at size %d has root %x, the tree's root at that size is %x",
			ErrInconsistent, cp.Origin, cp.Size, cp.Root, root)
	}
	return nil
}

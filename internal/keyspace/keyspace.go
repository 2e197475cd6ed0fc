// Package keyspace is the one list of the key prefixes of the node's Badger
// database: which package owns each prefix and what it holds.
//
// Several packages keep state in the same database: the log, the Merkle
// trees, the portal's materialized state, the witness, the InterMesh, the
// node's federation history and the verifiable maps. Each package writes
// only keys that start with a prefix this list gives it, and names that prefix by the constant here rather than by a
// literal, so a new store index starts with a new entry in Prefixes. Every
// prefix today is a single first byte; the layout that follows it is
// documented by the owning package (and the on-disk formats in
// docs/formats.md):
//
//	'L'  log             records, heads and replica list of every log (log/keys.go)
//	't'  merkle          Merkle tree nodes and tree state (merkle/doc.go)
//	'c'  merkle          signed checkpoints of closed rounds (merkle/doc.go)
//	's'  portal          materialized accounts, profiles, connections, replicated state (portal/state.go)
//	'w'  portal/witness  the latest cosigned size, root and map root of each witnessed log
//	'x'  intermesh       latest checkpoints, certificates, evidence and its index (intermesh/store.go)
//	'F'  node            the chain of signed federation updates (node/federation.go)
//	'm'  vmap            each log's verifiable map: buckets by version, saves, committed version (vmap/badger.go)
//
// The Merkle trees inside 't' and 'c' are named too: a tree's name follows
// the space byte (as a uvarint length and the name), so trees never share
// keys. TreeLocal and TreeReplica are the names in use. The verifiable maps
// inside 'm' are named the same way, one map per log.
//
// Owner says which package owns a key; CheckOwner, for tests, walks a
// database and reports the keys that belong to none of the expected owners.
// This package imports none of the project's packages, so every package can
// import it.
package keyspace

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"
)

// Owners: the import path of each owning package, relative to the module.
const (
	OwnerLog       = "log"
	OwnerMerkle    = "merkle"
	OwnerPortal    = "portal"
	OwnerWitness   = "portal/witness"
	OwnerInterMesh = "intermesh"
	OwnerNode      = "node"
	OwnerMap       = "vmap"
)

// First bytes of the keys, one per store; the comment says what each holds.
const (
	// Log is the first byte of the log's keys: the records and head of every
	// log (the node's own and the replicas of peers) and the list of
	// replicas.
	Log byte = 'L'
	// MerkleTree is the first byte of the Merkle trees' node hashes and
	// tree states.
	MerkleTree byte = 't'
	// MerkleCheckpoint is the first byte of the Merkle trees' signed
	// checkpoints of closed rounds and the latest closed round.
	MerkleCheckpoint byte = 'c'
	// PortalState is the first byte of the portal's materialized state:
	// accounts, latest profiles and escrow entries, version histories,
	// connection requests and the replicated state of peers.
	PortalState byte = 's'
	// Witness is the first byte of the witness's state: the latest cosigned
	// size, root and map root of each log it witnesses.
	Witness byte = 'w'
	// InterMesh is the first byte of the InterMesh's state: the latest
	// signed checkpoint of each member, round certificates, evidence and the
	// index of its Evidence records.
	InterMesh byte = 'x'
	// Federation is the first byte of the node's federation history: every
	// signed federation update, by version.
	Federation byte = 'F'
	// Map is the first byte of the verifiable maps (package vmap), one per
	// log, named like the Merkle trees: each bucket's entries by version,
	// the buckets each version saved, and the last completely saved version.
	Map byte = 'm'
)

// Names of the Merkle trees, which follow MerkleTree or MerkleCheckpoint in
// a key (see package merkle).
const (
	// TreeLocal is the name of the tree of the node's own log.
	TreeLocal = "local"
	// TreeReplica starts the name of the tree of a peer's replica log:
	// TreeReplica followed by the peer's origin.
	TreeReplica = "replica/"
)

// Prefix is one entry of the list: a key prefix, the package that owns it
// and what it holds.
type Prefix struct {
	Name   string // the name of the constant, e.g. "Log"
	Prefix []byte // the bytes every key of the entry starts with
	Owner  string // the owning package, one of the Owner constants
	Holds  string // one line: what the keys hold
}

// Prefixes lists every key prefix of the store. Entries never overlap: no
// prefix is a prefix of another's (TestPrefixesDoNotOverlap).
var Prefixes = []Prefix{
	{"Log", []byte{Log}, OwnerLog, "records, heads and the replica list of every log"},
	{"MerkleTree", []byte{MerkleTree}, OwnerMerkle, "Merkle tree node hashes and tree states"},
	{"MerkleCheckpoint", []byte{MerkleCheckpoint}, OwnerMerkle, "signed checkpoints of closed rounds and the latest round"},
	{"PortalState", []byte{PortalState}, OwnerPortal, "portal accounts, profiles, histories, connections and replicated state"},
	{"Witness", []byte{Witness}, OwnerWitness, "the latest cosigned size, root and map root of each witnessed log"},
	{"InterMesh", []byte{InterMesh}, OwnerInterMesh, "members' latest checkpoints, certificates, evidence and its index"},
	{"Federation", []byte{Federation}, OwnerNode, "the signed federation updates, by version"},
	{"Map", []byte{Map}, OwnerMap, "each log's verifiable map: buckets by version, saves and committed version"},
}

// Owner returns the package that owns key, and false if no entry of
// Prefixes covers it.
func Owner(key []byte) (string, bool) {
	for _, p := range Prefixes {
		if bytes.HasPrefix(key, p.Prefix) {
			return p.Owner, true
		}
	}
	return "", false
}

// Count iterates every key of db and returns how many keys each owner has;
// the keys no entry owns are counted under the empty owner "".
func Count(db *badger.DB) (map[string]int, error) {
	n := map[string]int{}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			owner, _ := Owner(it.Item().Key())
			n[owner]++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("keyspace: reading the keys: %w", err)
	}
	return n, nil
}

// CheckOwner iterates every key of db and returns an error naming the
// first key whose owner (see Owner) is not one of owners, or that no entry
// owns; it also fails if db holds no key at all, so a test that wrote
// nothing cannot pass. It is meant for tests: a package runs its write
// paths on a fresh database and checks that it wrote only under its own
// prefixes.
func CheckOwner(db *badger.DB, owners ...string) error {
	var keys int
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys++
			key := it.Item().Key()
			owner, ok := Owner(key)
			if !ok {
				return fmt.Errorf("keyspace: key %x has no owner", key)
			}
			if !slices.Contains(owners, owner) {
				return fmt.Errorf("keyspace: key %x belongs to %s, not to %q", key, owner, owners)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if keys == 0 {
		return errors.New("keyspace: the database holds no key")
	}
	return nil
}

package vmap

import (
	"crypto/sha256"
	"fmt"
	"unicode/utf8"

	"github.com/intermesh/intermesh/log"
)

// The record kinds that set keys, as the portal logs them. Kind names match
// byte for byte; every other kind sets nothing.
const (
	kindProfile log.Kind = "Profile"
	kindEscrow  log.Kind = "Escrow"
	kindAccount log.Kind = "Account"
)

// Name is a name in one namespace.
type Name struct {
	Namespace Namespace
	Name      string
}

// Key returns the name's key.
func (n Name) Key() (Key, error) {
	return KeyOf(n.Namespace, n.Name)
}

// Sets returns the names whose keys r sets, in the order profile, escrow,
// account:
//
//   - a Profile record with a non-empty identifier sets the profile key of
//     its identifier;
//   - an Account record with a non-empty identifier sets the profile key of
//     its identifier (creating an account registers a version of the profile
//     it binds), and one with a non-empty account sets the account key of its
//     account, so a binding sets two keys (a record that closes an account
//     or only changes its status carries no identifier);
//   - an Escrow record with a non-empty identifier sets the escrow key of its
//     identifier.
//
// Records of every other kind set nothing. Fields are used byte for byte.
func Sets(r *log.Record) []Name {
	var names []Name
	switch r.Kind {
	case kindProfile, kindAccount:
		if r.Identifier != "" {
			names = append(names, Name{Profile, r.Identifier})
		}
		if r.Kind == kindAccount && r.Account != "" {
			names = append(names, Name{Account, r.Account})
		}
	case kindEscrow:
		if r.Identifier != "" {
			names = append(names, Name{Escrow, r.Identifier})
		}
	}
	return names
}

// LogMap is the map of a log's prefix, built by appending the log's leaves
// in order: each key's value is made from every record that set it, in log
// order, a record's index being its position in the log. The zero LogMap is
// not usable; call NewLogMap.
type LogMap struct {
	tree *Tree
	size uint64
}

// NewLogMap returns the map of an empty log, in a MemStore.
func NewLogMap() *LogMap {
	return &LogMap{tree: NewTree()}
}

// OpenLogMap returns the map of a log's first t.Version() records held by
// t, such as a tree opened from a BadgerStore that a LogMap committed to
// (see Commit): t must hold that map, with nothing set since, and from now
// on change through the LogMap only.
func OpenLogMap(t *Tree) *LogMap {
	return &LogMap{tree: t, size: t.Version()}
}

// Commit commits the map over the records appended so far as the tree's
// version Size(), unless it is committed already, and returns its root.
// It fails, committing nothing, if the Store fails to save; if it fails to
// forget older versions, the version is committed and its root returned
// with the error.
func (m *LogMap) Commit() (Hash, error) {
	if m.tree.Version() == m.size {
		return m.tree.RootAt(m.size)
	}
	return m.tree.CommitAt(m.size)
}

// Size returns how many records the map covers.
func (m *LogMap) Size() uint64 {
	return m.size
}

// Root returns the map's root over the records appended so far.
func (m *LogMap) Root() Hash {
	return m.tree.Root()
}

// Tree returns the map's tree. The caller must not change it.
func (m *LogMap) Tree() *Tree {
	return m.tree
}

// Append adds the record at index Size(), given by its leaf encoding (see
// log.Record.MarshalLeaf), to the map. It refuses, leaving the map as it
// was, a leaf that does not parse, has text fields that are not UTF-8, or
// has a seq other than its position: such a leaf is never logged, and a log
// that holds one is refused whole.
//
// It also fails if the tree's Store fails to load a bucket. It reads every
// key the record sets before setting any, so a failure to read leaves the
// map as it was; but if the Store fails between the two Sets of a record
// that sets two keys, the map holds the first, and must be reopened from
// the Store at its last committed version (Size then tells where).
func (m *LogMap) Append(leaf []byte) error {
	r, err := log.UnmarshalLeaf(leaf)
	if err != nil {
		return fmt.Errorf("vmap: record %d: %w", m.size, err)
	}
	if r.Seq != m.size {
		return fmt.Errorf("vmap: record %d has seq %d", m.size, r.Seq)
	}
	for _, f := range []string{string(r.Kind), r.Identifier, r.Account, r.Origin} {
		if !utf8.ValidString(f) {
			return fmt.Errorf("vmap: record %d: a text field is not UTF-8: %q", m.size, f)
		}
	}
	var keys []Key
	for _, n := range Sets(&r) {
		key, err := n.Key()
		if err != nil {
			return fmt.Errorf("vmap: record %d: %w", m.size, err)
		}
		keys = append(keys, key)
	}
	lh := Hash(sha256.Sum256(append([]byte{0}, leaf...)))
	values := make([]Value, len(keys))
	for i, key := range keys {
		v, _, err := m.tree.Lookup(key)
		if err != nil {
			return fmt.Errorf("vmap: record %d: %w", m.size, err)
		}
		values[i] = v.Append(m.size, lh)
	}
	for i, key := range keys {
		if err := m.tree.Set(key, values[i]); err != nil {
			return fmt.Errorf("vmap: record %d: %w", m.size, err)
		}
	}
	m.size++
	return nil
}

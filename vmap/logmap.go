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

// NewLogMap returns the map of an empty log.
func NewLogMap() *LogMap {
	return &LogMap{tree: NewTree()}
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
	for _, key := range keys {
		v, _ := m.tree.Get(key)
		m.tree.Set(key, v.Append(m.size, lh))
	}
	m.size++
	return nil
}

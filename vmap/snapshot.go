package vmap

import (
	"errors"
	"fmt"
	"slices"
)

// ErrVersionNotKept is returned (wrapped) for a version the tree does not
// keep: never committed, or forgotten.
var ErrVersionNotKept = errors.New("vmap: version not kept")

// Version returns the last committed version, 0 before the first Commit
// (or the version OpenTree opened).
func (t *Tree) Version() uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.version
}

// Versions returns the versions the tree keeps proofs for, oldest first.
func (t *Tree) Versions() []uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.versions()
}

// versions returns the kept versions, oldest first.
func (t *Tree) versions() []uint64 {
	vs := make([]uint64, len(t.kept))
	for i, s := range t.kept {
		vs[i] = s.version
	}
	return vs
}

// Commit saves the map's current contents as the next version, the last
// committed one plus one, and returns that version and its root: it is
// CommitAt(Version()+1).
func (t *Tree) Commit() (uint64, Hash, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v := t.version + 1
	root, err := t.commitAt(v)
	if t.version != v { // not committed
		return 0, Hash{}, err
	}
	return v, root, err
}

// CommitAt saves the map's current contents as version, which must be above
// the last committed version, returns its root, and keeps it for ProveAt;
// once more than the tree's keep versions are kept, it forgets the oldest.
// Versions need not be consecutive: a log's map commits the map over its
// first S records as version S. If version is not above the last committed
// one, or the Store fails to save, nothing is committed and CommitAt may be
// retried; if the Store fails to forget, the version is committed and its
// root returned with the error. A Store that can Save and Forget in one
// write (BadgerStore.SaveForget) does both at once: failing, it commits
// nothing, but the versions it would have forgotten are no longer kept.
func (t *Tree) CommitAt(version uint64) (Hash, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.commitAt(version)
}

// ErrVersionNotAbove is returned (wrapped) by CommitAt for a version not
// above the last committed one.
var ErrVersionNotAbove = errors.New("vmap: version not above the last committed one")

// commitAt is CommitAt.
func (t *Tree) commitAt(v uint64) (Hash, error) {
	if v <= t.version {
		return Hash{}, fmt.Errorf("%w: %d, last committed %d", ErrVersionNotAbove, v, t.version)
	}
	t.refresh()
	// The oldest version kept once v is: forgetting below it can go with
	// the Save if the Store can, and the version is an earlier one.
	var cut uint64
	if i := len(t.kept) + 1 - t.keep; i > 0 && i < len(t.kept) {
		cut = t.kept[i].version
	}
	sf, together := t.store.(saveForgetter)
	together = together && cut > 0
	var err error
	if together {
		err = sf.SaveForget(v, t.pending, cut)
	} else {
		err = t.store.Save(v, t.pending)
	}
	if err != nil {
		if together { // the Store may have forgotten them
			t.dropKept(cut)
		}
		return Hash{}, fmt.Errorf("vmap: committing version %d: %w", v, err)
	}
	t.pending = map[uint32][]Entry{} // the Store's now
	t.version = v
	t.kept = append(t.kept, t.snapshot())
	if together {
		t.dropKept(cut)
	} else if len(t.kept) > t.keep {
		if err := t.forget(t.kept[len(t.kept)-t.keep].version); err != nil {
			return t.cur[1].hash, err
		}
	}
	return t.cur[1].hash, nil
}

// saveForgetter is a Store that can Save and Forget in one write.
type saveForgetter interface {
	// SaveForget is Save(version, changed) and then Forget(forget), for a
	// forget below version; failing, it may have done the Forget but not
	// the Save.
	SaveForget(version uint64, changed map[uint32][]Entry, forget uint64) error
}

// snapshot returns the last committed version, with nothing changed since.
// An empty version keeps no nodes: they are all empty.
func (t *Tree) snapshot() *snapshot {
	s := &snapshot{version: t.version, n: t.n}
	if t.n > 0 {
		s.undo = map[uint32]node{}
	}
	return s
}

// Forget stops keeping the versions below version, and lets the Store drop
// what only they need. ProveAt and RootAt then refuse them. The last
// committed version is always kept.
func (t *Tree) Forget(version uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.forget(version)
}

// forget is Forget.
func (t *Tree) forget(version uint64) error {
	oldest, ok := t.dropKept(version)
	if !ok {
		return nil
	}
	if err := t.store.Forget(oldest); err != nil {
		return fmt.Errorf("vmap: forgetting versions below %d: %w", oldest, err)
	}
	return nil
}

// dropKept stops keeping the versions below version, and returns the
// oldest version kept and whether it dropped any.
func (t *Tree) dropKept(version uint64) (uint64, bool) {
	version = min(version, t.version)
	i := 0
	for i < len(t.kept) && t.kept[i].version < version {
		i++
	}
	if i == 0 {
		return 0, false
	}
	t.kept = slices.Delete(t.kept, 0, i) // the last committed stays
	return t.kept[0].version, true
}

// at returns the kept snapshot of version, and the top's nodes as they were
// in it: a node's value kept by the first snapshot from version on in
// which it changed, or else its current value. (Keys are never removed, so
// only versions before the first non-empty one are empty, and those keep
// no nodes.)
func (t *Tree) at(version uint64) (*snapshot, func(uint32) node, error) {
	for k, s := range t.kept {
		switch {
		case s.version == version && s.n == 0:
			return s, func(uint32) node { return node{} }, nil
		case s.version == version:
			later := t.kept[k:]
			return s, func(i uint32) node {
				for _, l := range later {
					if nd, ok := l.undo[i]; ok {
						return nd
					}
				}
				return t.cur[i]
			}, nil
		}
	}
	return nil, nil, fmt.Errorf("%w: %d (kept: %v)", ErrVersionNotKept, version, t.versions())
}

// RootAt returns the root of a kept version.
func (t *Tree) RootAt(version uint64) (Hash, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	_, nodeAt, err := t.at(version)
	if err != nil {
		return Hash{}, err
	}
	return nodeAt(1).hash, nil
}

// LenAt returns how many keys a kept version holds.
func (t *Tree) LenAt(version uint64) (int, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s, _, err := t.at(version)
	if err != nil {
		return 0, err
	}
	return s.n, nil
}

// ProveAt returns the lookup proof for key under the root of a kept
// version, or an error if the version is not kept or the Store fails.
func (t *Tree) ProveAt(version uint64, key Key) (*Proof, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	_, nodeAt, err := t.at(version)
	if err != nil {
		return nil, err
	}
	return prove(nodeAt, key, func(b uint32) ([]Entry, error) {
		e, err := t.store.Load(b, version)
		if err != nil {
			return nil, fmt.Errorf("vmap: loading bucket %d of version %d: %w", b, version, err)
		}
		return e, nil
	})
}

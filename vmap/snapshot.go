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
	return t.version
}

// Versions returns the versions the tree keeps proofs for, oldest first.
func (t *Tree) Versions() []uint64 {
	vs := make([]uint64, len(t.kept))
	for i, s := range t.kept {
		vs[i] = s.version
	}
	return vs
}

// Commit saves the map's current contents as the next version, returns
// that version and its root, and keeps it for ProveAt; once more than the
// tree's keep versions are kept, it forgets the oldest. If the Store fails
// to save, nothing is committed and Commit may be retried; if it fails to
// forget, the version is committed and returned with the error.
func (t *Tree) Commit() (uint64, Hash, error) {
	t.refresh()
	v := t.version + 1
	changed := make([]uint32, 0, len(t.pending))
	for b := range t.pending {
		changed = append(changed, b)
	}
	slices.Sort(changed)
	for _, b := range changed {
		if err := t.store.Save(b, v, t.pending[b]); err != nil {
			return 0, Hash{}, fmt.Errorf("vmap: committing version %d: saving bucket %d: %w", v, b, err)
		}
	}
	clear(t.pending)
	t.version = v
	t.kept = append(t.kept, t.snapshot())
	if len(t.kept) > t.keep {
		if err := t.Forget(t.kept[len(t.kept)-t.keep].version); err != nil {
			return v, t.cur.hash[1], err
		}
	}
	return v, t.cur.hash[1], nil
}

// snapshot returns a copy of the current top as the last committed
// version.
func (t *Tree) snapshot() *snapshot {
	cp := new(top)
	*cp = *t.cur
	return &snapshot{version: t.version, top: cp, n: t.n}
}

// Forget stops keeping the versions below version, and lets the Store drop
// what only they need. ProveAt and RootAt then refuse them. The last
// committed version is always kept.
func (t *Tree) Forget(version uint64) error {
	version = min(version, t.version)
	i := 0
	for i < len(t.kept) && t.kept[i].version < version {
		i++
	}
	if i == 0 {
		return nil
	}
	t.kept = slices.Delete(t.kept, 0, i)
	oldest := t.version
	if len(t.kept) > 0 {
		oldest = t.kept[0].version
	}
	if err := t.store.Forget(oldest); err != nil {
		return fmt.Errorf("vmap: forgetting versions below %d: %w", oldest, err)
	}
	return nil
}

// at returns the kept snapshot of version.
func (t *Tree) at(version uint64) (*snapshot, error) {
	for _, s := range t.kept {
		if s.version == version {
			return s, nil
		}
	}
	return nil, fmt.Errorf("%w: %d (kept: %v)", ErrVersionNotKept, version, t.Versions())
}

// RootAt returns the root of a kept version.
func (t *Tree) RootAt(version uint64) (Hash, error) {
	s, err := t.at(version)
	if err != nil {
		return Hash{}, err
	}
	return s.top.hash[1], nil
}

// LenAt returns how many keys a kept version holds.
func (t *Tree) LenAt(version uint64) (int, error) {
	s, err := t.at(version)
	if err != nil {
		return 0, err
	}
	return s.n, nil
}

// ProveAt returns the lookup proof for key under the root of a kept
// version, or an error if the version is not kept or the Store fails.
func (t *Tree) ProveAt(version uint64, key Key) (*Proof, error) {
	s, err := t.at(version)
	if err != nil {
		return nil, err
	}
	return prove(s.top, key, func(b uint32) ([]Entry, error) {
		e, err := t.store.Load(b, version)
		if err != nil {
			return nil, fmt.Errorf("vmap: loading bucket %d of version %d: %w", b, version, err)
		}
		return e, nil
	})
}

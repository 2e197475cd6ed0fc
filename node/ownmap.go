package node

import (
	"context"
	"fmt"
	"sync"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/vmap"
)

// ownMap is the verifiable map of the node's own log (package vmap): every
// checkpoint the node closes ends with the map's root over exactly the
// checkpoint's records. The map is advanced at each epoch close over the
// records appended since the previous one, and committed under the
// checkpoint's size, so that the maps of the last few checkpoints stay
// provable.
type ownMap struct {
	log *log.Log
	mu  sync.Mutex
	lm  *vmap.LogMap // guarded by mu
}

// newOwnMap builds the map of the log's records, replaying them all.
func newOwnMap(ctx context.Context, l *log.Log) (*ownMap, error) {
	m := &ownMap{log: l, lm: vmap.NewLogMap()}
	if err := m.advance(ctx, l.Size()); err != nil {
		return nil, err
	}
	return m, nil
}

// rootAt returns the map root over the log's first size records (a
// merkle.MapRoot): it advances the map to size and commits it under that
// version. A size below the map's is answered from the kept versions.
func (m *ownMap) rootAt(ctx context.Context) func(size uint64) ([]byte, error) {
	return func(size uint64) ([]byte, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		tree := m.lm.Tree()
		if size < m.lm.Size() {
			root, err := tree.RootAt(size)
			if err != nil {
				return nil, fmt.Errorf("node: map root at size %d, below the map's %d: %w", size, m.lm.Size(), err)
			}
			return root[:], nil
		}
		if err := m.advance(ctx, size); err != nil {
			return nil, err
		}
		if size > tree.Version() {
			if _, err := tree.CommitAt(size); err != nil {
				return nil, fmt.Errorf("node: committing the map at size %d: %w", size, err)
			}
		}
		root := tree.Root()
		return root[:], nil
	}
}

// advance appends the log's records from the map's size up to size.
func (m *ownMap) advance(ctx context.Context, size uint64) error {
	if err := m.lm.Follow(ctx, m.log, size); err != nil {
		return fmt.Errorf("node: the map of the log: %w", err)
	}
	return nil
}

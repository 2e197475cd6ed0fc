package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/vmap"
)

// mapStoreName names the node's own map in its database (vmap.StorePrefix).
const mapStoreName = "local"

// ownMap is the verifiable map of the node's own log (package vmap): every
// checkpoint the node closes ends with the map's root over exactly the
// checkpoint's records. The map's buckets are kept in the node's database
// (vmap.BadgerStore), committed under the size of each checkpoint, so that
// a restart resumes from the last one and the maps of the last few
// checkpoints stay provable.
type ownMap struct {
	log     *log.Log
	store   *vmap.BadgerStore
	metrics *nodeMetrics
	mu      sync.Mutex
	lm      *vmap.LogMap // guarded by mu
}

// openOwnMap opens the map kept in the log's database, at the last size it
// was committed at.
func openOwnMap(l *log.Log, metrics *nodeMetrics) (*ownMap, error) {
	m := &ownMap{log: l, store: vmap.NewBadgerStore(l.DB(), vmap.StorePrefix(mapStoreName)), metrics: metrics}
	if err := m.reopen(); err != nil {
		return nil, err
	}
	return m, nil
}

// reopen reloads the map from its store; mu held or not yet shared.
func (m *ownMap) reopen() error {
	tree, err := m.store.Open(vmap.DefaultKeep)
	if err != nil {
		return fmt.Errorf("node: opening the log's map: %w", err)
	}
	if v, size := tree.Version(), m.log.Size(); v > size {
		return fmt.Errorf("node: the log's map covers %d records but the log holds %d: %w", v, size, log.ErrCorrupt)
	}
	m.lm = vmap.OpenLogMap(tree)
	return nil
}

// rootAt returns the map root over the log's first size records (a
// merkle.MapRoot): it advances the map to size and commits it under that
// version. A size below the map's is answered from the kept versions. On a
// failure the map is reloaded from its store, at its last commit.
func (m *ownMap) rootAt(ctx context.Context) func(size uint64) ([]byte, error) {
	return func(size uint64) ([]byte, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		start := time.Now()
		root, err := m.root(ctx, size)
		if err != nil {
			if rerr := m.reopen(); rerr != nil {
				err = fmt.Errorf("%w (and %w)", err, rerr)
			}
			return nil, err
		}
		m.metrics.mapSeconds.Observe(time.Since(start).Seconds())
		m.metrics.mapKeys.Set(float64(m.lm.Tree().Len()))
		m.metrics.mapSize.Set(float64(m.lm.Size()))
		return root[:], nil
	}
}

// root is rootAt with mu held.
func (m *ownMap) root(ctx context.Context, size uint64) (vmap.Hash, error) {
	if size < m.lm.Size() {
		root, err := m.lm.Tree().RootAt(size)
		if err != nil {
			return vmap.Hash{}, fmt.Errorf("node: map root at size %d, below the map's %d: %w", size, m.lm.Size(), err)
		}
		return root, nil
	}
	if err := m.lm.Follow(ctx, m.log, size); err != nil {
		return vmap.Hash{}, fmt.Errorf("node: the map of the log: %w", err)
	}
	root, err := m.lm.Commit()
	if err != nil {
		return vmap.Hash{}, fmt.Errorf("node: committing the map at size %d: %w", size, err)
	}
	return root, nil
}

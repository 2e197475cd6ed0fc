package node

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/vmap"
)

// mapStoreName names the node's own map in its database (vmap.StorePrefix).
const mapStoreName = "local"

// followChunk bounds the records the follower adds to the map at one time,
// so that an epoch close never waits long for it.
const followChunk = 2000

// ownMap is the verifiable map of the node's own log (package vmap): every
// checkpoint the node closes ends with the map's root over exactly the
// checkpoint's records. The map follows the log as it grows (follow), and
// at each epoch close the node brings it to the checkpoint's size and
// commits it under that size (closeEpoch), so the close does only the
// records of the last moments, in memory. The buckets are kept in the
// node's database (vmap.BadgerStore) through a vmap.BufferedStore: the
// commit stays in memory and the follower writes it after the close
// (save), so a restart resumes from the last commit saved, at or below the
// log's size, and follows the log from there. The maps of the last few
// checkpoints stay provable, from memory until saved.
type ownMap struct {
	log     *log.Log
	store   *vmap.BufferedStore
	metrics *nodeMetrics
	saveNow chan struct{} // a commit waits to be saved
	mu      sync.Mutex
	lm      *vmap.LogMap // guarded by mu
}

// openOwnMap opens the map kept in the log's database, at the last size it
// was committed at.
func openOwnMap(l *log.Log, metrics *nodeMetrics) (*ownMap, error) {
	store := vmap.NewBufferedStore(vmap.NewBadgerStore(l.DB(), vmap.StorePrefix(mapStoreName)))
	m := &ownMap{log: l, store: store, metrics: metrics, saveNow: make(chan struct{}, 1)}
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

// follow adds the log's new records to the map every interval until ctx
// ends, at most followChunk at a time, and hashes the changed buckets; it
// saves the commits of the epoch closes as soon as they are made, and once
// more before it returns. A failure is logged and the map reloaded from
// its last commit saved; the next epoch close redoes the work.
func (m *ownMap) follow(ctx context.Context, interval time.Duration, logger *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.save(logger)
			return
		case <-m.saveNow:
			m.save(logger)
			continue
		case <-t.C:
		}
		m.save(logger) // what is still held, if a reload after a failed save failed too
		m.mu.Lock()
		target := min(m.log.Size(), m.lm.Size()+followChunk)
		if err := m.lm.Follow(ctx, m.log, target); err != nil && ctx.Err() == nil {
			logger.Warn("the log's map could not follow the log; reloading it", "err", err)
			if err := m.reopen(); err != nil {
				logger.Error("reloading the log's map", "err", err)
			}
		} else {
			m.lm.Root() // hash the changed buckets now, not at the close
		}
		m.mu.Unlock()
	}
}

// save writes the map's commits held in memory to its store, outside mu:
// the close need not wait for it. A failure is logged and the map reloaded
// from its last commit saved.
func (m *ownMap) save(logger *slog.Logger) {
	if m.store.Buffered() == 0 {
		return
	}
	err := m.store.Flush()
	if err == nil {
		return
	}
	logger.Error("saving the log's map failed; reloading it from its last commit saved", "err", err)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.reopen(); err != nil {
		logger.Error("reloading the log's map", "err", err)
	}
}

// closeEpoch runs close, an epoch close of the log's tree, with the map
// held still: the follower cannot move it past the size the close takes
// from the tree (which is at least the log size the follower last saw), so
// the root close asks for (through the merkle.MapRoot it gets) is always
// reachable. On a failure of the map the map is reloaded from its store.
func (m *ownMap) closeEpoch(ctx context.Context, close func(merkle.MapRoot) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var mapErr error
	err := close(func(size uint64) ([]byte, error) {
		start := time.Now()
		root, err := m.root(ctx, size)
		if err != nil {
			mapErr = err
			return nil, err
		}
		m.metrics.mapSeconds.Observe(time.Since(start).Seconds())
		m.metrics.mapKeys.Set(float64(m.lm.Tree().Len()))
		m.metrics.mapSize.Set(float64(m.lm.Size()))
		select {
		case m.saveNow <- struct{}{}:
		default: // one is waiting already
		}
		return root[:], nil
	})
	if mapErr != nil {
		if rerr := m.reopen(); rerr != nil {
			err = fmt.Errorf("%w (and %w)", err, rerr)
		}
	}
	return err
}

// root brings the map to size, commits it under that version and returns
// its root; a size below the map's is answered from the kept versions; mu
// held.
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

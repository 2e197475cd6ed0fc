package intermesh

import (
	"bytes"
	"cmp"
	"context"
	"fmt"

	"github.com/intermesh/intermesh/vmap"
)

// A member recomputes the verifiable map (package vmap) of each origin it
// replicates from the replica's records, and a checkpoint of the origin is
// verified only if its map line (when it has one) is the recomputed root
// over the checkpoint's records. The map is derived state: it is kept in
// memory, advanced as checkpoints are verified, and forgotten above the
// cut when the replica is cut back.

// mapRootLocked returns the root of the map of rs's replica over its first
// size records, which the replica holds; rs.mu held. It advances the map,
// committing it under size, answers a smaller size from the versions the
// map keeps, and rebuilds the map from the first record otherwise.
func (rs *replicaState) mapRootLocked(ctx context.Context, size uint64) (vmap.Hash, error) {
	if rs.lm != nil && size < rs.lm.Size() {
		if root, err := rs.lm.Tree().RootAt(size); err == nil {
			return root, nil
		}
		rs.lm = nil
	}
	if rs.lm == nil {
		rs.lm = vmap.NewLogMap()
	}
	if err := rs.lm.Follow(ctx, rs.rep, size); err != nil {
		rs.lm = nil // rebuilt next time, from records that may differ
		return vmap.Hash{}, err
	}
	if size > rs.lm.Tree().Version() {
		if _, err := rs.lm.Tree().CommitAt(size); err != nil {
			rs.lm = nil
			return vmap.Hash{}, err
		}
	}
	return rs.lm.Root(), nil
}

// checkMapLocked reports why hc's map line is not the replica's map root
// at hc's size, or "" if it is or hc has no map line; rs.mu held, the
// replica holding hc's records.
func (rs *replicaState) checkMapLocked(ctx context.Context, hc heldCheckpoint) (string, error) {
	if len(hc.cp.Map) == 0 {
		return "", nil
	}
	root, err := rs.mapRootLocked(ctx, hc.cp.Size)
	if err != nil {
		return "", fmt.Errorf("recomputing the map of %s at %d records: %w", rs.origin, hc.cp.Size, err)
	}
	if !bytes.Equal(hc.cp.Map, root[:]) {
		return fmt.Sprintf("map line %x at %d records, the records' map is %x", hc.cp.Map, hc.cp.Size, root), nil
	}
	return "", nil
}

// mapMismatchLocked refuses hc, whose map line is not its records' map:
// the checkpoint is not verified, and the replica, whose records the
// origin's tree root vouches for, stays trusted; rs.mu held.
func (r *replicator) mapMismatchLocked(rs *replicaState, hc heldCheckpoint, why string) {
	r.m.metrics.mapMismatches.WithLabelValues(rs.origin).Inc()
	r.m.log.Warn("member's checkpoint has a map line its records do not give; not verified", "member", rs.origin, "round", hc.cp.Round, "reason", why)
}

// forgetMapAbove drops the replica's map if it covers more than keep
// records (the replica was cut back to keep).
func (rs *replicaState) forgetMapAbove(keep uint64) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.lm != nil && rs.lm.Size() > keep {
		rs.lm = nil
	}
}

// bySize orders checkpoints by size, so that a replica's map only advances
// while it verifies them.
func bySize(a, b heldCheckpoint) int { return cmp.Compare(a.cp.Size, b.cp.Size) }

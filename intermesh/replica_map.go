package intermesh

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/intermesh/intermesh/vmap"
)

// A member recomputes the verifiable map (package vmap) of each origin it
// replicates from the replica's records, and a checkpoint of the origin is
// verified only if its map line (when it has one) is the recomputed root
// over the checkpoint's records.
//
// The map is derived state, kept in the node's database like the node's
// own map (vmap.BadgerStore): the map of origin O's replica lives under
// vmap.StorePrefix("replica/" + O), a name that is never the node's own
// map's ("local", package node) nor another origin's, and StorePrefix
// encodes the name's length, so no map's keys start with another's prefix.
// It is opened on first use at its committed version, advanced over the
// replica as checkpoints are verified (in size order) and committed under
// each verified checkpoint's size, so a restart resumes from the last one
// and the maps of the last vmap.DefaultKeep of them stay at hand.
//
// The map never covers records the replica does not hold: when the replica
// is cut back, or found shorter than the map after a restart, the map is
// lowered to the newest version it keeps that the replica covers, or
// cleared, and followed again from there.

// replicaMapName names the map of origin's replica in the node's database
// (vmap.StorePrefix). Origins hold a '/' ("testnet/node0"), and so does
// the name, so it is never the node's own map's name, "local".
func replicaMapName(origin string) string { return "replica/" + origin }

// replicaMap is the map of one origin's replica; its fields are guarded by
// the replicaState's mu.
type replicaMap struct {
	db     *badger.DB
	prefix []byte
	store  *vmap.BadgerStore // set with lm
	lm     *vmap.LogMap      // nil until opened, and after a failure
	// clear says the store may cover records the replica no longer holds,
	// or hold leftovers of an interrupted clearing: it is emptied before
	// it is opened.
	clear bool
}

// newReplicaMap returns the map of origin's replica, kept in db, not
// opened yet; size is what the replica holds. A map committed above size
// (the replica was cut back and the node stopped before the map followed)
// is cleared when opened.
func newReplicaMap(db *badger.DB, origin string, size uint64) (replicaMap, error) {
	m := replicaMap{db: db, prefix: vmap.StorePrefix(replicaMapName(origin))}
	c, err := vmap.NewBadgerStore(db, m.prefix).Committed()
	if err != nil {
		return replicaMap{}, fmt.Errorf("the map of the replica of %s: %w", origin, err)
	}
	m.clear = c > size
	return m, nil
}

// openMapLocked opens the replica's map at its committed version unless it
// is open, clearing it first if it must be or if it covers more records
// than the replica holds; rs.mu held.
func (rs *replicaState) openMapLocked() error {
	m := &rs.rmap
	if m.lm != nil {
		return nil
	}
	store := vmap.NewBadgerStore(m.db, m.prefix)
	c, err := store.Committed()
	if err != nil {
		return err
	}
	// At version 0, what is left under the prefix is leftovers: of Saves
	// cut short, or of a clearing cut short (bucket versions that Forget
	// kept, which DiscardAbove(0) does not list and which a later Save
	// would show through).
	if m.clear || c == 0 || c > rs.rep.Size() {
		if err := m.clearStore(); err != nil {
			m.clear = true
			return err
		}
		m.clear = false
		store = vmap.NewBadgerStore(m.db, m.prefix)
	}
	tree, err := store.Open(vmap.DefaultKeep)
	if err != nil {
		return err
	}
	m.store, m.lm = store, vmap.OpenLogMap(tree)
	return nil
}

// clearStore empties the map's store (vmap.BadgerStore.Clear). No Tree
// may use the store.
func (m *replicaMap) clearStore() error {
	return vmap.NewBadgerStore(m.db, m.prefix).Clear()
}

// lowerMapLocked makes the replica's map cover at most n records: it drops
// the versions above the newest one it keeps not above n, or clears the
// map if it keeps none but 0; rs.mu held. The next Follow replays the
// records from there.
func (rs *replicaState) lowerMapLocked(n uint64) error {
	m := &rs.rmap
	if m.lm == nil && !m.clear {
		// Not opened: opening loads every bucket, and a map committed
		// above n keeps, as reopened, no version at or below n.
		c, err := vmap.NewBadgerStore(m.db, m.prefix).Committed()
		if err != nil {
			m.clear = true
			return err
		}
		m.clear = c > n
	}
	if m.lm != nil && m.lm.Size() > n {
		var v uint64
		for _, kv := range m.lm.Tree().Versions() {
			if kv <= n {
				v = max(v, kv)
			}
		}
		store := m.store
		m.lm, m.store = nil, nil // no Tree uses the store from here
		if v == 0 {
			m.clear = true
		} else if err := store.DiscardAbove(v); err != nil {
			m.clear = true
			return err
		}
	}
	if m.clear {
		if err := m.clearStore(); err != nil {
			return err
		}
		m.clear = false
	}
	return nil
}

// mapRootLocked returns the root of the map of rs's replica over its first
// size records, which the replica holds; rs.mu held. It advances the map,
// committing it under size; a smaller size it answers from the versions
// the map keeps, or else lowers the map to the newest kept version below
// size, or to the empty map, and follows the replica from there. On a
// failure the map is reopened at its last commit when next needed.
//
// Each record is checked with rule as the map takes it (followChecked): a
// record that breaks it stops the map before it, which stays open there,
// and the *ruleViolation is returned.
func (rs *replicaState) mapRootLocked(ctx context.Context, size uint64, rule MapRule) (vmap.Hash, error) {
	if err := rs.openMapLocked(); err != nil {
		return vmap.Hash{}, err
	}
	if size < rs.rmap.lm.Size() {
		if root, err := rs.rmap.lm.Tree().RootAt(size); err == nil {
			return root, nil
		}
		if err := rs.lowerMapLocked(size); err != nil {
			return vmap.Hash{}, err
		}
		if err := rs.openMapLocked(); err != nil {
			return vmap.Hash{}, err
		}
	}
	lm := rs.rmap.lm
	if err := rs.followChecked(ctx, lm, size, rule); err != nil {
		var v *ruleViolation
		if !errors.As(err, &v) {
			rs.rmap.lm = nil // reopened at its last commit
		}
		return vmap.Hash{}, err
	}
	root, err := lm.Commit()
	if err != nil {
		rs.rmap.lm = nil
		return vmap.Hash{}, err
	}
	return root, nil
}

// checkMapLocked reports why hc's map line is not the replica's map root
// at hc's size, or "" if it is or hc has no map line; rs.mu held, the
// replica holding hc's records. A record that breaks rule is a
// *ruleViolation error (mapRootLocked).
func (rs *replicaState) checkMapLocked(ctx context.Context, hc heldCheckpoint, rule MapRule) (string, error) {
	if len(hc.cp.Map) == 0 {
		return "", nil
	}
	root, err := rs.mapRootLocked(ctx, hc.cp.Size, rule)
	var v *ruleViolation
	if errors.As(err, &v) {
		return "", err
	}
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
//
// The node publishes its claim (claim.go) with the root it recomputed.
func (r *replicator) mapMismatchLocked(rs *replicaState, hc heldCheckpoint, why string) {
	r.m.metrics.mapMismatches.WithLabelValues(rs.origin).Inc()
	r.m.log.Warn("member's checkpoint has a map line its records do not give; not verified", "member", rs.origin, "round", hc.cp.Round, "reason", why)
	if rs.rmap.lm == nil {
		return
	}
	root, err := rs.rmap.lm.Tree().RootAt(hc.cp.Size)
	if err != nil {
		return
	}
	go r.m.do(context.Background(), func(st *state) { st.refuseMap(hc, root[:]) })
}

// cutBack cuts rs's replica (records, head and Merkle tree) back to keep
// records and lowers its map in the same transaction: the map's committed
// version becomes the newest version it keeps not above keep, or 0
// (vmap.BadgerStore.LowerCommittedTxn); then what the map held above is
// dropped (lowerMapLocked). rs.mu is held throughout, so nothing uses the
// map in between, and a crash in between leaves a map that Open finishes
// lowering. On a failure to drop, the map is cleared before it is next
// opened; that error is *mapNotLowered.
func (rs *replicaState) cutBack(ctx context.Context, keep uint64) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if err := rs.truncateLocked(ctx, keep); err != nil {
		return err
	}
	if keep < rs.brokenAt {
		rs.brokenAt = 0 // the record is gone; its successor is checked again
	}
	if err := rs.lowerMapLocked(keep); err != nil {
		rs.rmap.lm, rs.rmap.clear = nil, true
		return &mapNotLowered{fmt.Errorf("lowering the map of the replica of %s to %d records: %w", rs.origin, keep, err)}
	}
	return nil
}

// truncateLocked is cutBack's transaction: the replica's records, head and
// tree cut back to keep, and its map's committed version lowered with
// them; rs.mu held.
func (rs *replicaState) truncateLocked(ctx context.Context, keep uint64) error {
	var kept []uint64
	if rs.rmap.lm != nil {
		kept = rs.rmap.lm.Tree().Versions()
	}
	store := vmap.NewBadgerStore(rs.rmap.db, rs.rmap.prefix)
	err := rs.rep.Truncate(ctx, keep, func(txn *badger.Txn) error {
		if err := rs.tree.TruncateTxn(txn, keep); err != nil {
			return err
		}
		_, err := store.LowerCommittedTxn(txn, keep, kept)
		return err
	})
	if err != nil {
		return fmt.Errorf("cutting the replica back to %d records: %w", keep, err)
	}
	return nil
}

// mapNotLowered is cutBack's error when the replica was cut back but what
// its map held above was not dropped: the map is cleared when next opened.
type mapNotLowered struct{ err error }

func (e *mapNotLowered) Error() string { return e.err.Error() }
func (e *mapNotLowered) Unwrap() error { return e.err }

// bySize orders checkpoints by size, so that a replica's map only advances
// while it verifies them.
func bySize(a, b heldCheckpoint) int { return cmp.Compare(a.cp.Size, b.cp.Size) }

// ProveReplicaMap returns the lookup proofs of keys in this node's map of
// origin's replica under its version size (the size of a checkpoint of
// origin that the replica verified, among the last vmap.DefaultKeep): what
// a portal answers about names of origin's log. It waits while the map is
// being recomputed.
func (m *Mesh) ProveReplicaMap(origin string, size uint64, keys []vmap.Key) ([]*vmap.Proof, error) {
	if m.repl == nil {
		return nil, fmt.Errorf("intermesh: no replicas")
	}
	rs := m.repl.origins[origin]
	if rs == nil {
		return nil, fmt.Errorf("intermesh: %q is not a replicated member", origin)
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if err := rs.openMapLocked(); err != nil {
		return nil, fmt.Errorf("intermesh: the map of the replica of %s: %w", origin, err)
	}
	proofs := make([]*vmap.Proof, len(keys))
	for i, k := range keys {
		p, err := rs.rmap.lm.Tree().ProveAt(size, k)
		if err != nil {
			return nil, fmt.Errorf("intermesh: the map of the replica of %s at %d records: %w", origin, size, err)
		}
		proofs[i] = p
	}
	return proofs, nil
}

// VerifiedCheckpoint returns the signed checkpoint of origin's round that
// its replica verified, among the last few it keeps; round 0 asks for the
// latest. False if there is none.
func (m *Mesh) VerifiedCheckpoint(origin string, round uint64) ([]byte, bool) {
	if m.repl == nil || m.repl.origins[origin] == nil {
		return nil, false
	}
	rs := m.repl.origins[origin]
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if round == 0 {
		if i := largestIndex(rs.verified); i >= 0 {
			return rs.verified[i].note, true
		}
		return nil, false
	}
	for _, hc := range rs.verified {
		if hc.cp.Round == round {
			return hc.note, true
		}
	}
	return nil, false
}

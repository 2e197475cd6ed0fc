package intermesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
)

// Replica repair. A replica that stopped matching its origin (its records
// do not reproduce a checkpoint the origin signed, or conflict with a
// record the origin signed) is repaired from the origin itself, without a
// restart, as soon as the origin's checkpoints verify again: whenever a
// checkpoint c of the origin arrives while the replica is untrusted (the
// latest one wins), the repairer
//
//  1. fetches the origin's first c.Size records from the origin over
//     Transfer (as a fork investigation does, at most maxForkLeaves) and
//     checks that they reproduce c's root, and the root of every checkpoint
//     of the origin verified here before: the origin serves one history,
//     the one it signed (if not, the origin is the problem: the fork
//     investigator looks for evidence, and the replica stays untrusted);
//  2. finds the first record the replica holds that differs from the
//     origin's, and cuts the replica (records, head and Merkle tree, in one
//     transaction: log.Replica.Truncate) back to it, or to c.Size;
//  3. rebuilds what the node derived from the replica (Config.ReplicaReset:
//     the portal's replicated state);
//  4. trusts the replica again, with c pending, and fetches the rest from
//     the origin, which verifies c.
//
// A member with evidence against it is not repaired. Each repair runs
// within forkTimeout, one at a time per member, and is counted in
// intermesh_replica_repairs_total{origin,result}.

// repairLocked remembers hc, a checkpoint of rs's origin that arrived while
// the replica is untrusted, for the repairer, and wakes it; rs.mu held.
func (rs *replicaState) repairLocked(hc heldCheckpoint) {
	if rs.mendWith != nil && rs.mendWith.cp.Round >= hc.cp.Round {
		return
	}
	rs.mendWith = &hc
	select {
	case rs.mending <- struct{}{}:
	default:
	}
}

// repairLoop is the repairer of one member's replica (see above).
func (r *replicator) repairLoop(ctx context.Context, rs *replicaState) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-rs.mending:
		}
		rs.mu.Lock()
		c, untrusted := rs.mendWith, rs.untrusted != ""
		rs.mendWith = nil
		rs.mu.Unlock()
		if c == nil || !untrusted || r.m.uncounted(rs.origin) {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, forkTimeout)
		err := r.repair(rctx, rs, *c)
		cancel()
		if ctx.Err() != nil {
			return
		}
		result := "repaired"
		if err != nil {
			result = "failed"
			r.m.log.Warn("replica not repaired; tried again with the member's next checkpoint", "member", rs.origin, "round", c.cp.Round, "err", err)
		} else {
			r.m.log.Info("replica repaired from its origin", "member", rs.origin, "round", c.cp.Round, "size", c.cp.Size)
		}
		r.m.metrics.repairs.WithLabelValues(rs.origin, result).Inc()
	}
}

// repair does one repair of rs with checkpoint c (see above).
func (r *replicator) repair(ctx context.Context, rs *replicaState, c heldCheckpoint) error {
	if c.cp.Size > maxForkLeaves {
		return fmt.Errorf("checkpoint of %d records, over the %d a repair holds in memory", c.cp.Size, maxForkLeaves)
	}
	rs.pullMu.Lock()
	defer rs.pullMu.Unlock()
	leaves, err := r.fetchLeafHashes(ctx, rs, c.cp.Size)
	if err != nil {
		return err
	}
	rs.mu.Lock()
	checks := append([]heldCheckpoint{c}, rs.verified...)
	rs.mu.Unlock()
	for _, hc := range checks {
		if hc.cp.Size > c.cp.Size {
			continue
		}
		root, err := merkle.LeafRoot(leaves, hc.cp.Size)
		if err != nil {
			return err
		}
		if !bytes.Equal(root, hc.cp.Root) {
			return fmt.Errorf("the origin's records do not reproduce its checkpoint of round %d (size %d): not the replica's fault", hc.cp.Round, hc.cp.Size)
		}
	}
	keep, err := r.agreeing(ctx, rs, leaves)
	if err != nil {
		return err
	}
	if err := rs.rep.Truncate(ctx, keep, func(txn *badger.Txn) error { return rs.tree.TruncateTxn(txn, keep) }); err != nil {
		return err
	}
	if reset := r.m.cfg.ReplicaReset; reset != nil {
		if err := reset(ctx, rs.origin); err != nil {
			return fmt.Errorf("rebuilding the state derived from the replica: %w", err)
		}
	}
	rs.mu.Lock()
	rs.untrusted, rs.verified, rs.pending, rs.suspect = "", nil, []heldCheckpoint{c}, nil
	rs.target = max(rs.target, c.cp.Size)
	rs.mu.Unlock()
	if err := r.pullLocked(ctx, rs, rs.id); err != nil {
		return fmt.Errorf("refetching from record %d: %w", keep, err)
	}
	if rs.verifiedSize() < c.cp.Size {
		return errors.New("the refetched records do not verify the checkpoint")
	}
	return nil
}

// agreeing returns how many of the replica's first records agree with the
// origin's leaf hashes (at most len(leaves)).
func (r *replicator) agreeing(ctx context.Context, rs *replicaState, leaves [][]byte) (uint64, error) {
	end := min(rs.rep.Size(), uint64(len(leaves)))
	for from := uint64(0); from < end; {
		page, err := rs.rep.Range(ctx, log.Constraints{From: from, MaxEntries: int(min(end-from, log.MaxPageEntries))})
		if err != nil {
			return 0, err
		}
		if len(page.Records) == 0 {
			return from, nil
		}
		for i := range page.Records {
			if !bytes.Equal(rfc6962.DefaultHasher.HashLeaf(page.Records[i].MarshalLeaf()), leaves[from]) {
				return from, nil
			}
			from++
			if from == end {
				break
			}
		}
	}
	return end, nil
}

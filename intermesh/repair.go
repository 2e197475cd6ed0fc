package intermesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

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
//  1. checks c against every checkpoint of the origin verified here (see
//     below), then fetches the origin's first c.Size records from the
//     origin over Transfer (as a fork investigation does, at most
//     maxForkLeaves) and checks that they reproduce c's root, and the root
//     of every verified checkpoint of at most c.Size records: the origin
//     serves one history, the one it signed (if not, the origin is the
//     problem: the fork investigator looks for evidence, and the replica
//     stays untrusted);
//  2. finds the first record the replica holds that differs from the
//     origin's, and cuts the replica (records, head and Merkle tree, in one
//     transaction: log.Replica.Truncate) back to it, or to c.Size;
//  3. rebuilds what the node derived from the replica (Config.ReplicaReset:
//     the portal's replicated state);
//  4. trusts the replica again, with c pending and the checkpoints verified
//     before kept, and fetches the rest from the origin, which verifies c.
//
// Repair never rolls back: a replica's verified size never decreases. Its
// first records up to the largest checkpoint verified here reproduced a
// root the origin signed, so a repair never cuts below it, and a checkpoint
// c smaller than it repairs nothing. If c and a verified checkpoint cannot
// both be honest (they conflict on their face: one round, a tree that
// shrank, two roots at one size; or c is smaller and the replica's tree,
// which reproduces the verified one, does not have c's root at c's size),
// the origin forked: the repairer records the evidence (both checkpoints
// are the origin's signed word, with the replica's root at c's size and a
// consistency proof; see VerifyEvidence), which uncounts the origin, and
// the replica keeps what it verified, untrusted.
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
		switch {
		case errors.Is(err, errOriginForked):
			result = "failed" // said by refuseFork; the origin is not repaired again
		case err != nil:
			result = "failed"
			r.m.log.Warn("replica not repaired; tried again with the member's next checkpoint", "member", rs.origin, "round", c.cp.Round, "err", err)
		default:
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
	verified := rs.verifiedCheckpoints()
	floor := largestSize(verified)
	if err := r.checkFork(ctx, rs, c, verified); err != nil {
		return err
	}
	if c.cp.Size < floor {
		return fmt.Errorf("checkpoint of round %d has %d records, fewer than the %d verified here: it cannot repair them", c.cp.Round, c.cp.Size, floor)
	}
	leaves, err := r.servedLeaves(ctx, rs, append([]heldCheckpoint{c}, verified...), c.cp.Size)
	if err != nil {
		return err
	}
	keep, err := r.agreeing(ctx, rs, leaves)
	if err != nil {
		return err
	}
	if keep < floor {
		return fmt.Errorf("the origin's record %d differs from the one verified here, under the same roots", keep)
	}
	if err := r.cutBack(ctx, rs, keep); err != nil {
		return err
	}
	rs.trustAgain(c)
	if err := r.pullLocked(ctx, rs, rs.id); err != nil {
		return fmt.Errorf("refetching from record %d: %w", keep, err)
	}
	if rs.verifiedSize() < c.cp.Size {
		return errors.New("the refetched records do not verify the checkpoint")
	}
	return nil
}

// servedLeaves returns the leaf hashes of the first size records of rs's
// origin, fetched from the origin, after checking that they reproduce the
// root of every one of checks of at most size records. If not, the origin
// does not serve what it signed, or forked: that is the fork
// investigator's to prove (with a checkpoint larger than every verified
// one), not the replica's fault.
func (r *replicator) servedLeaves(ctx context.Context, rs *replicaState, checks []heldCheckpoint, size uint64) ([][]byte, error) {
	leaves, err := r.fetchLeafHashes(ctx, rs, size)
	if err != nil {
		return nil, err
	}
	for _, hc := range checks {
		if hc.cp.Size > size {
			continue
		}
		root, err := merkle.LeafRoot(leaves, hc.cp.Size)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(root, hc.cp.Root) {
			return nil, fmt.Errorf("the origin's records do not reproduce its checkpoint of round %d (size %d): not the replica's fault", hc.cp.Round, hc.cp.Size)
		}
	}
	return leaves, nil
}

// cutBack cuts rs's replica (records, head and Merkle tree) back to keep
// records, and rebuilds what the node derived from it.
func (r *replicator) cutBack(ctx context.Context, rs *replicaState, keep uint64) error {
	var notLowered *mapNotLowered
	if err := rs.cutBack(ctx, keep); errors.As(err, &notLowered) {
		r.m.log.Warn("replica's map not lowered; cleared when next needed", "member", rs.origin, "err", err)
	} else if err != nil {
		return err
	}
	if reset := r.m.cfg.ReplicaReset; reset != nil {
		if err := reset(ctx, rs.origin); err != nil {
			return fmt.Errorf("rebuilding the state derived from the replica: %w", err)
		}
	}
	return nil
}

// trustAgain trusts rs's replica again after a cut-back, with c pending
// unless already verified; the checkpoints verified before are kept.
func (rs *replicaState) trustAgain(c heldCheckpoint) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.untrusted, rs.pending, rs.suspect = "", []heldCheckpoint{c}, nil
	for _, v := range rs.verified {
		if v.hash == c.hash {
			rs.pending = nil
		}
	}
	rs.target = max(rs.target, c.cp.Size)
}

// verifiedCheckpoints returns a copy of the checkpoints verified here.
func (rs *replicaState) verifiedCheckpoints() []heldCheckpoint {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return slices.Clone(rs.verified)
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

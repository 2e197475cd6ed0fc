package intermesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
)

// errOriginForked marks a repair abandoned because the checkpoint it was to
// repair to and a checkpoint the replica verified cannot both be honest:
// the evidence is recorded, and the replica keeps what it verified.
var errOriginForked = errors.New("intermesh: the origin signed two inconsistent checkpoints")

// provingTree is what a repair asks of the replica's Merkle tree
// (merkle.Tree) to prove a fork.
type provingTree interface {
	Root(size uint64) ([]byte, error)
	ConsistencyProof(size1, size2 uint64) ([][]byte, error)
}

// largestSize is the size of the largest of cps (0 if none).
func largestSize(cps []heldCheckpoint) uint64 {
	if i := largestIndex(cps); i >= 0 {
		return cps[i].cp.Size
	}
	return 0
}

// largestIndex is the index in cps (in round order) of the largest
// checkpoint, the latest of the largest ones; -1 if cps is empty.
func largestIndex(cps []heldCheckpoint) int {
	best := -1
	for i, hc := range cps {
		if best < 0 || hc.cp.Size >= cps[best].cp.Size {
			best = i
		}
	}
	return best
}

// forkWith looks, among verified, for a checkpoint that cannot be honest
// along with c: one that conflicts with c on its face (facialFork), or, of
// the two, the larger one is verified, within the first trusted leaves of
// tree (the replica's tree up to its verified size, which reproduces every
// verified checkpoint), and tree's root at the smaller one's size is not
// the smaller one's. It returns the evidence, unverified, if it finds one.
func forkWith(c heldCheckpoint, verified []heldCheckpoint, tree provingTree, trusted uint64) (Evidence, bool, error) {
	for _, v := range verified {
		if v.hash == c.hash {
			continue
		}
		if why := facialFork(v, c); why != "" {
			return Evidence{Origin: c.cp.Origin, Reason: why, Notes: [2][]byte{v.note, c.note}}, true, nil
		}
		if c.cp.Size == 0 || c.cp.Size >= v.cp.Size || v.cp.Size > trusted {
			continue
		}
		root1, err := tree.Root(c.cp.Size)
		if err != nil {
			return Evidence{}, false, fmt.Errorf("the replica's root at %d: %w", c.cp.Size, err)
		}
		if bytes.Equal(root1, c.cp.Root) {
			continue
		}
		p, err := tree.ConsistencyProof(c.cp.Size, v.cp.Size)
		if err != nil {
			return Evidence{}, false, fmt.Errorf("the replica's consistency proof from %d to %d: %w", c.cp.Size, v.cp.Size, err)
		}
		return Evidence{Origin: c.cp.Origin, Notes: [2][]byte{c.note, v.note}, Root1: root1, Proof: p}, true, nil
	}
	return Evidence{}, false, nil
}

// facialFork says why a and b, two different checkpoints of one origin,
// cannot both be honest by their rounds, sizes and roots alone (one round,
// a tree that shrank, two roots at one size; conflict), or returns "". The
// prev chain of consecutive rounds is left to the round loop.
func facialFork(a, b heldCheckpoint) string {
	if a.cp.Round > b.cp.Round {
		a, b = b, a
	}
	shrank := b.cp.Size < a.cp.Size
	twoRoots := a.cp.Size == b.cp.Size && !bytes.Equal(a.cp.Root, b.cp.Root)
	if a.cp.Round == b.cp.Round || shrank || twoRoots {
		return conflict(a, b)
	}
	return ""
}

// refuseFork records evidence e that rs's origin forked (found while
// repairing its replica), and returns errOriginForked, or why e could not
// be recorded.
func (r *replicator) refuseFork(ctx context.Context, rs *replicaState, e Evidence) error {
	why, err := verifyEvidence(e, r.m.verifiers, r.m.cfg.MapRule)
	if err != nil {
		return fmt.Errorf("evidence of a fork does not verify: %w", err)
	}
	e.Reason = why
	if err := r.m.do(ctx, func(st *state) { st.foundEvidence(e) }); err != nil {
		return fmt.Errorf("recording evidence of a fork: %w", err)
	}
	r.m.log.Warn("the checkpoint a replica was to be repaired to conflicts with one it verified; evidence recorded, the replica kept", "member", rs.origin, "reason", why)
	return fmt.Errorf("%w: %s", errOriginForked, why)
}

// checkFork records evidence, and returns errOriginForked, if c and one of
// verified cannot both be honest (forkWith, with the replica's tree trusted
// up to the largest verified size).
func (r *replicator) checkFork(ctx context.Context, rs *replicaState, c heldCheckpoint, verified []heldCheckpoint) error {
	e, forked, err := forkWith(c, verified, rs.tree, largestSize(verified))
	if err != nil {
		return err
	}
	if forked {
		return r.refuseFork(ctx, rs, e)
	}
	return nil
}

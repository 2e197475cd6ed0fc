package intermesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/intermesh/intermesh/merkle"
)

// Fork investigation parameters.
const (
	// maxForkLeaves bounds the log fetched into memory to look for
	// consistency evidence (32 bytes and a slice header per leaf).
	maxForkLeaves = 4 << 20
	// forkTimeout bounds one investigation.
	forkTimeout = 2 * time.Minute
	// maxExamined bounds the checkpoints an investigator remembers having
	// settled; past it, it forgets them all.
	maxExamined = 1024
)

// errForkInconclusive marks an investigation that could not finish (the
// origin unreachable, a page that failed): it is tried again with the
// origin's next checkpoint.
var errForkInconclusive = errors.New("intermesh: fork investigation inconclusive")

// suspectLocked remembers hc, a checkpoint of rs's origin that its replica
// does not reproduce (or that came after the replica stopped being
// trusted), for the investigator, and wakes it; rs.mu held. Only a
// checkpoint larger than every verified one can prove a fork with a
// consistency proof, and the latest such one is kept.
func (rs *replicaState) suspectLocked(hc heldCheckpoint) {
	if len(rs.verified) == 0 || hc.cp.Size <= largestSize(rs.verified) {
		return
	}
	if rs.suspect != nil && rs.suspect.cp.Round > hc.cp.Round {
		return
	}
	rs.suspect = &hc
	select {
	case rs.suspicious <- struct{}{}:
	default:
	}
}

// takeSuspect returns the checkpoint to investigate and the verified
// checkpoints of smaller trees, latest first.
func (rs *replicaState) takeSuspect() (heldCheckpoint, []heldCheckpoint, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.suspect == nil {
		return heldCheckpoint{}, nil, false
	}
	c2 := *rs.suspect
	rs.suspect = nil
	var earlier []heldCheckpoint
	for i := len(rs.verified) - 1; i >= 0; i-- {
		if s := rs.verified[i].cp.Size; s > 0 && s < c2.cp.Size {
			earlier = append(earlier, rs.verified[i])
		}
	}
	return c2, earlier, len(earlier) > 0
}

// investigateLoop is the fork investigator of one origin: whenever a
// checkpoint of the origin does not match its replica, it looks for
// consistency evidence (investigate), one investigation at a time, each
// within forkTimeout, until ctx ends.
func (r *replicator) investigateLoop(ctx context.Context, rs *replicaState) {
	examined := map[[32]byte]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-rs.suspicious:
		}
		c2, earlier, ok := rs.takeSuspect()
		if !ok || examined[c2.hash] || r.m.uncounted(rs.origin) {
			continue
		}
		ictx, cancel := context.WithTimeout(ctx, forkTimeout)
		result, err := r.investigate(ictx, rs, c2, earlier)
		cancel()
		if ctx.Err() != nil {
			return
		}
		r.m.metrics.forkChecks.WithLabelValues(result).Inc()
		if errors.Is(err, errForkInconclusive) {
			r.m.log.Warn("fork investigation did not finish; retried with the member's next checkpoint", "member", rs.origin, "round", c2.cp.Round, "err", err)
			continue
		}
		if err != nil {
			r.m.log.Warn("fork investigation found no evidence", "member", rs.origin, "round", c2.cp.Round, "result", result, "err", err)
		}
		if len(examined) >= maxExamined {
			clear(examined)
		}
		examined[c2.hash] = true
	}
}

// investigate fetches rs's origin's log as the origin serves it now, from
// the origin itself, up to c2.cp.Size, checks that its root is c2's, and
// looks for a verified earlier checkpoint c1 whose root that log does not
// have at c1's size. If it finds one, the consistency evidence (c1, c2, the
// log's root at c1's size and the consistency proof) is recorded, gossiped
// and appended as for any evidence. It returns what it concluded, for the
// metric: "evidence", "consistent" (the log extends every earlier
// checkpoint: the replica went wrong elsewhere), "misserved" (the origin
// does not serve what it signed), "too-large" or "failed".
func (r *replicator) investigate(ctx context.Context, rs *replicaState, c2 heldCheckpoint, earlier []heldCheckpoint) (string, error) {
	s2 := c2.cp.Size
	if s2 > maxForkLeaves {
		return "too-large", fmt.Errorf("checkpoint of round %d has %d records, over the %d an investigation holds in memory", c2.cp.Round, s2, maxForkLeaves)
	}
	leaves, err := r.fetchLeafHashes(ctx, rs, s2)
	if errors.Is(err, errForkInconclusive) {
		return "failed", err
	}
	if err != nil {
		return "misserved", err
	}
	root2, err := merkle.LeafRoot(leaves, s2)
	if err != nil {
		return "failed", err
	}
	if !bytes.Equal(root2, c2.cp.Root) {
		return "misserved", fmt.Errorf("the origin serves a log whose root at %d is %x, not the root %x it signed in round %d", s2, root2, c2.cp.Root, c2.cp.Round)
	}
	for _, c1 := range earlier {
		root1, err := merkle.LeafRoot(leaves, c1.cp.Size)
		if err != nil {
			return "failed", err
		}
		if bytes.Equal(root1, c1.cp.Root) {
			continue
		}
		p, err := merkle.LeafConsistencyProof(leaves, c1.cp.Size, s2)
		if err != nil {
			return "failed", err
		}
		e := Evidence{Origin: rs.origin, Notes: [2][]byte{c1.note, c2.note}, Root1: root1, Proof: p}
		if e.Reason, err = verifyEvidence(e, r.m.verifiers, r.m.cfg.MapRule); err != nil {
			return "failed", fmt.Errorf("consistency evidence does not verify: %w", err)
		}
		if err := r.m.do(ctx, func(st *state) { st.foundEvidence(e) }); err != nil {
			return "failed", fmt.Errorf("%w: recording evidence: %w", errForkInconclusive, err)
		}
		return "evidence", nil
	}
	return "consistent", fmt.Errorf("the origin's log of round %d extends its %d earlier checkpoints verified here", c2.cp.Round, len(earlier))
}

// fetchLeafHashes pages the first size records of rs's origin from the
// origin itself and returns their leaf hashes. Memory follows what arrives,
// not what the checkpoint claims: the slice starts at the size of the
// largest checkpoint of the origin verified here and grows with the
// records received (at most size, itself at most maxForkLeaves).
func (r *replicator) fetchLeafHashes(ctx context.Context, rs *replicaState, size uint64) ([][]byte, error) {
	leaves := make([][]byte, 0, min(size, rs.verifiedSize()))
	for from := uint64(0); from < size; {
		page, err := r.m.fetchPage(ctx, rs.id, rs.origin, from, pullPageEntries, pullPageBytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errForkInconclusive, err)
		}
		if page.size < size {
			return nil, fmt.Errorf("the origin serves %d records, fewer than the %d it signed", page.size, size)
		}
		if len(page.records) == 0 {
			return nil, fmt.Errorf("%w: an empty page at %d", errForkInconclusive, from)
		}
		for _, rec := range page.records[:min(uint64(len(page.records)), size-from)] {
			leaves = append(leaves, rfc6962.DefaultHasher.HashLeaf(rec.MarshalLeaf()))
		}
		from = uint64(len(leaves))
	}
	return leaves, nil
}

// verifiedSize is the size of the largest checkpoint verified here.
func (rs *replicaState) verifiedSize() uint64 {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return largestSize(rs.verified)
}

// foundEvidence records evidence this node found off the round loop (a
// fork investigation), unless its origin is already uncounted.
func (st *state) foundEvidence(e Evidence) {
	if os := st.origins[e.Origin]; os != nil && os.equivocated {
		return
	}
	st.recordEvidence(e, true)
}

// uncounted reports whether the node holds evidence against origin.
func (m *Mesh) uncounted(origin string) bool {
	for _, e := range m.snapshot().evidence {
		if e.Origin == origin {
			return true
		}
	}
	return false
}

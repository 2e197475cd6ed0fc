package intermesh

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/intermesh/intermesh/log"
)

// badRelayPause is how long a member that relayed records contradicting
// their origin's checkpoint is not asked for that origin's records again.
const badRelayPause = time.Minute

// errBadRelay reports a Transfer page of a member's records, served by
// another member, that does not reproduce a checkpoint of their origin.
var errBadRelay = errors.New("intermesh: relayed records contradict their origin's checkpoint")

// checkRelayed checks a page of rs's origin's records served by relay p
// (not the origin) before it is appended, so that a lying relay cannot make
// the replica untrusted: for every checkpoint of the origin waiting to be
// verified that the page reaches (from < size <= from+len(recs)), the
// replica's tree with the page's records from `from` on must have the
// checkpoint's root at its size (a dry run: merkle.Tree.ExtendedRoots). If
// not, the page is dropped, the relay is marked (logged, counted in
// intermesh_relay_pages_rejected_total, and not asked again for
// badRelayPause) and the error wraps errBadRelay, so that the records are
// fetched from another member.
func (r *replicator) checkRelayed(rs *replicaState, p peer.ID, from uint64, recs []log.Record) error {
	end := from + uint64(len(recs))
	rs.mu.Lock()
	var reached []heldCheckpoint
	for _, hc := range rs.pending {
		if hc.cp.Size > from && hc.cp.Size <= end {
			reached = append(reached, hc)
		}
	}
	rs.mu.Unlock()
	if len(reached) == 0 {
		return nil
	}
	hashes := make([][]byte, len(recs))
	for i := range recs {
		hashes[i] = rfc6962.DefaultHasher.HashLeaf(recs[i].MarshalLeaf())
	}
	sizes := make([]uint64, len(reached))
	for i, hc := range reached {
		sizes[i] = hc.cp.Size
	}
	roots, err := rs.tree.ExtendedRoots(from, hashes, sizes)
	if err != nil {
		return fmt.Errorf("intermesh: checking records of %q relayed by %s: %w", rs.origin, r.m.byPeer[p], err)
	}
	for i, hc := range reached {
		if bytes.Equal(roots[i], hc.cp.Root) {
			continue
		}
		relay := r.m.byPeer[p]
		r.badRelay(rs, p)
		r.m.log.Warn("a member relayed records that contradict their origin's checkpoint; page dropped", "member", rs.origin, "relay", relay, "round", hc.cp.Round, "size", hc.cp.Size)
		return fmt.Errorf("%w: %s relayed records of %q from %d whose root at %d is %x, not the root %x of round %d",
			errBadRelay, relay, rs.origin, from, hc.cp.Size, roots[i], hc.cp.Root, hc.cp.Round)
	}
	return nil
}

// badRelay pauses relay p for rs's origin's records, counts it and
// penalizes its gossip score. A page is dropped before anything of it is
// appended, so the origin is never blamed for it.
func (r *replicator) badRelay(rs *replicaState, p peer.ID) {
	rs.mu.Lock()
	if rs.badRelays == nil {
		rs.badRelays = map[peer.ID]time.Time{}
	}
	rs.badRelays[p] = time.Now().Add(badRelayPause)
	rs.mu.Unlock()
	r.m.metrics.badRelays.WithLabelValues(r.m.byPeer[p]).Inc()
	r.m.penalize(p, penaltyBadRelay)
}

// relayPaused reports whether p relayed bad records of rs's origin lately.
func (rs *replicaState) relayPaused(p peer.ID) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	until, ok := rs.badRelays[p]
	if ok && time.Now().After(until) {
		delete(rs.badRelays, p)
		return false
	}
	return ok
}

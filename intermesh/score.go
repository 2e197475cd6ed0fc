package intermesh

import (
	"math"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Application-specific peer scoring. Gossipsub already penalizes a peer
// whose messages a validator rejects (InvalidMessageDeliveries). Messages
// that are valid but useless cost the receiver too (a signature check, a
// trip to the round loop), so the Mesh adds its own penalty, which
// gossipsub adds to the peer's score (AppSpecificScore, weight 1):
//
//	penaltyUseless   a vote that brings no new counted signature (a repeat,
//	                 a signer already uncounted, or one past its
//	                 maxTextsPerSigner texts of the round)
//	penaltyBadRelay  a Transfer page relayed by a member that contradicts a
//	                 checkpoint of the records' origin, or a chain of
//	                 federation updates a member serves with an entry that
//	                 does not verify (PenalizeBadFederationChain)
//
// A peer's penalty halves every penaltyHalfLife, so an honest member that
// once forwards a message that has become useless is soon forgiven, while a
// member that keeps sending them falls below the graylist threshold
// (scoreThresholds: -400, after about 40 useless messages within a few
// seconds, or 4 lying pages) and gossipsub ignores everything it sends until
// its score recovers. The scores are exported as intermesh_peer_score and
// intermesh_peers_graylisted (at each inspection), a member whose penalty
// alone crosses the threshold is counted in intermesh_graylistings_total
// the moment it does, and both are logged.
// Messages held because their round has not closed (hold.go) cost nothing:
// an honest member with a fast clock sends them.
const (
	penaltyUseless  = 10
	penaltyBadRelay = 100
	penaltyHalfLife = 10 * time.Second
	scoreInspect    = time.Second // how often scores are exported
)

// penalties are the application-specific penalties of the members. Safe for
// concurrent use; its size is bounded by the federation (only members are
// penalized: only members can connect).
type penalties struct {
	mu sync.Mutex
	by map[peer.ID]*penalty
}

type penalty struct {
	value float64
	at    time.Time
}

// add adds v to p's penalty and returns its penalty before and after.
func (ps *penalties) add(p peer.ID, v float64) (before, after float64) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.by == nil {
		ps.by = map[peer.ID]*penalty{}
	}
	pe := ps.by[p]
	if pe == nil {
		pe = &penalty{}
		ps.by[p] = pe
	}
	now := time.Now()
	before = pe.decayed(now)
	pe.value = before + v
	pe.at = now
	return before, pe.value
}

// of returns p's penalty now.
func (ps *penalties) of(p peer.ID) float64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if pe := ps.by[p]; pe != nil {
		return pe.decayed(time.Now())
	}
	return 0
}

func (pe *penalty) decayed(now time.Time) float64 {
	return pe.value * math.Exp2(-now.Sub(pe.at).Seconds()/penaltyHalfLife.Seconds())
}

// penalize charges the member behind peer p for a costly message.
func (m *Mesh) penalize(p peer.ID, v float64) {
	if _, ok := m.byPeer[p]; !ok || p == m.self.id {
		return
	}
	before, after := m.penalties.add(p, v)
	o := m.byPeer[p]
	m.metrics.penalties.WithLabelValues(o).Add(v)
	if gray := -scoreThresholds().GraylistThreshold; before <= gray && after > gray {
		m.metrics.graylistings.WithLabelValues(o).Inc()
		m.log.Warn("member's penalties alone put it below the graylist threshold: gossipsub ignores its gossip until they decay", "member", o, "penalty", after)
	}
}

// PenalizeBadFederationChain charges member, as for a lying Transfer page,
// for serving a chain of federation updates (GET /federation/updates) with
// an entry that does not verify. A non-member is ignored.
func (m *Mesh) PenalizeBadFederationChain(member string) {
	if mb, ok := m.members[member]; ok {
		m.penalize(mb.id, penaltyBadRelay)
	}
}

// appScore is gossipsub's AppSpecificScore: very low for a non-member (the
// gater keeps them out anyway), minus its penalty for a member.
func (m *Mesh) appScore(p peer.ID) float64 {
	if _, ok := m.byPeer[p]; !ok {
		return -1000
	}
	return -m.penalties.of(p)
}

// inspectScores exports the peers' scores and logs members that cross the
// graylist threshold. It runs on a pubsub goroutine every scoreInspect.
func (m *Mesh) inspectScores(scores map[peer.ID]float64) {
	gray := 0
	for p, s := range scores {
		o, ok := m.byPeer[p]
		if !ok {
			continue
		}
		m.metrics.peerScore.WithLabelValues(o).Set(s)
		now := s < scoreThresholds().GraylistThreshold
		if now {
			gray++
		}
		m.grayMu.Lock()
		was := m.graylisted[p]
		if now != was {
			if m.graylisted == nil {
				m.graylisted = map[peer.ID]bool{}
			}
			m.graylisted[p] = now
		}
		m.grayMu.Unlock()
		switch {
		case now && !was:
			m.log.Warn("member graylisted: its gossip is ignored until its score recovers", "member", o, "score", s)
		case !now && was:
			m.log.Info("member no longer graylisted", "member", o, "score", s)
		}
	}
	m.metrics.graylisted.Set(float64(gray))
}

// Graylisted reports whether gossipsub ignores member's gossip now (its
// score was below the graylist threshold at the last inspection).
func (m *Mesh) Graylisted(member string) bool {
	mb, ok := m.members[member]
	if !ok {
		return false
	}
	m.grayMu.Lock()
	defer m.grayMu.Unlock()
	return m.graylisted[mb.id]
}

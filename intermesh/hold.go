package intermesh

import (
	"time"
)

// Rounds are anchored to the wall clock: round r closes at (r+1)·period on
// the round clock (Config.Now), the same instant on every member, and every
// deadline of round r counts from that close. A checkpoint or vote of round
// r that arrives before its close less Config.ClockSkew is early: while the
// round clock is still in round r it is held (see earlyRound for the bound)
// and handed to the round loop once the round closes; a message of a round
// that has not even begun is ignored. Neither creates a round, a ballot, an
// outcome or a no-quorum record before the round closes.

// earlyRound holds the early messages of one round that has begun but not
// closed. Its size is bounded by the federation, not by the senders: at
// most maxEarlyPerOrigin checkpoints per member (two, so that a member that
// signs two early checkpoints is still caught equivocating) and one vote
// per first signer (the latest replaces the one held).
type earlyRound struct {
	cps   map[string][]heldCheckpoint // by origin
	votes map[string]vote             // by the vote's first signer
}

// maxEarlyPerOrigin bounds the early checkpoints held per member and round.
const maxEarlyPerOrigin = 2

// closeOf returns the scheduled close of round r on the round clock.
func (m *Mesh) closeOf(r uint64) time.Time {
	return time.Unix(0, int64(r+1)*int64(m.period))
}

// closed reports whether round r has closed at now, within the clock-skew
// allowance.
func (m *Mesh) closed(r uint64, now time.Time) bool {
	return !now.Before(m.closeOf(r).Add(-m.cfg.ClockSkew))
}

// isEarly decides about a message of round r: closed rounds are not early; a
// round that has begun is held (hold true); a later one is refused.
func (st *state) isEarly(r uint64) (early, hold bool) {
	now := st.m.cfg.Now()
	if st.m.closed(r, now) {
		return false, false
	}
	return true, r <= st.m.currentRound()
}

// earlyRoundOf returns the holding of round r, creating it.
func (st *state) earlyRoundOf(r uint64) *earlyRound {
	er := st.early[r]
	if er == nil {
		er = &earlyRound{cps: map[string][]heldCheckpoint{}, votes: map[string]vote{}}
		st.early[r] = er
	}
	return er
}

// holdCheckpoint holds or refuses hc if its round has not closed, and says
// whether it did.
func (st *state) holdCheckpoint(hc heldCheckpoint) (verdict, bool) {
	r := hc.cp.Round
	early, hold := st.isEarly(r)
	if !early {
		return verdict{}, false
	}
	st.m.metrics.early.WithLabelValues(topicCheckpoint, earlyOutcome(hold)).Inc()
	if !hold {
		return ignored("checkpoint of %q for round %d, which has not begun", hc.cp.Origin, r), true
	}
	er := st.earlyRoundOf(r)
	held := er.cps[hc.cp.Origin]
	for _, h := range held {
		if h.hash == hc.hash {
			return ignored("duplicate early checkpoint of %q for round %d", hc.cp.Origin, r), true
		}
	}
	if len(held) < maxEarlyPerOrigin {
		er.cps[hc.cp.Origin] = append(held, hc)
	}
	return ignored("checkpoint of %q for round %d, before the round closed: held until it does", hc.cp.Origin, r), true
}

// holdVote holds or refuses v if its round has not closed, and says whether
// it did.
func (st *state) holdVote(v vote) (verdict, bool) {
	early, hold := st.isEarly(v.round)
	if !early {
		return verdict{}, false
	}
	st.m.metrics.early.WithLabelValues(topicMaster, earlyOutcome(hold)).Inc()
	if !hold || len(v.sigs) == 0 {
		return ignored("vote for round %d, which has not begun", v.round), true
	}
	if os := st.origins[v.sigs[0].Name]; os != nil && os.equivocated {
		return useless("early vote of %q, who equivocated", v.sigs[0].Name), true
	}
	st.earlyRoundOf(v.round).votes[v.sigs[0].Name] = v
	return ignored("vote for round %d, before the round closed: held until it does", v.round), true
}

func earlyOutcome(hold bool) string {
	if hold {
		return "held"
	}
	return "refused"
}

// releaseEarly hands the held messages of every round that has closed to
// the round loop's checks, and returns when the next held round closes
// (the zero time if none is held).
func (st *state) releaseEarly(now time.Time) time.Time {
	var next time.Time
	for r, er := range st.early {
		if !st.m.closed(r, now) {
			at := st.m.closeOf(r).Add(-st.m.cfg.ClockSkew)
			if next.IsZero() || at.Before(next) {
				next = at
			}
			continue
		}
		delete(st.early, r)
		for _, hcs := range er.cps {
			for _, hc := range hcs {
				st.addCheckpoint(hc)
			}
		}
		for _, v := range er.votes {
			st.addVote(v)
		}
	}
	return next
}

// earlyHeld counts the messages held, for tests of the bound.
func (st *state) earlyHeld() (cps, votes int) {
	for _, er := range st.early {
		for _, h := range er.cps {
			cps += len(h)
		}
		votes += len(er.votes)
	}
	return cps, votes
}

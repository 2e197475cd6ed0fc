package intermesh

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// state is the round state, owned by the round loop goroutine.
type state struct {
	m        *Mesh
	origins  map[string]*originState
	rounds   map[uint64]*roundState
	floor    uint64 // rounds below were dropped; their messages are ignored
	evidence []Evidence
	certs    map[uint64]Certificate // recent certificates
	changed  bool                   // the published view is stale
	early    map[uint64]*earlyRound // messages of rounds not closed yet (hold.go)
	ctx      context.Context        // the round loop's; ends at shutdown
	unsent   []storeJob             // jobs queued after shutdown began (store.go)
}

// originState is what the node holds of one member's checkpoints.
type originState struct {
	notes       map[uint64]heldCheckpoint // recent rounds, and the latest
	counted     map[uint64][32]byte       // of notes, the hashes counted in their rounds (verified, with replication)
	latest      uint64                    // round of the latest checkpoint, if any
	equivocated bool                      // its checkpoints and votes no longer count
}

// roundState is one round in progress (or recently ended).
type roundState struct {
	round     uint64
	close     time.Time                 // the round's scheduled close, (round+1)·period, on the round clock
	graceAt   time.Time                 // when a quorum of checkpoints was first held, plus QuorumGrace
	held      map[string]heldCheckpoint // counted checkpoints, by origin
	verifying map[string]bool           // members' checkpoints accepted but not verified by their replica yet
	dirty     bool                      // held changed since candidate was computed
	candidate *ballot                   // the vote over all of held
	ballots   map[string]*ballot        // by vote text; each holds at least one counted signature
	texts     map[string]int            // vote texts each member signed (maxTextsPerSigner)
	signed    map[string]bool           // texts this node signed
	own       *ballot                   // the text this node signed last
	votedAt   time.Time                 // when it signed it (re-votes wait QuorumGrace after it)
	cert      *Certificate
	certText  string
	certSigs  int
	committed bool
	saved     bool // cert persisted as it is now
	// mapRefused are the checkpoints this node refused for their map line
	// (claim.go); claims the claims taken, by claimant and checkpoint,
	// and claimsBy how many of each claimant.
	mapRefused map[[32]byte]bool
	claims     map[string]bool
	claimsBy   map[string]int
}

func newState(m *Mesh) *state {
	return &state{
		m:       m,
		origins: map[string]*originState{},
		rounds:  map[uint64]*roundState{},
		certs:   map[uint64]Certificate{},
		early:   map[uint64]*earlyRound{},
		ctx:     context.Background(),
	}
}

func (st *state) origin(o string) *originState {
	os := st.origins[o]
	if os == nil {
		os = &originState{notes: map[uint64]heldCheckpoint{}, counted: map[uint64][32]byte{}}
		st.origins[o] = os
	}
	return os
}

// round returns the state of round r, creating it if new; nil if the round
// was already dropped. Callers create rounds only for messages of rounds
// that have closed (closed), so a round's deadlines, which count from its
// scheduled close, never depend on when or from whom a message came.
func (st *state) round(r uint64) *roundState {
	if rs := st.rounds[r]; rs != nil {
		return rs
	}
	if r < st.floor {
		return nil
	}
	rs := &roundState{
		round:     r,
		close:     st.m.closeOf(r),
		held:      map[string]heldCheckpoint{},
		verifying: map[string]bool{},
		ballots:   map[string]*ballot{},
		texts:     map[string]int{},
		signed:    map[string]bool{},

		mapRefused: map[[32]byte]bool{},
		claims:     map[string]bool{},
		claimsBy:   map[string]int{},
	}
	st.rounds[r] = rs
	return rs
}

// roundLoop is the goroutine that owns the round state: it runs requests
// from validators and public methods, and the round deadlines.
func (m *Mesh) roundLoop(ctx context.Context) {
	defer close(m.loopDone)
	st := m.state
	st.ctx = ctx
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case req := <-m.inbox:
			req(st)
		case <-t.C:
		}
		now := m.cfg.Now()
		next := st.settle(ctx, now)
		t.Reset(next.Sub(now))
	}
}

// addCheckpoint is the stateful check of a verified checkpoint, and records
// it if it is new and consistent with the origin's other checkpoints.
func (st *state) addCheckpoint(hc heldCheckpoint) verdict {
	o, r := hc.cp.Origin, hc.cp.Round
	if os := st.origins[o]; os != nil && os.equivocated {
		return ignored("%q equivocated; its checkpoints no longer count", o)
	}
	if o != st.m.self.origin {
		if v, early := st.holdCheckpoint(hc); early {
			return v
		}
	}
	os := st.origin(o)
	if old, ok := os.notes[r]; ok {
		if old.hash == hc.hash {
			return ignored("duplicate checkpoint of %q for round %d", o, r)
		}
		st.equivocate(old, hc, fmt.Sprintf("two different checkpoints for round %d", r))
		return rejected("equivocation: second checkpoint of %q for round %d", o, r)
	}
	var lo, hi *heldCheckpoint
	for rr, h := range os.notes {
		if rr < r && (lo == nil || rr > lo.cp.Round) {
			lo = &h
		}
		if rr > r && (hi == nil || rr < hi.cp.Round) {
			hi = &h
		}
	}
	for _, pair := range [][2]*heldCheckpoint{{lo, &hc}, {&hc, hi}} {
		if pair[0] == nil || pair[1] == nil {
			continue
		}
		if why := inconsistency(*pair[0], *pair[1]); why != "" {
			st.equivocate(*pair[0], *pair[1], why)
			return rejected("inconsistent checkpoint of %q for round %d: %s", o, r, why)
		}
	}
	if len(os.notes) == 0 || r > os.latest {
		os.latest = r
	}
	os.notes[r] = hc
	st.changed = true
	if st.m.repl != nil && o != st.m.self.origin {
		st.m.repl.offerCheckpoint(hc) // counted once the replica verifies it (countVerified)
		if rs := st.round(r); rs != nil {
			rs.verifying[o] = true
		}
		return accepted
	}
	st.count(os, hc)
	return accepted
}

// count counts hc, a checkpoint of os, in its round: the vote rule and the
// certificates use it from now on.
func (st *state) count(os *originState, hc heldCheckpoint) {
	os.counted[hc.cp.Round] = hc.hash
	rs := st.round(hc.cp.Round)
	if rs == nil {
		return
	}
	rs.held[hc.cp.Origin] = hc
	delete(rs.verifying, hc.cp.Origin)
	rs.dirty = true
	for _, b := range rs.ballots {
		if b.checkpoints == nil {
			st.checkCertificate(rs, b) // it may have waited for this note
		}
	}
}

// countVerified counts hc, a member's checkpoint whose records and roots
// (tree and map) the node's replica reproduces, if it is still the
// member's checkpoint of its round here and the member has not
// equivocated.
func (st *state) countVerified(hc heldCheckpoint) {
	os := st.origins[hc.cp.Origin]
	if os == nil || os.equivocated {
		return
	}
	if held, ok := os.notes[hc.cp.Round]; !ok || held.hash != hc.hash {
		return
	}
	if h, ok := os.counted[hc.cp.Round]; ok && h == hc.hash {
		return
	}
	st.count(os, hc)
}

// inconsistency says why checkpoint b (a later round) cannot follow a of the
// same origin in one append-only log, or returns "": a smaller size, two
// tree roots or two map lines at one size, or a prev line that skips the
// previous round's checkpoint. (A checkpoint without a map line, closed
// before the origin had a map, conflicts with none.) Growth is not proven
// here: record replication verifies roots by recomputing them.
func inconsistency(a, b heldCheckpoint) string {
	switch {
	case b.cp.Size < a.cp.Size:
		return fmt.Sprintf("tree shrank from %d (round %d) to %d (round %d)", a.cp.Size, a.cp.Round, b.cp.Size, b.cp.Round)
	case b.cp.Size == a.cp.Size && !bytes.Equal(a.cp.Root, b.cp.Root):
		return fmt.Sprintf("two roots at size %d (rounds %d and %d)", a.cp.Size, a.cp.Round, b.cp.Round)
	case b.cp.Size == a.cp.Size && len(a.cp.Map) > 0 && len(b.cp.Map) > 0 && !bytes.Equal(a.cp.Map, b.cp.Map):
		// The map is a function of the records: one log has one map per size.
		return fmt.Sprintf("two map roots at size %d (rounds %d and %d)", a.cp.Size, a.cp.Round, b.cp.Round)
	case b.cp.Round == a.cp.Round+1 && !bytes.Equal(b.cp.Prev, a.hash[:]):
		return fmt.Sprintf("prev of round %d is not the checkpoint of round %d", b.cp.Round, a.cp.Round)
	}
	return ""
}

// equivocate records evidence against an origin, gossips it and stops
// counting the origin.
func (st *state) equivocate(a, b heldCheckpoint, why string) {
	st.recordEvidence(Evidence{Origin: a.cp.Origin, Reason: why, Notes: [2][]byte{a.note, b.note}}, true)
}

// recordEvidence keeps verified evidence (persisted, and appended to the log
// as an Evidence record by the committer), stops counting its origin and,
// if this node found it, gossips it.
func (st *state) recordEvidence(ev Evidence, found bool) {
	o := ev.Origin
	st.evidence = append(st.evidence, ev)
	st.origin(o).equivocated = true
	for _, rs := range st.rounds {
		if _, ok := rs.held[o]; ok {
			delete(rs.held, o)
			rs.dirty = true
		}
	}
	st.changed = true
	st.m.metrics.equivocations.Inc()
	st.m.log.Warn("member equivocated; its checkpoints and votes no longer count", "member", o, "reason", ev.Reason, "found_here", found)
	st.queueJob(storeJob{evidence: &ev})
	if found {
		if data, err := json.Marshal(ev); err == nil {
			st.m.gossip(topicEvidence, data)
		}
	}
}

// addVote is the stateful part of a verified vote: it records the new
// member signatures, and certifies if they make a quorum and the node holds
// every note covered (else addCheckpoint certifies when the last arrives).
// A vote that brings no new counted signature (or whose signer already
// signed maxTextsPerSigner texts this round) changes nothing: no round, no
// ballot.
func (st *state) addVote(v vote) verdict {
	if v.round < st.floor {
		return ignored("vote for dropped round %d", v.round)
	}
	if vd, early := st.holdVote(v); early {
		return vd
	}
	rs := st.rounds[v.round]
	var fresh []note.Signature
	for _, s := range v.sigs {
		if os := st.origins[s.Name]; os != nil && os.equivocated {
			continue
		}
		if rs != nil {
			if b := rs.ballots[v.text]; b != nil {
				if _, ok := b.sigs[s.Name]; ok {
					continue
				}
			}
			if rs.texts[s.Name] >= maxTextsPerSigner(len(st.m.members)) {
				continue
			}
		}
		fresh = append(fresh, s)
	}
	if len(fresh) == 0 {
		return useless("vote for round %d brings no new counted signature", v.round)
	}
	rs = st.round(v.round)
	if rs == nil {
		return ignored("vote for dropped round %d", v.round)
	}
	b := rs.ballots[v.text]
	if b == nil {
		b = &ballot{text: v.text, body: v.voteBody, covers: v.covers, sigs: map[string]note.Signature{}}
		rs.ballots[v.text] = b
	}
	for _, s := range fresh {
		b.sigs[s.Name] = s
		rs.texts[s.Name]++
	}
	st.checkCertificate(rs, b)
	return accepted
}

// maxTextsPerSigner bounds the vote texts one member may sign in a round of
// a federation of n members: an honest member signs at most one text per
// checkpoint it adds (n), plus one after an equivocator's checkpoint is
// dropped. Signatures beyond it are not counted, so a member cannot grow a
// round's ballots without limit with valid votes over ever other subsets.
func maxTextsPerSigner(n int) int { return n + 1 }

// settle runs after every request and timer: it applies the vote rule and
// the deadlines to every round, drops old rounds, publishes the view and
// returns when it next needs to run.
func (st *state) settle(ctx context.Context, now time.Time) time.Time {
	m := st.m
	next := now.Add(m.period / 4)
	soonest := func(t time.Time) {
		if t.After(now) && t.Before(next) {
			next = t
		}
	}
	soonest(st.releaseEarly(now))
	for _, rs := range st.rounds {
		if rs.dirty {
			st.refreshCandidate(rs)
		}
		if len(rs.held) >= m.quorum && rs.graceAt.IsZero() {
			rs.graceAt = now.Add(m.cfg.QuorumGrace)
		}
		st.maybeVote(rs, now)
		st.maybeEndorse(rs, now)
		commitAt := rs.close.Add(m.cfg.CommitDeadline)
		if !rs.committed && !now.Before(commitAt) {
			st.commitNoQuorum(rs)
		}
		if rs.own == nil {
			soonest(rs.close.Add(m.cfg.VoteDeadline))
			if !rs.graceAt.IsZero() {
				soonest(rs.graceAt)
			}
		} else if c := rs.candidate; c != nil && !rs.signed[c.text] {
			soonest(rs.votedAt.Add(m.cfg.QuorumGrace)) // the coalesced re-vote
		}
		if !rs.committed {
			soonest(commitAt)
			soonest(rs.close.Add(m.cfg.VoteDeadline)) // endorsements (maybeEndorse)
		}
	}
	st.drop(m.currentRound())
	if st.changed {
		m.publishView(st)
		st.changed = false
	}
	return next
}

// refreshCandidate recomputes the vote over every checkpoint held.
func (st *state) refreshCandidate(rs *roundState) {
	rs.dirty = false
	rs.candidate = nil
	if len(rs.held) == 0 {
		return
	}
	origins := slices.Sorted(maps.Keys(rs.held))
	cps := make([]heldCheckpoint, len(origins))
	covers := make([]cover, len(origins))
	for i, o := range origins {
		cps[i] = rs.held[o]
		covers[i] = cover{origin: o, hash: cps[i].hash}
	}
	mh, err := masterHashOf(covers)
	if err != nil {
		st.m.log.Error("master hash", "round", rs.round, "err", err)
		return
	}
	body := voteBody{round: rs.round, count: len(cps), masterHash: mh}
	text := voteText(st.m.fed.Name, rs.round, len(cps), mh)
	rs.candidate = &ballot{text: text, body: body, covers: covers, checkpoints: cps, sigs: map[string]note.Signature{}}
}

// activeMembers is how many members still count (not equivocated).
func (st *state) activeMembers() int {
	n := len(st.m.members)
	for _, os := range st.origins {
		if os.equivocated {
			n--
		}
	}
	return n
}

// maybeVote applies the vote rule of the package comment: vote over all
// checkpoints held once they are every member's, or a quorum that another
// member already voted for, or a quorum held for QuorumGrace while no other
// checkpoint of the round awaits its replica's verification, or anything at
// the vote deadline; after voting, vote again over the grown set at most
// once per QuorumGrace (at once when it holds every member's checkpoint, or
// when another member voted over exactly that set).
func (st *state) maybeVote(rs *roundState, now time.Time) {
	c := rs.candidate
	if c == nil || rs.signed[c.text] || st.origin(st.m.self.origin).equivocated {
		return
	}
	if st.m.repl != nil && !st.m.repl.caughtUp() {
		return // a (re)started node catches up before it votes
	}
	n, q := len(c.checkpoints), st.m.quorum
	switch {
	case rs.own != nil:
		if n < st.activeMembers() && rs.ballots[c.text] == nil && now.Before(rs.votedAt.Add(st.m.cfg.QuorumGrace)) {
			return // coalesce the growth of the set into one re-vote
		}
	case n >= st.activeMembers():
	case n >= q && rs.ballots[c.text] != nil:
	case n >= q && !now.Before(rs.graceAt) && len(rs.verifying) == 0:
	case !now.Before(rs.close.Add(st.m.cfg.VoteDeadline)):
	default:
		return
	}
	rs.votedAt = now
	st.vote(rs, c)
}

// maybeEndorse applies the endorsement rule of the package comment: from
// the vote deadline on, while the round has no certificate, the node also
// signs any other member's text over at least a quorum of checkpoints that
// it counts every one of. With replication, members count a checkpoint only
// once their replica verified it, so a member whose replica lags votes
// over fewer checkpoints than the others; without this rule the round could
// end with the quorum split between the two sets.
func (st *state) maybeEndorse(rs *roundState, now time.Time) {
	m := st.m
	if rs.cert != nil || rs.committed || now.Before(rs.close.Add(m.cfg.VoteDeadline)) || st.origin(m.self.origin).equivocated {
		return
	}
	if m.repl != nil && !m.repl.caughtUp() {
		return
	}
	for _, text := range slices.Sorted(maps.Keys(rs.ballots)) {
		b := rs.ballots[text]
		if rs.signed[text] || len(b.covers) < m.quorum || st.coversEquivocator(b) || !b.resolve(st, rs) {
			continue
		}
		if len(rs.signed) >= maxTextsPerSigner(len(m.members)) {
			return
		}
		st.vote(rs, b)
		if rs.cert != nil {
			return
		}
	}
}

// coversEquivocator reports whether b covers a checkpoint of a member that
// equivocated.
func (st *state) coversEquivocator(b *ballot) bool {
	for _, c := range b.covers {
		if os := st.origins[c.origin]; os != nil && os.equivocated {
			return true
		}
	}
	return false
}

// vote signs text c, counts the signature and gossips the vote.
func (st *state) vote(rs *roundState, c *ballot) {
	m := st.m
	msg, err := note.Sign(&note.Note{Text: c.text}, m.signer)
	if err != nil {
		m.log.Error("sign vote", "round", rs.round, "err", err)
		return
	}
	n, err := note.Open(msg, m.verifiers)
	if err != nil || len(n.Sigs) != 1 {
		m.log.Error("own vote does not verify", "round", rs.round, "err", err)
		return
	}
	b := rs.ballots[c.text]
	if b == nil {
		b = c
		rs.ballots[c.text] = b
	}
	if b.checkpoints == nil {
		b.checkpoints = c.checkpoints // the same text covers the same notes
	}
	b.sigs[m.self.origin] = n.Sigs[0]
	rs.signed[c.text] = true
	rs.own = b
	data, err := b.wire([]string{m.self.origin})
	if err != nil {
		m.log.Error("encode vote", "round", rs.round, "err", err)
		return
	}
	m.gossip(topicMaster, data)
	st.checkCertificate(rs, b)
}

// checkCertificate makes b the round's certificate if a quorum of counted
// members signed it and it is better than the one held (more checkpoints,
// or more signatures on the same text), and commits the round's first one.
func (st *state) checkCertificate(rs *roundState, b *ballot) {
	m := st.m
	var signers []string
	for s := range b.sigs {
		if os := st.origins[s]; os == nil || !os.equivocated {
			signers = append(signers, s)
		}
	}
	if len(signers) < m.quorum {
		return
	}
	if rs.cert != nil && len(b.covers) <= len(rs.cert.Checkpoints) &&
		!(b.text == rs.certText && len(signers) > rs.certSigs) {
		return
	}
	if !b.resolve(st, rs) {
		return // certified once the node holds every note it covers
	}
	msg, err := b.signedNote(signers)
	if err != nil {
		m.log.Error("certificate note", "round", rs.round, "err", err)
		return
	}
	cert := Certificate{Round: rs.round, Note: msg, MasterHash: b.body.masterHash}
	for _, hc := range b.checkpoints {
		cert.Checkpoints = append(cert.Checkpoints, hc.note)
	}
	rs.cert, rs.certText, rs.certSigs, rs.saved = &cert, b.text, len(signers), false
	st.certs[rs.round] = cert
	st.changed = true
	if rs.committed {
		return
	}
	rs.committed, rs.saved = true, true
	m.metrics.rounds.Inc()
	m.metrics.quorum.WithLabelValues("formed").Inc()
	m.metrics.certLatency.Observe(max(0, m.cfg.Now().Sub(rs.close).Seconds()))
	m.log.Debug("master-hash certificate", "round", rs.round, "checkpoints", len(b.checkpoints), "signatures", len(signers))
	st.commit(rs, RoundResult{Round: rs.round, Outcome: OutcomeCertificate, Note: msg, Checkpoints: cert.Checkpoints}, &cert)
}

// commitNoQuorum ends a round without a certificate at its commit deadline.
func (st *state) commitNoQuorum(rs *roundState) {
	m := st.m
	rs.committed = true
	m.metrics.rounds.Inc()
	m.metrics.quorum.WithLabelValues("missed").Inc()
	res := RoundResult{Round: rs.round, Outcome: OutcomeNoQuorum}
	if rs.own != nil {
		msg, err := rs.own.signedNote([]string{m.self.origin})
		if err == nil {
			res.Note = msg
			for _, hc := range rs.own.checkpoints {
				res.Checkpoints = append(res.Checkpoints, hc.note)
			}
		}
	}
	m.log.Warn("no master-hash quorum", "round", rs.round, "checkpoints", len(rs.held), "quorum", m.quorum)
	st.commit(rs, res, nil)
}

// commit hands a round's result (and what must survive a restart) to the
// committer, after publishing the view, so that once the Commit hook has
// seen a certificate, Certificate returns it.
func (st *state) commit(rs *roundState, res RoundResult, cert *Certificate) {
	if st.changed {
		st.m.publishView(st)
		st.changed = false
	}
	latest := make(map[string][]byte, len(st.origins))
	for o, os := range st.origins {
		if hc, ok := os.notes[os.latest]; ok {
			latest[o] = hc.note
		}
	}
	st.queueJob(storeJob{
		result:   &res,
		cert:     cert,
		latest:   latest,
		deadline: time.Now().Add(rs.close.Add(st.m.period).Sub(st.m.cfg.Now())),
	})
}

// drop forgets rounds (and checkpoints) that left the round window, after
// saving a certificate that gained signatures since it was committed.
func (st *state) drop(cur uint64) {
	keep := st.m.cfg.RoundWindow + 2
	if cur < keep {
		return
	}
	horizon := cur - keep
	for r, rs := range st.rounds {
		if r >= horizon || !rs.committed {
			continue
		}
		if rs.cert != nil && !rs.saved {
			st.queueJob(storeJob{cert: rs.cert})
		}
		delete(st.rounds, r)
		st.floor = max(st.floor, r+1)
	}
	for _, os := range st.origins {
		for r := range os.notes {
			if r < horizon && r != os.latest {
				delete(os.notes, r)
			}
		}
		for r := range os.counted {
			if r < horizon {
				delete(os.counted, r)
			}
		}
	}
	for r := range st.certs {
		if r+recentCertificates < cur {
			delete(st.certs, r)
			st.changed = true
		}
	}
}

package node

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"sort"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/intermesh"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
)

// Status page horizons: the grid's rounds and the charts' time span, and
// the most points a chart gets.
const (
	gridRounds  = 30
	chartWindow = time.Hour
	chartPoints = 120
)

// FederationStatus implements portal.FederationView: the federation as this
// node sees it, for the status page and /status.json.
func (n *Node) FederationStatus(ctx context.Context) (*portal.FederationStatus, error) {
	im, fed := n.Mesh(), n.federation()
	if im == nil || fed == nil {
		return nil, nil
	}
	fs := &portal.FederationStatus{
		Federation:    fed.Name,
		Self:          n.cfg.Origin,
		Quorum:        fed.EffectiveQuorum(),
		PeriodSeconds: n.schedule.Period.Seconds(),
		Connected:     len(im.Peers()),
		Gossiping:     len(im.GossipPeers()),
	}
	for _, m := range fed.Members {
		fs.Members = append(fs.Members, m.Origin)
	}
	var err error
	if fs.Evidence, err = n.Evidence(ctx); err != nil {
		return nil, err
	}
	fs.Backdated = n.BackdatedUpdates()
	accused := evidenceRounds(fs.Evidence)

	closed := n.Epoch()
	if closed > 0 {
		closed-- // the round in progress has no checkpoint yet
	}
	first := uint64(0)
	if closed+1 > gridRounds {
		first = closed + 1 - gridRounds
	}
	var grid []uint64
	for r := first; r <= closed; r++ {
		grid = append(grid, r)
	}
	own, err := n.tree.CheckpointsAt(grid)
	if err != nil {
		return nil, err
	}
	_, chain := n.history.current()
	for i, r := range grid {
		rs := n.roundStatus(im, fed, r, own[i] != nil, fs.Members, accused)
		n.markRound(&rs, chain, closed, fs.Members)
		fs.Rounds = append(fs.Rounds, rs)
	}
	fs.Health = healthOf(fs.Rounds, fs.Members, n.schedule.Period)

	for _, st := range im.ReplicasNow() {
		fs.Replicas = append(fs.Replicas, replicaStatus(st, closed))
	}

	if cert, ok := im.LatestCertificate(); ok {
		cs := &portal.CertificateStatus{Round: cert.Round, MasterHash: base64.StdEncoding.EncodeToString(cert.MasterHash),
			Note: string(cert.Note), Checkpoints: len(cert.Checkpoints)}
		cs.Signers = n.certSigners.of(fed, cert.Note)
		fs.Certificate = cs
	}
	sort.Slice(fs.Replicas, func(i, j int) bool { return fs.Replicas[i].Origin < fs.Replicas[j].Origin })
	fs.Growth = n.growth(closed)
	return fs, nil
}

// replicaStatus is the status page's row of a replica, closed being the
// latest closed round.
func replicaStatus(st intermesh.ReplicaState, closed uint64) portal.ReplicaStatus {
	rs := portal.ReplicaStatus{Origin: st.Origin, Size: st.Size, Known: st.Known, VerifiedSize: st.VerifiedSize,
		Untrusted: st.Untrusted, Busy: st.Busy, MapMismatches: st.Map.Mismatches}
	if st.Known > st.Size {
		rs.LagRecords = st.Known - st.Size
	}
	if cp, err := merkle.ParseCheckpoint(noteBody(st.Verified)); err == nil && len(st.Verified) > 0 {
		rs.VerifiedRound = cp.Round
		if cp.Round <= closed {
			rs.LagRounds = closed - cp.Round
		}
	}
	if st.Map.Opened {
		rs.MapOpened, rs.MapSize, rs.MapRoot = true, st.Map.Size, base64.StdEncoding.EncodeToString(st.Map.Root)
	}
	return rs
}

// roundStatus is one column of the grid: what the node holds of round r for
// each member; closedOwn says whether the node closed its own checkpoint of r.
func (n *Node) roundStatus(im *intermesh.Mesh, fed *config.Federation, r uint64, closedOwn bool, members []string, accused map[string]uint64) portal.RoundStatus {
	rs := portal.RoundStatus{Round: r, Cells: make([]string, len(members))}
	cert, certified := im.Certificate(r)
	covered := map[string]bool{}
	if certified {
		rs.Signatures = n.certSigners.count(fed, cert.Note)
		for _, c := range cert.Checkpoints {
			if cp, err := merkle.ParseCheckpoint(noteBody(c)); err == nil {
				covered[cp.Origin] = true
			}
		}
	}
	for i, m := range members {
		switch since, ok := accused[m]; {
		case ok && r >= since:
			rs.Cells[i] = portal.CellEvidence
		case certified && covered[m]:
			rs.Cells[i] = portal.CellCertified
		case certified:
			rs.Cells[i] = portal.CellMissing
		case closedOwn:
			rs.Cells[i] = portal.CellNoQuorum
		default:
			rs.Cells[i] = portal.CellUnknown // this node was not running
		}
	}
	return rs
}

// markRound marks, in one column of the grid, the members not in force in
// its round (they joined later) and, if it is the latest closed round and
// this node has not committed it yet, the cells it has no outcome for.
func (n *Node) markRound(rs *portal.RoundStatus, chain []*config.FederationVersion, closed uint64, members []string) {
	v := config.InForce(chain, rs.Round)
	pending := rs.Round == closed && !n.masters.has(rs.Round)
	for i, m := range members {
		if _, ok := v.Member(m); !ok {
			rs.Cells[i] = portal.CellNotMember
		} else if pending && rs.Cells[i] == portal.CellNoQuorum {
			rs.Cells[i] = portal.CellPending
		}
	}
}

// healthOf judges the federation from the grid: its latest column with an
// outcome says healthy, degraded (and each missing member's first round of
// its latest run of misses) or no quorum (since the first round of the
// latest run of rounds without a certificate).
func healthOf(rounds []portal.RoundStatus, members []string, period time.Duration) portal.Health {
	start := func(r uint64) time.Time { return time.Unix(0, 0).Add(time.Duration(r) * period).UTC() }
	decided := func(rs portal.RoundStatus) (certified, ok bool) {
		for _, c := range rs.Cells {
			switch c {
			case portal.CellCertified, portal.CellMissing, portal.CellEvidence:
				return true, true
			case portal.CellNoQuorum:
				ok = true
			}
		}
		return false, ok
	}
	var cols []int // columns with an outcome, newest first
	for i := len(rounds) - 1; i >= 0; i-- {
		if _, ok := decided(rounds[i]); ok {
			cols = append(cols, i)
		}
	}
	if len(cols) == 0 {
		return portal.Health{State: portal.HealthUnknown}
	}
	latest := rounds[cols[0]]
	h := portal.Health{Round: latest.Round}
	if certified, _ := decided(latest); !certified {
		since := latest.Round
		for _, i := range cols {
			if c, _ := decided(rounds[i]); c {
				break
			}
			since = rounds[i].Round
		}
		t := start(since)
		h.State, h.Since = portal.HealthNoQuorum, &t
		return h
	}
	for m, origin := range members {
		if c := latest.Cells[m]; c != portal.CellMissing && c != portal.CellEvidence {
			continue
		}
		since := latest.Round
		for _, i := range cols {
			if c := rounds[i].Cells[m]; c != portal.CellMissing && c != portal.CellEvidence {
				break
			}
			since = rounds[i].Round
		}
		h.Missing = append(h.Missing, portal.MissingMember{Origin: origin, SinceRound: since, Since: start(since)})
	}
	h.State = portal.HealthHealthy
	if len(h.Missing) > 0 {
		h.State = portal.HealthDegraded
	}
	return h
}

// evidenceRounds maps each accused member to the round it contradicted
// itself in: the later round of the two notes of its evidence (the earliest
// such round if there are several pieces).
func evidenceRounds(es []portal.Evidence) map[string]uint64 {
	out := map[string]uint64{}
	for _, e := range es {
		since := uint64(0)
		for _, s := range e.Notes {
			if cp, err := merkle.ParseCheckpoint(noteBody([]byte(s))); err == nil {
				since = max(since, cp.Round)
			}
		}
		if prev, ok := out[e.Origin]; !ok || since < prev {
			out[e.Origin] = since
		}
	}
	return out
}

// growth reads the node's own checkpoints of the last chartWindow (the
// log size at each round close): at most chartPoints of them, at rounds
// evenly spread over the window, so that a page load reads at most
// chartPoints checkpoints however short the period. A round the node did
// not close (it was down) is left out.
func (n *Node) growth(closed uint64) []portal.GrowthPoint {
	period := n.schedule.Period
	if period <= 0 {
		return nil
	}
	var out []portal.GrowthPoint
	notes, err := n.tree.CheckpointsAt(growthRounds(closed, min(uint64(chartWindow/period), closed), chartPoints))
	if err != nil {
		n.logger.Warn("status: reading checkpoints for the growth charts", "err", err)
		return nil
	}
	for _, signed := range notes {
		if len(signed) == 0 {
			continue
		}
		cp, err := merkle.ParseCheckpoint(noteBody(signed))
		if err != nil {
			continue
		}
		out = append(out, portal.GrowthPoint{Time: time.Unix(cp.Time, 0).UTC(), Size: cp.Size})
	}
	return out
}

// growthRounds returns at most points rounds, increasing, evenly spread
// from closed-rounds to closed (both included).
func growthRounds(closed, rounds uint64, points int) []uint64 {
	var out []uint64
	for i := range uint64(points) {
		r := closed - rounds
		if points > 1 {
			r += i * rounds / uint64(points-1)
		}
		if len(out) > 0 && r == out[len(out)-1] {
			continue // fewer rounds than points
		}
		out = append(out, r)
	}
	return out
}

// certSigners remembers which members' signatures on a certificate note
// verify, so that the status page checks each certificate once rather than
// on every request: the grid's 30 certificates carry up to one signature
// per member each, and verifying them all took 31 ms of CPU per
// /status.json at 8 members, most of the page's cost. Entries are keyed by
// the note's SHA-256 and hold for one federation (a membership change
// starts afresh, since the signatures that count change with it); at most
// certSignersMax are kept.
type certSigners struct {
	mu  sync.Mutex
	fed *config.Federation // the federation the entries were verified against
	vs  note.Verifiers
	m   map[[sha256.Size]byte][]string
}

// certSignersMax bounds certSigners: the grid's rounds and the latest
// certificate, with room for the rounds to move on; when full, it is
// emptied.
const certSignersMax = 4 * gridRounds

// of returns the names of the members of fed whose signatures on signed
// verify, in the note's order; nil if none does or fed is nil. The slice is
// the caller's.
func (c *certSigners) of(fed *config.Federation, signed []byte) []string {
	return slices.Clone(c.lookup(fed, signed))
}

// count returns how many members of fed signed signed (len of).
func (c *certSigners) count(fed *config.Federation, signed []byte) int {
	return len(c.lookup(fed, signed))
}

// lookup is of without the copy: the slice is the cache's, not to be
// changed.
func (c *certSigners) lookup(fed *config.Federation, signed []byte) []string {
	if fed == nil {
		return nil
	}
	h := sha256.Sum256(signed)
	c.mu.Lock()
	if c.fed != fed {
		c.vs, _ = fed.Verifiers() // nil for a federation that did not validate: no names
		c.fed, c.m = fed, map[[sha256.Size]byte][]string{}
	}
	names, ok := c.m[h]
	vs := c.vs
	c.mu.Unlock()
	if ok {
		return names
	}
	if vs == nil {
		return nil
	}
	if nn, err := note.Open(signed, vs); err == nil {
		for _, s := range nn.Sigs {
			names = append(names, s.Name)
		}
	}
	c.mu.Lock()
	if c.fed == fed {
		if len(c.m) >= certSignersMax {
			clear(c.m)
		}
		c.m[h] = names
	}
	c.mu.Unlock()
	return names
}

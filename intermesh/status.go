package intermesh

import (
	"crypto/sha256"
	"maps"
	"slices"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// recentCertificates is how many rounds of certificates stay in memory;
// older ones are read from the database.
const recentCertificates = 64

// view is the snapshot of the round state the accessors read; the round
// loop replaces it whenever the state changes. Its maps and slices are
// never modified once published.
type view struct {
	certs    map[uint64]Certificate
	latest   uint64 // round of the newest certificate, if any
	hasCert  bool
	cps      map[string][]byte
	evidence []Evidence
}

// publishView snapshots st for the accessors.
func (m *Mesh) publishView(st *state) {
	v := view{certs: maps.Clone(st.certs), cps: map[string][]byte{}, evidence: slices.Clone(st.evidence)}
	for r := range st.certs {
		if !v.hasCert || r > v.latest {
			v.latest, v.hasCert = r, true
		}
	}
	for o, os := range st.origins {
		if hc, ok := os.notes[os.latest]; ok && !os.equivocated {
			v.cps[o] = hc.note
		}
	}
	m.viewMu.Lock()
	m.view = v
	m.viewMu.Unlock()
}

func (m *Mesh) snapshot() view {
	m.viewMu.RLock()
	defer m.viewMu.RUnlock()
	return m.view
}

// Certificate returns the master-hash certificate of a round, from memory
// for recent rounds and from the database for older ones. A certificate
// held in memory may gain signatures (or, rarely, checkpoints) after the
// round was committed, until the round leaves the round window.
func (m *Mesh) Certificate(round uint64) (Certificate, bool) {
	if c, ok := m.snapshot().certs[round]; ok {
		return c, true
	}
	c, ok, err := m.store.certificate(round)
	if err != nil {
		m.log.Error("read certificate", "round", round, "err", err)
		return Certificate{}, false
	}
	return c, ok
}

// LatestCertificate returns the certificate of the newest round that has
// one.
func (m *Mesh) LatestCertificate() (Certificate, bool) {
	v := m.snapshot()
	if !v.hasCert {
		return Certificate{}, false
	}
	return v.certs[v.latest], true
}

// LatestCheckpoints returns the latest valid signed checkpoint note held of
// each member (this node's included), by origin; members with evidence
// against them are left out (see Evidence).
func (m *Mesh) LatestCheckpoints() map[string][]byte {
	return maps.Clone(m.snapshot().cps)
}

// Evidence returns the equivocation evidence recorded so far, oldest first.
func (m *Mesh) Evidence() []Evidence {
	return slices.Clone(m.snapshot().evidence)
}

// ReplicaState is what the node holds of one member's log.
type ReplicaState struct {
	// Origin is the member.
	Origin string
	// Size is the number of records the replica log holds.
	Size uint64
	// Busy says the replica was being worked on (ReplicasNow), for longer
	// than statusWait: the fields below but Map.Mismatches were not read.
	Busy bool
	// Known is the number of records the member is known to have (from its
	// checkpoints and record batches).
	Known uint64
	// Verified is the largest checkpoint of the member (signed note) whose
	// root the replica reproduces (of the largest, the latest round), nil
	// if none yet. A later round's smaller checkpoint the replica also
	// reproduces does not replace it: the verified size never decreases.
	Verified []byte
	// VerifiedSize is the tree size of Verified.
	VerifiedSize uint64
	// Untrusted says why the replica no longer matches what its origin
	// signed; "" while it does.
	Untrusted string
	// Map is the node's recomputation of the member's map from the
	// replica (replica_map.go).
	Map MapState
}

// MapState is this node's recomputation of a member's verifiable map
// (package vmap) from its replica, which checks the map lines of the
// member's checkpoints.
type MapState struct {
	// Opened says the map is open. It opens when first needed (to verify a
	// checkpoint with a map line), and after a failure it is reopened at
	// its last commit when next needed.
	Opened bool
	// Size is how many of the replica's records the map covers; 0 unless
	// Opened.
	Size uint64
	// Root is the map's root over those Size records (32 bytes); nil unless
	// Opened.
	Root []byte
	// Mismatches counts the member's checkpoints refused since this node
	// started because their map line was not the recomputed root (the
	// metric intermesh_map_mismatches_total).
	Mismatches uint64
}

// statusWait is how long ReplicasNow waits for a replica being worked on.
// Its lock is held while the replica's map is recomputed, which takes
// seconds when the map is first opened (it loads every bucket) or follows
// the replica again after being lowered: the status page does not wait
// for that, it says the replica is busy.
const statusWait = 20 * time.Millisecond

// Replicas returns the state of every replica, by origin; nil without
// replication (Config.Log). It waits for replicas being worked on.
func (m *Mesh) Replicas() map[string]ReplicaState {
	return m.replicas(func(mu *sync.Mutex) bool { mu.Lock(); return true })
}

// ReplicasNow is Replicas for status pages: a replica being worked on for
// longer than statusWait (its map recomputed) is Busy rather than waited
// for.
func (m *Mesh) ReplicasNow() map[string]ReplicaState {
	return m.replicas(func(mu *sync.Mutex) bool { return lockWithin(mu, statusWait) })
}

// replicas reads each replica's state, under its mu if lock (which either
// locks it and returns true, or returns false) takes it.
func (m *Mesh) replicas(lock func(*sync.Mutex) bool) map[string]ReplicaState {
	if m.repl == nil {
		return nil
	}
	out := make(map[string]ReplicaState, len(m.repl.origins))
	for o, rs := range m.repl.origins {
		st := ReplicaState{Origin: o, Size: rs.rep.Size(), Busy: true}
		if lock(&rs.mu) {
			st = rs.stateLocked(st.Size)
			rs.mu.Unlock()
		}
		st.Map.Mismatches = m.mapMismatches(o)
		out[o] = st
	}
	return out
}

// stateLocked returns rs's state, its replica holding size records; rs.mu
// held. The map, advanced and committed under rs.mu, is at a commit.
func (rs *replicaState) stateLocked(size uint64) ReplicaState {
	st := ReplicaState{Origin: rs.origin, Size: size, Known: max(rs.target, size), Untrusted: rs.untrusted}
	if i := largestIndex(rs.verified); i >= 0 {
		st.Verified, st.VerifiedSize = rs.verified[i].note, rs.verified[i].cp.Size
	}
	if lm := rs.rmap.lm; lm != nil {
		root := lm.Root()
		st.Map = MapState{Opened: true, Size: lm.Size(), Root: root[:]}
	}
	return st
}

// mapMismatches reads the intermesh_map_mismatches_total counter of
// origin.
func (m *Mesh) mapMismatches(origin string) uint64 {
	var d dto.Metric
	if err := m.metrics.mapMismatches.WithLabelValues(origin).Write(&d); err != nil {
		return 0
	}
	return uint64(d.GetCounter().GetValue())
}

// lockWithin locks mu if it can within d, trying every millisecond, and
// says whether it did.
func lockWithin(mu *sync.Mutex, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !mu.TryLock() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// ConsistencyProof returns, for a checkpoint of a member that its replica
// verifies, the member's previous checkpoint the replica verified and the
// RFC 6962 consistency proof from it, built from the replica's tree (see
// merkle.VerifyConsistent). ok is false if the replica has not verified
// signedCheckpoint, or nothing before it.
func (m *Mesh) ConsistencyProof(origin string, signedCheckpoint []byte) (prev []byte, proof [][]byte, ok bool) {
	if m.repl == nil {
		return nil, nil, false
	}
	rs := m.repl.origins[origin]
	if rs == nil {
		return nil, nil, false
	}
	h := sha256.Sum256(signedCheckpoint)
	rs.mu.Lock()
	var cur, before *heldCheckpoint
	for i := range rs.verified {
		if rs.verified[i].hash == h {
			cur = &rs.verified[i]
			if i > 0 {
				before = &rs.verified[i-1]
			}
		}
	}
	if cur == nil || before == nil || rs.untrusted != "" {
		rs.mu.Unlock()
		return nil, nil, false
	}
	c, b := *cur, *before
	rs.mu.Unlock()
	p, err := rs.tree.ConsistencyProof(b.cp.Size, c.cp.Size)
	if err != nil {
		m.log.Warn("consistency proof from the replica", "member", origin, "err", err)
		return nil, nil, false
	}
	return b.note, p, true
}

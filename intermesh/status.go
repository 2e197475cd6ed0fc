package intermesh

import (
	"maps"
	"slices"
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

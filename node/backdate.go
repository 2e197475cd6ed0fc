package node

import (
	"errors"
	"fmt"
	"slices"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/intermesh"
	"github.com/intermesh/intermesh/portal"
)

// Backdated federation updates.
//
// Membership history is append-only in time: a federation update is never
// in force for a round the node has already certified under the version
// before it, however the update arrives (the operator's POST /federation,
// a peer's log, a member's GET /federation/updates). Without this rule a
// quorum of the old version (colluding, or compromised later) could sign
// an update "in force from round R" after round R was certified, and a
// node learning it from a peer's log would rewrite which members ran the
// rounds it already certified, and switch its Mesh mid-round.
//
// A node that was offline through an update's effective round, and so
// certified nothing from that round on, still takes the update: the rounds
// since then that it has not certified are judged under the new version,
// and the node logs that it learned the update late.
//
// A refused update is kept (at most maxBackdated, the latest first) with
// the certificate it contradicts, as signed evidence against the members
// who signed it: they signed an effective round the federation had already
// certified under other members. The node shows it on its status page and
// counts it in intermesh_federation_updates_refused_total{reason="backdated"}.

// maxBackdated bounds the backdated updates a node keeps as evidence.
const maxBackdated = 8

// ErrFederationBackdated reports a certified update in force from a round
// the node already certified under the version before it.
var ErrFederationBackdated = errors.New("node: backdated federation update")

// checkNotBackdated returns ErrFederationBackdated, and keeps the evidence,
// if u would be in force from a round the node has certified already; h.mu
// is held.
func (n *Node) checkNotBackdated(u *config.FederationUpdate, signed []byte) error {
	cert, found, err := intermesh.LatestCertificate(n.log.DB())
	if err != nil {
		return fmt.Errorf("node: checking federation version %d against the rounds certified: %w", u.Next.Version, err)
	}
	if !found || cert.Round < u.Next.Effective {
		return nil
	}
	h := n.history
	ev := portal.BackdatedUpdate{Version: u.Next.Version, Effective: u.Next.Effective, Signers: u.Signers,
		Update: string(signed), Round: cert.Round, Certificate: string(cert.Note)}
	if !slices.ContainsFunc(h.backdated, func(b portal.BackdatedUpdate) bool { return b.Update == ev.Update }) {
		if len(h.backdated) == maxBackdated {
			h.backdated = h.backdated[1:]
		}
		h.backdated = append(h.backdated, ev)
		n.logger.Error("a backdated federation update was refused: its signers certified a change of members for rounds already certified under other members",
			"version", ev.Version, "effective_round", ev.Effective, "certified_round", ev.Round, "signers", ev.Signers)
	}
	n.fedRefused.WithLabelValues("backdated").Inc()
	return fmt.Errorf("%w: version %d would be in force from round %d, but round %d is certified already under version %d",
		ErrFederationBackdated, u.Next.Version, u.Next.Effective, cert.Round, u.Next.Version-1)
}

// BackdatedUpdates returns the backdated federation updates the node
// refused, oldest first.
func (n *Node) BackdatedUpdates() []portal.BackdatedUpdate {
	if n.history == nil {
		return nil
	}
	h := n.history
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]portal.BackdatedUpdate(nil), h.backdated...)
}

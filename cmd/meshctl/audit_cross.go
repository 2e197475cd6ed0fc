package main

import (
	"bytes"
	"fmt"
	"slices"
)

// The cross-node checks: what different nodes showed must fit together.

// checkCertificatesAgree compares the certificates of each round that
// several nodes committed. The same M_r agrees. Different ones agree only
// if no origin has different checkpoints in them: the vote rule lets a
// round have a certificate over fewer checkpoints, formed before a late one
// arrived, next to one over all of them, but never two over different
// checkpoints of one member.
func (a *auditor) checkCertificatesAgree() {
	type held struct {
		node *nodeAudit
		cert *auditCertificate
	}
	byRound := map[uint64][]held{}
	for _, n := range a.nodes {
		for round, cert := range n.certs {
			byRound[round] = append(byRound[round], held{n, cert})
		}
	}
	for _, round := range sortedKeys(byRound) {
		hs := byRound[round]
		if len(hs) < 2 {
			continue
		}
		first := hs[0]
		for _, h := range hs[1:] {
			if why := disagreement(first.cert, h.cert); why != "" {
				a.report.fail(h.node.rep, checkCertsAgree, "round %d: the certificate (M_r %s) and that of %s (M_r %s) %s",
					round, b64(h.cert.MasterHash), first.node.rep.label(), b64(first.cert.MasterHash), why)
				continue
			}
			a.report.pass(h.node.rep, checkCertsAgree)
		}
		a.report.pass(first.node.rep, checkCertsAgree)
	}
}

// disagreement says how two certificates of one round disagree, or "".
func disagreement(x, y *auditCertificate) string {
	if bytes.Equal(x.MasterHash, y.MasterHash) {
		return ""
	}
	for _, cp := range x.Checkpoints {
		if i := y.index(cp.Origin); i >= 0 && y.Checkpoints[i].Note != cp.Note {
			return fmt.Sprintf("hold different checkpoints of %s", cp.Origin)
		}
	}
	return ""
}

// checkEquivocation looks at every verified checkpoint any node showed (its
// own, in Status, in certificates and votes) and finds, per origin, two that
// cannot both be true: two roots for one size, two checkpoints of one round,
// a tree that shrank, or a prev line that does not chain to the previous
// round's note. Each is reported as evidence against the origin.
func (a *auditor) checkEquivocation() {
	byOrigin := map[string][]observation{}
	seen := map[string]bool{}
	for _, n := range a.nodes {
		for _, o := range n.seen {
			if t := noteText(o.cp.Note); !seen[t] {
				seen[t] = true
				byOrigin[o.cp.Origin] = append(byOrigin[o.cp.Origin], o)
			}
		}
	}
	for _, origin := range a.keys.origins {
		obs := byOrigin[origin]
		if len(obs) == 0 {
			continue
		}
		slices.SortStableFunc(obs, func(x, y observation) int {
			if x.cp.Round != y.cp.Round {
				return cmpUint(x.cp.Round, y.cp.Round)
			}
			return cmpUint(x.cp.Size, y.cp.Size)
		})
		found := false
		report := func(x, y observation) {
			if why := conflict(x.cp, y.cp); why != "" {
				found = true
				a.report.addEvidence(origin, why, [2]string{x.cp.Note, y.cp.Note},
					fmt.Sprintf("audit (%s; %s)", x.where, y.where))
			}
		}
		bySize := map[uint64]observation{}
		for i, o := range obs {
			if prev, ok := bySize[o.cp.Size]; ok {
				report(prev, o)
			} else {
				bySize[o.cp.Size] = o
			}
			if i > 0 {
				report(obs[i-1], o) // same round, shrinking, broken prev chain
			}
		}
		if !found {
			a.report.pass(a.report.node(origin), checkEquivocation)
		}
	}
}

func cmpUint(x, y uint64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// checkRoots recomputes, for every log copy fetched, the RFC 6962 root at
// the size of every checkpoint of its origin that any node showed, and
// compares it with the checkpoint's root: for a node's own log this checks
// that its entries are what it signed; for a replica, that the replica is
// the origin's log.
func (a *auditor) checkRoots() error {
	byOrigin := map[string][]signedCheckpoint{}
	seen := map[string]bool{}
	for _, n := range a.nodes {
		for _, o := range n.seen {
			if t := noteText(o.cp.Note); !seen[t] {
				seen[t] = true
				byOrigin[o.cp.Origin] = append(byOrigin[o.cp.Origin], o.cp)
			}
		}
	}
	for _, n := range a.nodes {
		if n.own != nil {
			if err := a.checkCopyRoots(n, n.own, byOrigin[n.own.origin], checkRoot); err != nil {
				return err
			}
		}
		for _, origin := range a.keys.origins {
			if l := n.replicas[origin]; l != nil {
				if err := a.checkCopyRoots(n, l, byOrigin[origin], checkReplicaRoot); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkCopyRoots compares the roots of one log copy with the checkpoints of
// its origin that it is long enough for.
func (a *auditor) checkCopyRoots(n *nodeAudit, l *logCopy, cps []signedCheckpoint, check string) error {
	var sizes []uint64
	for _, cp := range cps {
		sizes = append(sizes, cp.Size)
	}
	roots, err := rootsAt(l.hashes, sizes)
	if err != nil {
		return fmt.Errorf("audit: %s: %w", n.rep.label(), err)
	}
	slices.SortFunc(cps, func(x, y signedCheckpoint) int { return cmpUint(x.Round, y.Round) })
	what := "entries fetched"
	if l.replica {
		what = "entries of its replica of " + l.origin
	}
	for _, cp := range cps {
		root, ok := roots[cp.Size]
		if !ok {
			continue // the copy is shorter: a replica catching up, or a later checkpoint
		}
		if !bytes.Equal(root, cp.Root) {
			a.report.fail(n.rep, check, "the root of the first %d %s is %s, the checkpoint of %s for round %d says %s",
				cp.Size, what, b64(root), cp.Origin, cp.Round, b64(cp.Root))
			continue
		}
		a.report.pass(n.rep, check)
	}
	return nil
}

package audit

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
		cert *Certificate
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
				a.report.fail(h.node.rep, CheckCertsAgree, "round %d: the certificate (M_r %s) and that of %s (M_r %s) %s",
					round, b64(h.cert.MasterHash), first.node.rep.label(), b64(first.cert.MasterHash), why)
				continue
			}
			a.report.pass(h.node.rep, CheckCertsAgree)
		}
		a.report.pass(first.node.rep, CheckCertsAgree)
	}
}

// disagreement says how two certificates of one round disagree, or "".
func disagreement(x, y *Certificate) string {
	if bytes.Equal(x.MasterHash, y.MasterHash) {
		return ""
	}
	for _, cp := range x.Checkpoints {
		if i := y.Index(cp.Origin); i >= 0 && y.Checkpoints[i].Note != cp.Note {
			return fmt.Sprintf("hold different checkpoints of %s", cp.Origin)
		}
	}
	return ""
}

// checkEquivocation looks at every verified checkpoint any node showed (its
// own, in Status, in certificates and votes) and finds, per origin, two that
// cannot both be true: two roots or two map lines for one size, two
// checkpoints of one round,
// a tree that shrank, or a prev line that does not chain to the previous
// round's note. Each is reported as evidence against the origin.
func (a *auditor) checkEquivocation() {
	byOrigin := map[string][]observation{}
	seen := map[string]bool{}
	for _, n := range a.nodes {
		for _, o := range n.seen {
			if t := NoteText(o.cp.Note); !seen[t] {
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
			a.report.passAudited(origin, CheckEquivocation)
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
// compares it with the checkpoint's root. A node's own entries must match
// every checkpoint it signed. A replica must match one of them: when the
// origin signed two roots for one size, that is the origin's equivocation,
// not the replica holder's fault.
func (a *auditor) checkRoots() error {
	byOrigin := map[string][]Checkpoint{}
	seen := map[string]bool{}
	for _, n := range a.nodes {
		for _, o := range n.seen {
			if t := NoteText(o.cp.Note); !seen[t] {
				seen[t] = true
				byOrigin[o.cp.Origin] = append(byOrigin[o.cp.Origin], o.cp)
			}
		}
	}
	for _, cps := range byOrigin {
		slices.SortFunc(cps, func(x, y Checkpoint) int { return cmpUint(x.Round, y.Round) })
	}
	for _, n := range a.nodes {
		if n.own != nil {
			if err := a.checkOwnRoots(n, byOrigin[n.own.origin]); err != nil {
				return err
			}
		}
		for _, origin := range a.keys.origins {
			if l := n.replicas[origin]; l != nil {
				if err := a.checkReplicaRoots(n, l, byOrigin[origin]); err != nil {
					return err
				}
			}
		}
	}
	return a.checkReplicaMaps(byOrigin)
}

// checkReplicaMaps checks the map lines of each origin whose own log no
// node served, against a replica's map: a wrong map line is the origin's
// fault, reported at the origin's node, naming the replica.
func (a *auditor) checkReplicaMaps(byOrigin map[string][]Checkpoint) error {
	for _, origin := range a.keys.origins {
		r, ok := a.mapReplicas[origin]
		if !ok || slices.ContainsFunc(a.nodes, func(n *nodeAudit) bool { return n.own != nil && n.own.origin == origin && n.own.size() > 0 }) {
			continue
		}
		roots, err := copyRoots(r.node, r.copy, byOrigin[origin])
		if err != nil {
			return err
		}
		a.checkMaps(a.report.node(origin), r.copy, byOrigin[origin], roots, fmt.Sprintf(" (from the replica at %s)", r.node.rep.label()))
	}
	return nil
}

// copyRoots returns the roots of a log copy at the sizes of cps that it
// holds.
func copyRoots(n *nodeAudit, l *logCopy, cps []Checkpoint) (map[uint64][]byte, error) {
	var sizes []uint64
	for _, cp := range cps {
		sizes = append(sizes, cp.Size)
	}
	roots, err := RootsAt(l.hashes, sizes)
	if err != nil {
		return nil, fmt.Errorf("audit: %s: %w", n.rep.label(), err)
	}
	return roots, nil
}

// checkOwnRoots compares the roots of a node's own entries with every
// checkpoint of its origin that they are long enough for.
func (a *auditor) checkOwnRoots(n *nodeAudit, cps []Checkpoint) error {
	roots, err := copyRoots(n, n.own, cps)
	if err != nil {
		return err
	}
	for _, cp := range cps {
		root, ok := roots[cp.Size]
		if !ok {
			continue // a checkpoint seen later, at another node
		}
		if !bytes.Equal(root, cp.Root) {
			a.report.fail(n.rep, CheckRoot, "the root of the first %d entries fetched is %s, the checkpoint of %s for round %d says %s",
				cp.Size, b64(root), cp.Origin, cp.Round, b64(cp.Root))
			continue
		}
		a.report.pass(n.rep, CheckRoot)
	}
	a.checkMaps(n.rep, n.own, cps, roots, "")
	return nil
}

// checkMaps recomputes the map of a log copy at the size of every
// checkpoint of its origin whose root it matches (cps in round order), and
// compares it with the checkpoint's map line, reporting at rep (a suffix
// from names the copy when it is not rep's own log). A checkpoint
// without a map line fails only if an earlier checkpoint of the origin has
// one (a map that appears, then disappears); otherwise it was closed before
// the origin had a map, and is counted as not checked. A log whose map is
// refused (a leaf that does not parse, text that is not UTF-8, a seq that
// is not its index) fails once, and its map lines from there on are not
// checked.
func (a *auditor) checkMaps(rep *NodeReport, l *logCopy, cps []Checkpoint, roots map[uint64][]byte, from string) {
	if l.vmap.refused != "" {
		a.report.fail(rep, CheckMap, "the map of %s's log is refused: %s%s", l.origin, l.vmap.refused, from)
	}
	var sizes []uint64
	var firstMapRound uint64
	hasMap := false
	for _, cp := range cps {
		if cp.Map != nil && (!hasMap || cp.Round < firstMapRound) {
			hasMap, firstMapRound = true, cp.Round
		}
		if root, ok := roots[cp.Size]; ok && bytes.Equal(root, cp.Root) && cp.Map != nil {
			sizes = append(sizes, cp.Size)
		}
	}
	maps := l.vmap.rootsAt(l.hashes, sizes)
	for _, cp := range cps {
		if root, ok := roots[cp.Size]; !ok || !bytes.Equal(root, cp.Root) {
			continue // not held, or the root check failed already
		}
		if cp.Map == nil {
			if hasMap && cp.Round > firstMapRound {
				a.report.fail(rep, CheckMap, "checkpoint round %d, size %d has no map line, but the earlier checkpoint of round %d has one%s",
					cp.Round, cp.Size, firstMapRound, from)
			} else {
				a.report.notChecked(rep, CheckMap)
			}
			continue
		}
		m, ok := maps[cp.Size]
		if !ok {
			continue // beyond where the map is refused
		}
		if !bytes.Equal(m[:], cp.Map) {
			a.report.fail(rep, CheckMap, "map line of checkpoint round %d, size %d: %s, the records' map: %s%s",
				cp.Round, cp.Size, b64(cp.Map), b64(m[:]), from)
			continue
		}
		a.report.pass(rep, CheckMap)
	}
}

// checkReplicaRoots compares the roots of a replica with the origin's
// checkpoints, once per size it is long enough for.
func (a *auditor) checkReplicaRoots(n *nodeAudit, l *logCopy, cps []Checkpoint) error {
	roots, err := copyRoots(n, l, cps)
	if err != nil {
		return err
	}
	bySize := map[uint64][]Checkpoint{}
	var sizes []uint64
	for _, cp := range cps {
		if _, ok := roots[cp.Size]; !ok {
			continue // the replica is still catching up
		}
		if bySize[cp.Size] == nil {
			sizes = append(sizes, cp.Size)
		}
		bySize[cp.Size] = append(bySize[cp.Size], cp)
	}
	for _, size := range sizes {
		root := roots[size]
		if slices.ContainsFunc(bySize[size], func(cp Checkpoint) bool { return bytes.Equal(cp.Root, root) }) {
			a.report.pass(n.rep, CheckReplicaRoot)
			continue
		}
		cp := bySize[size][0]
		a.report.fail(n.rep, CheckReplicaRoot, "the root of the first %d entries of its replica of %s is %s, the checkpoint of %s for round %d says %s",
			size, l.origin, b64(root), cp.Origin, cp.Round, b64(cp.Root))
	}
	return nil
}

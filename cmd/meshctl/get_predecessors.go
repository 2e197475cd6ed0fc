package main

import (
	"fmt"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/intermesh/intermesh/audit"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
	"github.com/intermesh/intermesh/vmap"
)

// A profile version signed by one of its online keys is proved the
// latest only with its predecessors (docs/formats.md, "Predecessors of an
// online-signed version"): a version may list any key as an online key
// and sign itself with it, so what makes the signer legitimate is that
// the version before lists it. The answer carries the versions before the
// latest back to one signed by the offline key (GetProof.Predecessors,
// at most portal.MaxPredecessors) and the history value before them
// (GetProof.HistoryBefore); the client checks that they are in the same
// certified checkpoint, that their history links end in the certified
// map value (so they are the versions right before the latest, in
// order), and that each version's signer is the offline key or an online
// key of the version before, as the portal's own mesh.MayReplace decides.

// verifyProfileVersion verifies the latest version of profile name, the
// record at the map value v's latest index, and returns its entry and
// what its predecessors prove (empty for an offline-signed version).
func verifyProfileVersion(cp audit.Checkpoint, resp *portal.GetResponse, name string, v vmap.Value, item portal.DataItem) (*mesh.Entry, string, error) {
	preds := resp.Proof.Predecessors
	e, err := mesh.VerifyEntry(item.Entry, 0)
	switch {
	case err == nil && e.SignedOffline:
		return e, "", nil
	case len(preds) == 0 && err != nil:
		return nil, "", fmt.Errorf("record %d: %w", v.LatestIndex, err)
	case len(preds) == 0:
		return nil, "", fmt.Errorf("record %d, the latest version of %s, is signed by %s, an online key it lists itself, and the portal sent no earlier version that lists that key: it is not proved to be the owner's",
			v.LatestIndex, name, e.Signer)
	}
	prev, err := provePredecessors(cp, resp.Proof, name, v)
	if err != nil {
		return nil, "", err
	}
	if e, err = nextVersion(prev, item.Entry); err != nil {
		return nil, "", fmt.Errorf("record %d, the latest version of %s: %w", v.LatestIndex, name, err)
	}
	first, last := *preds[0].Index, *preds[len(preds)-1].Index
	return e, fmt.Sprintf("its signer %s is an online key of the version before it, record %d; the %d versions back to record %d, signed by the profile's offline key, are in the same checkpoint, each signed by a key of the one before, and their history links end in the certified map value",
		e.Signer, last, len(preds), first), nil
}

// provePredecessors checks p's predecessors of name's latest version
// (the record v names): each is a profile record of name in cp, their
// history links with the latest's end in v's history, the oldest is
// signed by the offline key and each next one by a key of the one
// before. It returns the newest predecessor's entry.
func provePredecessors(cp audit.Checkpoint, p *portal.GetProof, name string, v vmap.Value) (*mesh.Entry, error) {
	preds := p.Predecessors
	if len(preds) > portal.MaxPredecessors {
		return nil, fmt.Errorf("the portal sent %d predecessors of %s's latest version, more than %d", len(preds), name, portal.MaxPredecessors)
	}
	if len(p.HistoryBefore) != len(vmap.Hash{}) {
		return nil, fmt.Errorf("the predecessors of %s's latest version come without the 32-byte history value before them", name)
	}
	h := vmap.Hash(p.HistoryBefore)
	for _, it := range preds {
		if err := predecessorRecord(cp, name, it); err != nil {
			return nil, err
		}
		h = vmap.NextHistory(h, *it.Index, vmap.Hash(rfc6962.DefaultHasher.HashLeaf(it.Leaf)))
	}
	h = vmap.NextHistory(h, v.LatestIndex, v.LatestLeafHash)
	if h != v.History || uint64(len(preds)) >= v.Count {
		return nil, fmt.Errorf("the %d predecessors the portal sent are not the versions of %s right before its latest, record %d: their history links do not end in the certified map value",
			len(preds), name, v.LatestIndex)
	}
	prev, err := mesh.VerifyEntry(preds[0].Entry, 0)
	if err != nil {
		return nil, fmt.Errorf("predecessor record %d of %s: %w", *preds[0].Index, name, err)
	}
	if !prev.SignedOffline {
		if uint64(len(preds))+1 == v.Count {
			return nil, fmt.Errorf("the first version of %s, record %d, is not signed by the profile's offline key", name, *preds[0].Index)
		}
		return nil, fmt.Errorf("the %d versions of %s before its latest that the portal sent are all signed by online keys: none ties the latest to the profile's offline key (at most %d are checked; the owner re-signs a version with the offline key)",
			len(preds), name, portal.MaxPredecessors)
	}
	for _, it := range preds[1:] {
		if prev, err = nextVersion(prev, it.Entry); err != nil {
			return nil, fmt.Errorf("predecessor record %d of %s: %w", *it.Index, name, err)
		}
	}
	if prev.Identifier.String() != name {
		return nil, fmt.Errorf("the predecessors hold the profile of %s, not of %s", prev.Identifier, name)
	}
	return prev, nil
}

// predecessorRecord checks that it is a profile record about name, in cp.
func predecessorRecord(cp audit.Checkpoint, name string, it portal.DataItem) error {
	if err := verifyGetItem(cp, it); err != nil {
		return fmt.Errorf("a predecessor of %s's latest version: %w", name, err)
	}
	l, err := audit.ParseLeaf(it.Leaf)
	if err != nil {
		return err
	}
	if (l.Kind != "Profile" && l.Kind != "Account") || l.Identifier != name {
		return fmt.Errorf("predecessor record %d is a %s record about %q, not a version of profile %s", l.Seq, l.Kind, l.Identifier, name)
	}
	return nil
}

// nextVersion verifies raw, a version that follows prev, with prev's
// online keys resolvable (mesh.Verifier.Lookup), and checks that prev
// lets it replace it (mesh.MayReplace): signed by the offline key or by
// an online key prev lists.
func nextVersion(prev *mesh.Entry, raw []byte) (*mesh.Entry, error) {
	vf := mesh.Verifier{Lookup: func(id mesh.UDF) (*mesh.Entry, error) {
		if id.Equal(prev.Identifier) {
			return prev, nil
		}
		return nil, nil
	}}
	e, err := vf.Verify(raw)
	if err != nil {
		return nil, err
	}
	if err := mesh.MayReplace(prev, e); err != nil {
		return nil, fmt.Errorf("it does not follow the version before it: %w", err)
	}
	return e, nil
}

// withHistoryPredecessors returns the proof of a history's latest
// version: p with the predecessors taken from the history itself, items
// (every version, oldest first), back to the latest one that the profile's
// offline key signed, at most portal.MaxPredecessors, and the history
// value before them. The caller then checks them as it checks a Get's.
func withHistoryPredecessors(p *portal.GetProof, items []portal.DataItem) *portal.GetProof {
	out := *p
	n := len(items)
	if n < 2 {
		return &out
	}
	start := n - 1
	for start > 0 && n-1-start < portal.MaxPredecessors {
		start--
		if e, err := mesh.VerifyEntry(items[start].Entry, 0); err == nil && e.SignedOffline {
			break
		}
	}
	var h vmap.Hash
	for _, it := range items[:start] {
		if it.Index != nil {
			h = vmap.NextHistory(h, *it.Index, vmap.Hash(rfc6962.DefaultHasher.HashLeaf(it.Leaf)))
		}
	}
	out.Predecessors, out.HistoryBefore = items[start:n-1], h[:]
	return &out
}

package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/vmap"
)

// ProveEntries implements portal.EntryProofs: for entries of a log (the
// node's own, or a replica), a checkpoint of that log the node holds (the
// latest, or that of the round asked for: its own, or one of the origin
// that its replica verified), the inclusion proof of each index in it, the
// lookup proofs of the names in the log's map at its size, and the tie to
// the latest certificate the node committed: the MasterHash record, its
// inclusion in the node's own latest checkpoint, and the consistency proof
// from the certified checkpoint of the entries' log to the checkpoint of
// the proof.
func (n *Node) ProveEntries(ctx context.Context, req portal.ProofRequest) (*portal.GetProof, [][][]byte, error) {
	own, err := n.tree.LatestCheckpoint()
	if errors.Is(err, merkle.ErrNotFound) || (err == nil && len(own) == 0) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("node: latest checkpoint: %w", err)
	}
	origin, indexes := req.Origin, req.Indexes
	if origin == "" {
		origin = n.cfg.Origin
	}
	signed, tree, err := n.checkpointToProve(origin, req.Round, own)
	if signed == nil || err != nil {
		return nil, nil, err
	}
	im := n.Mesh()
	cp, err := merkle.ParseCheckpoint(noteBody(signed))
	if err != nil {
		return nil, nil, fmt.Errorf("node: checkpoint of %s: %w", origin, err)
	}
	inclusions := make([][][]byte, len(indexes))
	for i, idx := range indexes {
		if idx >= cp.Size {
			continue
		}
		if inclusions[i], err = tree.InclusionProof(idx, cp.Size); err != nil {
			return nil, nil, fmt.Errorf("node: inclusion proof of %s's entry %d: %w", origin, idx, err)
		}
	}
	proof := &portal.GetProof{Checkpoint: string(signed)}
	if proof.Map, err = n.proveNames(origin, cp, req.Names); err != nil {
		return nil, nil, err
	}
	if im == nil {
		return proof, inclusions, nil
	}
	ownCp, err := merkle.ParseCheckpoint(noteBody(own))
	if err != nil {
		return nil, nil, fmt.Errorf("node: own checkpoint: %w", err)
	}
	_, rec, ok := n.masters.latestBelow(ownCp.Size)
	if !ok {
		return proof, inclusions, nil
	}
	record, err := n.log.Get(rec.seq)
	if err != nil {
		return nil, nil, fmt.Errorf("node: MasterHash record %d: %w", rec.seq, err)
	}
	recordProof, err := n.tree.InclusionProof(rec.seq, ownCp.Size)
	if err != nil {
		return nil, nil, fmt.Errorf("node: inclusion proof of record %d: %w", rec.seq, err)
	}
	cert := &portal.CertificateProof{
		Checkpoint:      string(own),
		RecordIndex:     rec.seq,
		RecordLeaf:      record.MarshalLeaf(),
		RecordInclusion: recordProof,
	}
	for _, c := range rec.result.Checkpoints {
		certified, err := merkle.ParseCheckpoint(noteBody(c))
		if err != nil || certified.Origin != origin || certified.Size >= cp.Size {
			continue
		}
		if cert.Consistency, err = tree.ConsistencyProof(certified.Size, cp.Size); err != nil {
			return nil, nil, fmt.Errorf("node: consistency proof of %s from %d to %d: %w", origin, certified.Size, cp.Size, err)
		}
	}
	proof.Certificate = cert
	return proof, inclusions, nil
}

// proveNames returns the lookup proofs of names in the map of origin's log
// under cp's map line: from the node's own map, or its map of origin's
// replica, at cp's size; none if cp has no map line.
func (n *Node) proveNames(origin string, cp merkle.Checkpoint, names []vmap.Name) ([]portal.MapProof, error) {
	if len(cp.Map) == 0 || len(names) == 0 {
		return nil, nil
	}
	keys := make([]vmap.Key, len(names))
	for i, nm := range names {
		k, err := nm.Key()
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	var proofs []*vmap.Proof
	var err error
	if origin == n.cfg.Origin {
		proofs, err = n.vmap.proveAt(cp.Size, keys)
	} else if im := n.Mesh(); im != nil {
		proofs, err = im.ProveReplicaMap(origin, cp.Size, keys)
	}
	if errors.Is(err, vmap.ErrVersionNotKept) {
		return nil, portal.Errorf(portal.NotFound, "the map of %s at %d records (round %d) is no longer kept here: ask under a later round", origin, cp.Size, cp.Round)
	}
	if err != nil {
		return nil, fmt.Errorf("node: map proofs of %s at %d records: %w", origin, cp.Size, err)
	}
	out := make([]portal.MapProof, len(proofs))
	for i, p := range proofs {
		b, err := p.MarshalBinary()
		if err != nil {
			return nil, err
		}
		out[i] = portal.MapProof{Namespace: string(names[i].Namespace), Name: names[i].Name, Proof: b}
	}
	return out, nil
}

// proveAt returns the lookup proofs of keys in the map at version size,
// one the map keeps (the size of one of the last checkpoints).
func (m *ownMap) proveAt(size uint64, keys []vmap.Key) ([]*vmap.Proof, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	proofs := make([]*vmap.Proof, len(keys))
	for i, k := range keys {
		p, err := m.lm.Tree().ProveAt(size, k)
		if err != nil {
			return nil, err
		}
		proofs[i] = p
	}
	return proofs, nil
}

// checkpointToProve returns the signed checkpoint of origin's log to prove
// under, and that log's tree: the node's latest own checkpoint own, or its
// checkpoint of round; for another origin, the latest checkpoint (or that
// of round) its replica verified. Nil if there is none yet; a round with
// none is a NotFound *portal.Error.
func (n *Node) checkpointToProve(origin string, round uint64, own []byte) ([]byte, *merkle.Tree, error) {
	if origin == n.cfg.Origin {
		if round == 0 {
			return own, n.tree, nil
		}
		signed, err := n.tree.CheckpointAt(round)
		if errors.Is(err, merkle.ErrNotFound) || (err == nil && len(signed) == 0) {
			return nil, nil, portal.Errorf(portal.NotFound, "%s has no checkpoint of round %d", origin, round)
		}
		return signed, n.tree, err
	}
	im := n.Mesh()
	if im == nil {
		return nil, nil, nil
	}
	signed, ok := im.VerifiedCheckpoint(origin, round)
	switch {
	case !ok && round != 0:
		return nil, nil, portal.Errorf(portal.NotFound, "no checkpoint of %s of round %d is verified here (among the last few)", origin, round)
	case !ok:
		return nil, nil, nil
	}
	return signed, merkle.NewTree(n.log.DB(), merkle.ReplicaPrefix(origin)), nil
}

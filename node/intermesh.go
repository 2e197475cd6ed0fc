package node

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/intermesh"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
)

// masterRecords remembers where the node's recent MasterHash records are in
// its log, so that Status can prove their inclusion in its checkpoints.
type masterRecords struct {
	mu     sync.Mutex
	rounds map[uint64]masterRecord
}

// masterRecord is one committed round outcome and its record's index.
type masterRecord struct {
	seq    uint64
	result intermesh.RoundResult
}

// keepMasterRecords is how many recent rounds' records are remembered.
const keepMasterRecords = 16

func (m *masterRecords) add(round uint64, rec masterRecord) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rounds == nil {
		m.rounds = map[uint64]masterRecord{}
	}
	m.rounds[round] = rec
	for r := range m.rounds {
		if r+keepMasterRecords < round {
			delete(m.rounds, r)
		}
	}
}

// has reports whether the outcome of round was committed already.
func (m *masterRecords) has(round uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.rounds[round]
	return ok
}

// latestBelow returns the latest certificate record whose index is below
// size (so that a checkpoint of that size covers it).
func (m *masterRecords) latestBelow(size uint64) (uint64, masterRecord, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var (
		best  uint64
		found masterRecord
		ok    bool
	)
	for r, rec := range m.rounds {
		if rec.seq < size && rec.result.Outcome == intermesh.OutcomeCertificate && (!ok || r > best) {
			best, found, ok = r, rec, true
		}
	}
	return best, found, ok
}

// load finds the MasterHash records among the log's last records, so that a
// restarted node proves its latest certificates in Status right away rather
// than after its next round.
func (m *masterRecords) load(ctx context.Context, l *log.Log) error {
	const scan = 4096 // a few rounds' worth of records on a busy node
	c := log.Constraints{MaxEntries: log.MaxPageEntries}
	if size := l.Size(); size > scan {
		c.From = size - scan
	}
	for {
		page, err := l.Range(ctx, c)
		if err != nil {
			return fmt.Errorf("node: reading recent MasterHash records: %w", err)
		}
		for _, rec := range page.Records {
			if rec.Kind != intermesh.KindMasterHash {
				continue
			}
			var r intermesh.RoundResult
			if err := json.Unmarshal(rec.Payload, &r); err != nil {
				return fmt.Errorf("node: MasterHash record %d: %w", rec.Seq, err)
			}
			m.add(r.Round, masterRecord{seq: rec.Seq, result: r})
		}
		if page.PageKey == "" {
			return nil
		}
		c.PageKey = page.PageKey
	}
}

// newMesh joins the federation named in the config, if any.
func (n *Node) newMesh(ctx context.Context) error {
	path := n.cfg.FederationPath()
	if path == "" {
		return nil
	}
	fed, err := config.LoadFederation(path)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if fed.EpochPeriod != n.cfg.Epoch.Period {
		return fmt.Errorf("node: epoch.period is %s but the federation %q (%s) says epoch_period = %s: they must agree",
			n.cfg.Epoch.Period, fed.Name, path, fed.EpochPeriod)
	}
	n.genesis = fed
	if n.history, err = loadHistory(n.log.DB(), fed); err != nil {
		return err
	}
	// A node that was offline learns the updates it missed from the
	// members before it takes part (briefly: the members may be down too;
	// it also learns them later from their logs).
	fctx, cancel := context.WithTimeout(ctx, startupFetch)
	for _, u := range n.fetchUpdates(fctx) {
		if _, err := n.learnFederationUpdate(ctx, u); err != nil {
			n.logger.Warn("a federation update served by a member was refused", "err", err)
			break
		}
	}
	cancel()
	_, chain := n.history.current()
	if !slices.ContainsFunc(chain, n.memberOf) {
		// A new member bootstraps the same way: from the chain of updates
		// the members serve, each step verified from its genesis file.
		return fmt.Errorf("node: %q is not a member of federation %q (%s) with its key, and no member served a chain of updates that adds it", n.cfg.Origin, fed.Name, path)
	}
	// Follow the version in force now; if the node is a member only of a
	// later one, runMembership starts its Mesh when that one takes effect.
	v := config.InForce(chain, n.Epoch())
	n.following.Store(v)
	if !n.memberOf(v) {
		n.logger.Info("not a member of the federation version in force", "version", v.Version)
		return nil
	}
	im, err := n.newVersionMesh(ctx, v)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.active.Store(&activeMesh{mesh: im, version: v})
	return nil
}

// commitRound appends a round's outcome (the master-hash certificate, or the
// node's own vote when no quorum formed) to the log as a MasterHash record.
func (n *Node) commitRound(ctx context.Context, r intermesh.RoundResult) error {
	if n.masters.has(r.Round) {
		return nil
	}
	payload, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("node: encoding round %d: %w", r.Round, err)
	}
	rec, err := n.log.Append(ctx, log.Record{
		Kind:       intermesh.KindMasterHash,
		Identifier: fmt.Sprintf("round/%d", r.Round),
		Payload:    payload,
	})
	if err != nil {
		return fmt.Errorf("node: appending the MasterHash record of round %d: %w", r.Round, err)
	}
	n.masters.add(r.Round, masterRecord{seq: rec.Seq, result: r})
	n.logger.Debug("round committed", "round", r.Round, "outcome", r.Outcome, "seq", rec.Seq)
	return nil
}

// PeerProofs implements portal.PeerProofs: for each checkpoint of the latest
// master-hash certificate that the node's checkpoint latest covers, the
// checkpoint, the certificate, the inclusion proof of the checkpoint in the
// master hash, and the inclusion proof of the MasterHash record in latest.
// Status passes the checkpoint its answer carries, so that every proof in
// the answer ends in it even when a round closes meanwhile.
func (n *Node) PeerProofs(ctx context.Context, latest []byte) ([]portal.PeerProof, error) {
	im := n.Mesh()
	if im == nil || len(latest) == 0 {
		return nil, nil // no checkpoint yet: nothing can be proven
	}
	own, _, err := merkle.OpenCheckpoint(latest, n.verifiers())
	if err != nil {
		return nil, fmt.Errorf("node: own latest checkpoint: %w", err)
	}
	_, rec, ok := n.masters.latestBelow(own.Size)
	if !ok {
		return nil, nil
	}
	recordProof, err := n.tree.InclusionProof(rec.seq, own.Size)
	if err != nil {
		return nil, fmt.Errorf("node: inclusion proof of record %d: %w", rec.seq, err)
	}
	type item struct {
		origin string
		note   []byte
	}
	items := make([]item, 0, len(rec.result.Checkpoints))
	for _, c := range rec.result.Checkpoints {
		cp, err := merkle.ParseCheckpoint(noteBody(c))
		if err != nil {
			return nil, fmt.Errorf("node: certificate checkpoint: %w", err)
		}
		items = append(items, item{cp.Origin, c})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].origin < items[j].origin })
	leaves := make([][]byte, len(items))
	for i, it := range items {
		leaves[i] = rfc6962.DefaultHasher.HashLeaf(intermesh.MasterLeaf(it.origin, it.note))
	}
	proofs := make([]portal.PeerProof, len(items))
	for i, it := range items {
		incl, err := merkle.LeafInclusionProof(leaves, uint64(i))
		if err != nil {
			return nil, err
		}
		seq := rec.seq
		proofs[i] = portal.PeerProof{
			Origin:                it.origin,
			Checkpoint:            string(it.note),
			MasterHash:            string(rec.result.Note),
			MasterHashInclusion:   incl,
			MasterRecordIndex:     &seq,
			MasterRecordInclusion: recordProof,
		}
		if prev, cons, ok := n.consistencyProof(it.origin, it.note); ok {
			proofs[i].PreviousCheckpoint = string(prev)
			proofs[i].ConsistencyProof = cons
		}
	}
	return proofs, nil
}

// noteBody is the text of a signed note: everything up to the blank line.
func noteBody(signed []byte) []byte {
	for i := 0; i+1 < len(signed); i++ {
		if signed[i] == '\n' && signed[i+1] == '\n' {
			return signed[:i+1]
		}
	}
	return signed
}

// consistencyProof returns the checkpoint of origin before signed and the
// consistency proof from it: from the node's own tree for its own
// checkpoints, from the replica's tree (via the Mesh) for a peer's.
func (n *Node) consistencyProof(origin string, signed []byte) ([]byte, [][]byte, bool) {
	if origin != n.cfg.Origin {
		im := n.Mesh()
		if im == nil {
			return nil, nil, false
		}
		return im.ConsistencyProof(origin, signed)
	}
	cp, _, err := merkle.OpenCheckpoint(signed, n.verifiers())
	if err != nil || cp.Round == 0 {
		return nil, nil, false
	}
	prev, err := n.tree.CheckpointAt(cp.Round - 1)
	if err != nil || len(prev) == 0 {
		return nil, nil, false
	}
	pcp, _, err := merkle.OpenCheckpoint(prev, n.verifiers())
	if err != nil {
		return nil, nil, false
	}
	p, err := n.tree.ConsistencyProof(pcp.Size, cp.Size)
	if err != nil {
		return nil, nil, false
	}
	return prev, p, true
}

// Evidence implements portal.EvidenceSource: the equivocation evidence the
// node holds, each with the index of its Evidence record in the log.
func (n *Node) Evidence(context.Context) ([]portal.Evidence, error) {
	im := n.Mesh()
	if im == nil {
		return nil, nil
	}
	var out []portal.Evidence
	for _, e := range im.Evidence() {
		pe := portal.Evidence{
			Origin: e.Origin,
			Reason: e.Reason,
			Notes:  [2]string{string(e.Notes[0]), string(e.Notes[1])},
			Root1:  e.Root1,
			Proof:  e.Proof,
		}
		if seq, ok := im.EvidenceRecord(e); ok {
			pe.RecordIndex = &seq
		}
		out = append(out, pe)
	}
	return out, nil
}

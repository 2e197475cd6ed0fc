package intermesh

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/vmap"
)

// A MapRule checks a record of a member's log as the node recomputes the
// member's map: name is a name rec sets (vmap.Sets), and prev a record
// that set it before, nil if none did. An error is a violation: no honest
// member logs rec after prev. The rule must rest on the records alone, and
// hold for every earlier record that set name, not only the latest (so
// that evidence of two records need not prove that nothing set the name
// between them). The node gives the portal's rules (portal.CheckMapRecord).
type MapRule func(name vmap.Name, prev, rec *log.Record) error

// Rule evidence: a member's checkpoint covers records that break the
// MapRule. Its Evidence has the checkpoint as its first note, no second
// note, and in Records the record that breaks the rule, after the earlier
// record it breaks it against if any, each with its inclusion proof under
// the checkpoint. Anyone with the federation file and the rule checks it.

// reasonMapRule starts the reason of rule evidence.
const reasonMapRule = "map-rule"

// maxRuleRecords is how many records rule evidence holds.
const maxRuleRecords = 2

// EvidenceRecord is a record of a member's log in rule evidence.
type EvidenceRecord struct {
	// Index is the record's index in the member's log.
	Index uint64 `json:"index"`
	// Leaf is the record's leaf encoding (log.Record.MarshalLeaf).
	Leaf []byte `json:"leaf"`
	// Proof is the RFC 6962 inclusion proof of the leaf at Index under the
	// evidence's checkpoint.
	Proof [][]byte `json:"proof"`
}

// ruleViolation is a record of a replica that breaks the MapRule.
type ruleViolation struct {
	prev, rec *log.Record
	err       error
}

func (v *ruleViolation) Error() string { return v.err.Error() }

// followChecked is vmap.LogMap.Follow over rs's replica, applying rule to
// each record before the map takes it; a record that breaks it stops the
// map before it, with a *ruleViolation. A nil rule checks nothing; rs.mu
// held.
func (rs *replicaState) followChecked(ctx context.Context, lm *vmap.LogMap, size uint64, rule MapRule) error {
	if rule == nil {
		return lm.Follow(ctx, rs.rep, size)
	}
	for lm.Size() < size {
		page, err := rs.rep.Range(ctx, log.Constraints{From: lm.Size(), MaxEntries: log.MaxPageEntries})
		if err != nil {
			return fmt.Errorf("reading records from %d: %w", lm.Size(), err)
		}
		if len(page.Records) == 0 {
			return fmt.Errorf("the map needs %d records, the replica has none from %d", size, lm.Size())
		}
		for i := range page.Records {
			r := &page.Records[i]
			if lm.Size() == size {
				break
			}
			if r.Seq != lm.Size() {
				return fmt.Errorf("the replica gave record %d where %d was due", r.Seq, lm.Size())
			}
			if err := rs.checkRecord(lm, r, rule); err != nil {
				return err
			}
			if err := lm.Append(r.MarshalLeaf()); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkRecord applies rule to r for each name it sets, against the latest
// record that set the name before; rs.mu held.
func (rs *replicaState) checkRecord(lm *vmap.LogMap, r *log.Record, rule MapRule) error {
	for _, n := range vmap.Sets(r) {
		key, err := n.Key()
		if err != nil {
			return err
		}
		v, _, err := lm.Tree().Lookup(key)
		if err != nil {
			return err
		}
		var prev *log.Record
		if v.Count > 0 {
			p, err := rs.rep.Get(v.LatestIndex)
			if err != nil {
				return fmt.Errorf("reading record %d, the one before %d: %w", v.LatestIndex, r.Seq, err)
			}
			prev = &p
		}
		if err := rule(n, prev, r); err != nil {
			return &ruleViolation{prev: prev, rec: r, err: err}
		}
	}
	return nil
}

// ruleEvidence builds the evidence of v under hc, a checkpoint of rs's
// origin that covers v's records; rs.mu held.
func (rs *replicaState) ruleEvidence(hc heldCheckpoint, v *ruleViolation) (Evidence, error) {
	e := Evidence{Origin: rs.origin, Reason: reasonMapRule + ": " + v.err.Error(), Notes: [2][]byte{hc.note, nil}}
	for _, r := range []*log.Record{v.prev, v.rec} {
		if r == nil {
			continue
		}
		p, err := rs.tree.InclusionProof(r.Seq, hc.cp.Size)
		if err != nil {
			return Evidence{}, fmt.Errorf("inclusion proof of record %d at %d: %w", r.Seq, hc.cp.Size, err)
		}
		e.Records = append(e.Records, EvidenceRecord{Index: r.Seq, Leaf: r.MarshalLeaf(), Proof: p})
	}
	return e, nil
}

// verifyRuleEvidence checks rule evidence (see MapRule) and returns why its
// records break the rule: its note is a checkpoint of e.Origin, each
// record is included in it at its index, the records are in log order,
// and rule refuses the last one against the one before it (for each name
// both set), or alone.
func verifyRuleEvidence(e Evidence, vs note.Verifiers, rule MapRule) (string, error) {
	switch {
	case rule == nil:
		return "", fmt.Errorf("%w: rule evidence, and no map rule to check it with", ErrInvalidEvidence)
	case len(e.Notes[1]) != 0 || e.Root1 != nil || e.Proof != nil:
		return "", fmt.Errorf("%w: rule evidence with a second note or a consistency proof", ErrInvalidEvidence)
	case len(e.Records) == 0 || len(e.Records) > maxRuleRecords:
		return "", fmt.Errorf("%w: rule evidence of %d records, want 1 or %d", ErrInvalidEvidence, len(e.Records), maxRuleRecords)
	case len(e.Notes[0]) > maxCheckpointSize:
		return "", fmt.Errorf("%w: a note of %d bytes, limit %d", ErrInvalidEvidence, len(e.Notes[0]), maxCheckpointSize)
	}
	cp, err := openCheckpoint(e.Notes[0], vs)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidEvidence, err)
	}
	if cp.Origin != e.Origin {
		return "", fmt.Errorf("%w: the note is a checkpoint of %q, not %q", ErrInvalidEvidence, cp.Origin, e.Origin)
	}
	recs, err := includedRecords(e.Records, cp)
	if err != nil {
		return "", err
	}
	rec, prev := recs[len(recs)-1], (*log.Record)(nil)
	if len(recs) == 2 {
		prev = recs[0]
	}
	if err := breaksRule(rule, prev, rec); err != nil {
		return fmt.Sprintf("%s: %v (under its checkpoint of round %d)", reasonMapRule, err, cp.Round), nil
	}
	return "", fmt.Errorf("%w: the records of %q keep the map's rules", ErrInvalidEvidence, e.Origin)
}

// includedRecords parses the records of rule evidence and checks that each
// is at its index under cp, in increasing order.
func includedRecords(ers []EvidenceRecord, cp merkle.Checkpoint) ([]*log.Record, error) {
	var recs []*log.Record
	for i, er := range ers {
		if i > 0 && er.Index <= ers[i-1].Index {
			return nil, fmt.Errorf("%w: record %d after record %d", ErrInvalidEvidence, er.Index, ers[i-1].Index)
		}
		if len(er.Proof) > maxProofHashes {
			return nil, fmt.Errorf("%w: an inclusion proof of %d hashes", ErrInvalidEvidence, len(er.Proof))
		}
		r, err := log.UnmarshalLeaf(er.Leaf)
		if err != nil {
			return nil, fmt.Errorf("%w: record %d: %w", ErrInvalidEvidence, er.Index, err)
		}
		if r.Seq != er.Index || er.Index >= cp.Size {
			return nil, fmt.Errorf("%w: record %d of seq %d under a checkpoint of %d records", ErrInvalidEvidence, er.Index, r.Seq, cp.Size)
		}
		leafHash := rfc6962.DefaultHasher.HashLeaf(er.Leaf)
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, er.Index, cp.Size, leafHash, er.Proof, cp.Root); err != nil {
			return nil, fmt.Errorf("%w: record %d is not in the checkpoint: %w", ErrInvalidEvidence, er.Index, err)
		}
		recs = append(recs, &r)
	}
	return recs, nil
}

// breaksRule applies rule to rec, for each name it sets, against prev if
// prev set the name too, and returns the first refusal.
func breaksRule(rule MapRule, prev, rec *log.Record) error {
	var before []vmap.Name
	if prev != nil {
		before = vmap.Sets(prev)
	}
	for _, n := range vmap.Sets(rec) {
		var p *log.Record
		for _, b := range before {
			if b == n {
				p = prev
			}
		}
		if err := rule(n, p, rec); err != nil {
			return err
		}
	}
	return nil
}

// ruleEvidenceKey distinguishes rule evidence in evidenceKey: the hash of
// its records' leaves.
func ruleEvidenceKey(e Evidence) []byte {
	if len(e.Records) == 0 {
		return nil
	}
	h := sha256.New()
	for _, r := range e.Records {
		h.Write(rfc6962.DefaultHasher.HashLeaf(r.Leaf))
	}
	return h.Sum(nil)
}

// isRuleEvidence reports whether e is rule evidence.
func isRuleEvidence(e Evidence) bool { return len(e.Records) > 0 || len(e.Notes[1]) == 0 }

// ruleBrokenLocked refuses hc, which covers a record that breaks the
// MapRule, and every later checkpoint of its origin (the record stays in
// the origin's log), and has the round loop record and gossip the
// evidence, which uncounts the origin; rs.mu held.
func (r *replicator) ruleBrokenLocked(rs *replicaState, hc heldCheckpoint, v *ruleViolation) {
	rs.brokenAt = v.rec.Seq + 1
	r.m.log.Warn("member's checkpoint covers a record that breaks the map's rules; not counted", "member", rs.origin, "round", hc.cp.Round, "record", v.rec.Seq, "reason", v.err)
	e, err := rs.ruleEvidence(hc, v)
	if err != nil {
		r.m.log.Error("building the evidence of a record that breaks the map's rules", "member", rs.origin, "err", err)
		return
	}
	go r.m.do(context.Background(), func(st *state) { st.blame(e) })
}

// blame records evidence found here against a member not yet uncounted,
// and gossips it.
func (st *state) blame(e Evidence) {
	if os := st.origins[e.Origin]; os != nil && os.equivocated {
		return
	}
	st.recordEvidence(e, true)
}

package audit

import (
	"fmt"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/vmap"
)

// Rule evidence (docs/formats.md, "MasterHash and Evidence records"): a
// checkpoint whose records break the map's rules, shown by one or two of
// its records with their inclusion proofs. The auditor checks the
// inclusion itself and applies the portal's rules (portal.CheckMapRecord),
// which are the definition of what a member checks.

// evidenceRecord is a record of rule evidence.
type evidenceRecord struct {
	Index uint64   `json:"index"`
	Leaf  []byte   `json:"leaf"`
	Proof [][]byte `json:"proof"`
}

// maxRuleRecords is how many records rule evidence holds.
const maxRuleRecords = 2

// verifyRuleEvidence checks rule evidence and returns why its records
// break the rules.
func (k *Keys) verifyRuleEvidence(e evidencePayload) (string, error) {
	if len(e.Records) == 0 || len(e.Records) > maxRuleRecords || e.Root1 != nil || e.Proof != nil {
		return "", fmt.Errorf("rule evidence needs one or two records and nothing else beside its checkpoint (it has %d)", len(e.Records))
	}
	cp, err := k.OpenCheckpoint(e.Notes[0])
	if err != nil {
		return "", fmt.Errorf("note 1: %w", err)
	}
	if cp.Origin != e.Origin {
		return "", fmt.Errorf("note 1 is a checkpoint of %s, not of %s", cp.Origin, e.Origin)
	}
	var recs []*log.Record
	for i, r := range e.Records {
		if i > 0 && r.Index <= e.Records[i-1].Index {
			return "", fmt.Errorf("record %d comes after record %d", r.Index, e.Records[i-1].Index)
		}
		rec, err := includedLeaf(cp, r)
		if err != nil {
			return "", err
		}
		recs = append(recs, rec)
	}
	last, prev := recs[len(recs)-1], (*log.Record)(nil)
	if len(recs) == 2 {
		prev = recs[0]
	}
	for _, n := range ruleNames(last) {
		p := prev
		if prev == nil || !setsName(prev, n) {
			p = nil
		}
		if err := portal.CheckMapRecord(n, p, last); err != nil {
			return fmt.Sprintf("map-rule: %v (under its checkpoint of round %d)", err, cp.Round), nil
		}
	}
	return "", fmt.Errorf("the records of %s keep the map's rules", e.Origin)
}

// includedLeaf parses a record of rule evidence and checks it is the leaf
// at its index under cp.
func includedLeaf(cp Checkpoint, r evidenceRecord) (*log.Record, error) {
	if len(r.Proof) > maxEvidenceProof {
		return nil, fmt.Errorf("record %d: a proof of %d hashes", r.Index, len(r.Proof))
	}
	l, err := ParseLeaf(r.Leaf)
	if err != nil {
		return nil, fmt.Errorf("record %d: %w", r.Index, err)
	}
	if l.Seq != r.Index || r.Index >= cp.Size {
		return nil, fmt.Errorf("record %d has seq %d, under a checkpoint of %d records", r.Index, l.Seq, cp.Size)
	}
	lh := rfc6962.DefaultHasher.HashLeaf(r.Leaf)
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, r.Index, cp.Size, lh, r.Proof, cp.Root); err != nil {
		return nil, fmt.Errorf("record %d is not in the checkpoint of round %d: %w", r.Index, cp.Round, err)
	}
	return &log.Record{Seq: l.Seq, Time: l.Time, Kind: log.Kind(l.Kind), Identifier: l.Identifier,
		Account: l.Account, Payload: l.Payload, Origin: l.Origin}, nil
}

// ruleNames are the names r sets, by the rule mapKeysOf follows.
func ruleNames(r *log.Record) []vmap.Name {
	var names []vmap.Name
	switch r.Kind {
	case "Profile", "Account":
		if r.Identifier != "" {
			names = append(names, vmap.Name{Namespace: vmap.Profile, Name: r.Identifier})
		}
		if r.Kind == "Account" && r.Account != "" {
			names = append(names, vmap.Name{Namespace: vmap.Account, Name: r.Account})
		}
	case "Escrow":
		if r.Identifier != "" {
			names = append(names, vmap.Name{Namespace: vmap.Escrow, Name: r.Identifier})
		}
	}
	return names
}

// setsName reports whether r sets n.
func setsName(r *log.Record, n vmap.Name) bool {
	for _, m := range ruleNames(r) {
		if m == n {
			return true
		}
	}
	return false
}

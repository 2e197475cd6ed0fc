package main

import (
	"github.com/intermesh/intermesh/audit"
	"github.com/intermesh/intermesh/config"
)

// The offline verification 'meshctl get --verify' shares with the auditor:
// thin names over package audit.

// signedCheckpoint is a checkpoint whose signature by its member verified.
type signedCheckpoint = audit.Checkpoint

// auditCertificate is a verified master-hash certificate.
type auditCertificate struct{ *audit.Certificate }

// index returns the position of origin's checkpoint, or -1.
func (c *auditCertificate) index(origin string) int {
	for i, cp := range c.Checkpoints {
		if cp.Origin == origin {
			return i
		}
	}
	return -1
}

// federationKeys are the verifier keys of a federation's members, and what
// the file says of them.
type federationKeys struct {
	keys    *audit.Keys
	quorum  int
	origins []string // in file order
}

// newFederationKeys reads the members' verifier keys.
func newFederationKeys(fed *config.Federation) (*federationKeys, error) {
	keys, err := audit.NewKeys(fed)
	if err != nil {
		return nil, err
	}
	k := &federationKeys{keys: keys, quorum: fed.EffectiveQuorum()}
	for _, m := range fed.Members {
		k.origins = append(k.origins, m.Origin)
	}
	return k, nil
}

func (k *federationKeys) openCheckpoint(signed string) (signedCheckpoint, error) {
	return k.keys.OpenCheckpoint(signed)
}

// verifyMasterNote verifies a certificate: its callers ask for a quorum
// of signatures (the last argument true); a single vote is the auditor's.
func (k *federationKeys) verifyMasterNote(signed string, checkpoints []string, round uint64, _ bool) (*auditCertificate, error) {
	c, err := k.keys.VerifyCertificate(signed, checkpoints, round)
	if err != nil {
		return nil, err
	}
	return &auditCertificate{c}, nil
}

func parseLeaf(b []byte) (audit.Leaf, error) { return audit.ParseLeaf(b) }

func parseRoundResult(payload []byte) (audit.RoundResult, error) {
	return audit.ParseRoundResult(payload)
}

func noteText(signed string) string { return audit.NoteText(signed) }

func verifyInclusion(index, size uint64, leafHash []byte, p [][]byte, root []byte) error {
	return audit.VerifyInclusion(index, size, leafHash, p, root)
}

func verifyConsistency(older, newer signedCheckpoint, p [][]byte) error {
	return audit.VerifyConsistency(older, newer, p)
}

// outcomeCertificate is the outcome of a certified round in a MasterHash
// record.
const outcomeCertificate = audit.OutcomeCertificate

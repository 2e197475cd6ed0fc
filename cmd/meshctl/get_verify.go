package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/intermesh/intermesh/audit"
	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/portal"
)

// getVerification is what 'meshctl get --verify' proved about one Get
// answer, checked offline with the federation file alone
// (golang.org/x/mod/sumdb/note for signatures, transparency-dev/merkle for
// proofs, this command's own parsers of the documented formats).
type getVerification struct {
	// Proved lists what was proved, one statement a line.
	Proved []string
	// Failed says what could not be proved; empty when everything was.
	Failed string `json:",omitempty"`
	// Round is the certified round a proof of the latest version or an
	// absence holds as of.
	Round uint64 `json:",omitempty"`
}

// getVerifier checks Get answers offline against a federation file's
// member keys, with package audit's verifiers.
type getVerifier struct {
	keys            *audit.Keys
	members, quorum int
	// period is the federation's round length, and skew how far this
	// machine's clock may be ahead (freshness, get_latest.go).
	period, skew time.Duration
	// fed is the federation file: the accounts' home members and the
	// members' portal URLs.
	fed *config.Federation
}

// clockSkew is how far ahead of the federation's clocks this machine's
// clock is allowed to be when it judges a certificate's freshness.
const clockSkew = 5 * time.Second

// newGetVerifier reads the federation file whose member keys --verify
// trusts.
func newGetVerifier(file string) (*getVerifier, error) {
	fed, err := config.LoadFederation(file)
	if err != nil {
		return nil, err
	}
	keys, err := audit.NewKeys(fed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &getVerifier{keys: keys, members: len(fed.Members), quorum: fed.EffectiveQuorum(),
		period: fed.EpochPeriod.Duration, skew: clockSkew, fed: fed}, nil
}

// verifyGet checks a Get answer's entries against its proof: each entry's
// leaf is in the signed checkpoint of its log, and that checkpoint extends
// one that a quorum of the federation certified in the latest certificate,
// whose MasterHash record is in the node's own signed checkpoint.
func verifyGet(keys *getVerifier, resp *portal.GetResponse) getVerification {
	var v getVerification
	if err := verifyGetProof(keys, resp, &v); err != nil {
		v.Failed = err.Error()
	}
	return v
}

func verifyGetProof(keys *getVerifier, resp *portal.GetResponse, v *getVerification) error {
	p := resp.Proof
	if p == nil || p.Checkpoint == "" {
		return errors.New("the portal sent no proof (it has no checkpoint yet, or does not prove Get)")
	}
	cp, err := keys.keys.OpenCheckpoint(p.Checkpoint)
	if err != nil {
		return err
	}
	v.Proved = append(v.Proved, fmt.Sprintf("checkpoint of %s at size %d (round %d) is signed by %s's key in the federation file",
		cp.Origin, cp.Size, cp.Round, cp.Origin))
	for _, item := range resp.DataItems {
		if err := verifyGetItem(cp, item); err != nil {
			return err
		}
		v.Proved = append(v.Proved, fmt.Sprintf("entry %s (index %d) is in %s's log: its leaf matches the entry and the inclusion proof ends in that checkpoint's root",
			item.Identifier, *item.Index, cp.Origin))
	}
	cert, round, err := verifyCertificateProof(keys, p.Certificate, v)
	if err != nil {
		return err
	}
	c, rr := p.Certificate, struct{ Round uint64 }{round}
	i := cert.Index(cp.Origin)
	if i < 0 {
		return fmt.Errorf("the certificate of round %d covers no checkpoint of %s", rr.Round, cp.Origin)
	}
	certified := cert.Checkpoints[i]
	switch {
	case certified.Size > cp.Size:
		return fmt.Errorf("the certified checkpoint of %s (size %d) is newer than the one the entries are proved in (size %d); ask again later",
			cp.Origin, certified.Size, cp.Size)
	case certified.Size == cp.Size && !bytes.Equal(certified.Root, cp.Root):
		return fmt.Errorf("%s signed two roots for size %d: the certified one and the proof's", cp.Origin, cp.Size)
	}
	if err := audit.VerifyConsistency(certified, cp, c.Consistency); err != nil {
		return fmt.Errorf("%s's checkpoint at size %d does not extend the certified one at size %d: %w", cp.Origin, cp.Size, certified.Size, err)
	}
	v.Proved = append(v.Proved, fmt.Sprintf("%s's checkpoint at size %d extends its checkpoint at size %d that the federation certified in round %d (consistency proof)",
		cp.Origin, cp.Size, certified.Size, rr.Round))
	return nil
}

// verifyCertificateProof verifies a proof's certificate: the MasterHash
// record holding it is in the node's own signed checkpoint, and a quorum
// of the federation signed it over the checkpoints it lists. It returns
// the certificate and its round.
func verifyCertificateProof(keys *getVerifier, c *portal.CertificateProof, v *getVerification) (*audit.Certificate, uint64, error) {
	if c == nil {
		return nil, 0, fmt.Errorf("no certificate: the node has not committed a master-hash certificate yet")
	}
	own, err := keys.keys.OpenCheckpoint(c.Checkpoint)
	if err != nil {
		return nil, 0, fmt.Errorf("the node's checkpoint: %w", err)
	}
	rec, err := audit.ParseLeaf(c.RecordLeaf)
	if err != nil {
		return nil, 0, fmt.Errorf("the MasterHash record: %w", err)
	}
	if rec.Kind != "MasterHash" || rec.Seq != c.RecordIndex || rec.Origin != own.Origin {
		return nil, 0, fmt.Errorf("the certificate record is a %s record %d of %s, not MasterHash record %d of %s",
			rec.Kind, rec.Seq, rec.Origin, c.RecordIndex, own.Origin)
	}
	if err := audit.VerifyInclusion(c.RecordIndex, own.Size, rfc6962.DefaultHasher.HashLeaf(c.RecordLeaf), c.RecordInclusion, own.Root); err != nil {
		return nil, 0, fmt.Errorf("the MasterHash record %d in %s's checkpoint at size %d: %w", c.RecordIndex, own.Origin, own.Size, err)
	}
	rr, err := audit.ParseRoundResult(rec.Payload)
	if err != nil {
		return nil, 0, err
	}
	if rr.Outcome != audit.OutcomeCertificate {
		return nil, 0, fmt.Errorf("the MasterHash record of round %d holds %q, not a certificate", rr.Round, rr.Outcome)
	}
	cert, err := keys.keys.VerifyCertificate(rr.Note, rr.Checkpoints, rr.Round)
	if err != nil {
		return nil, 0, err
	}
	v.Proved = append(v.Proved, fmt.Sprintf("master-hash certificate of round %d: %d of %d members signed (quorum %d), M_r recomputed from its %d checkpoints; its MasterHash record is entry %d of %s's log, in its signed checkpoint at size %d",
		rr.Round, len(cert.Signers), keys.members, keys.quorum, len(cert.Checkpoints), c.RecordIndex, own.Origin, own.Size))
	return cert, rr.Round, nil
}

// verifyGetItem checks that an item's leaf is what the item says and that
// it is in cp.
func verifyGetItem(cp audit.Checkpoint, item portal.DataItem) error {
	if item.Index == nil || len(item.Leaf) == 0 {
		return fmt.Errorf("entry %s has no index or leaf (ask with --full)", item.Identifier)
	}
	l, err := audit.ParseLeaf(item.Leaf)
	if err != nil {
		return fmt.Errorf("entry %s: %w", item.Identifier, err)
	}
	if l.Seq != *item.Index || l.Identifier != item.Identifier || l.Origin != cp.Origin {
		return fmt.Errorf("entry %s: the leaf is record %d of %s about %q, not index %d of %s",
			item.Identifier, l.Seq, l.Origin, l.Identifier, *item.Index, cp.Origin)
	}
	if err := sameEntry(l.Payload, item.Entry); err != nil {
		return fmt.Errorf("entry %s: %w", item.Identifier, err)
	}
	if *item.Index >= cp.Size {
		return fmt.Errorf("entry %s (index %d) is newer than the checkpoint at size %d; ask again after the next checkpoint",
			item.Identifier, *item.Index, cp.Size)
	}
	if err := audit.VerifyInclusion(*item.Index, cp.Size, rfc6962.DefaultHasher.HashLeaf(item.Leaf), item.Inclusion, cp.Root); err != nil {
		return fmt.Errorf("entry %s (index %d) in %s's checkpoint at size %d: %w", item.Identifier, *item.Index, cp.Origin, cp.Size, err)
	}
	return nil
}

// sameEntry checks that the entry a Get item carries is the one its leaf's
// payload (a portal entry, {"PortalEntry":{..., "Entry": ...}}) holds.
func sameEntry(payload []byte, entry json.RawMessage) error {
	var m struct {
		PortalEntry struct {
			Entry json.RawMessage
		}
	}
	if err := json.Unmarshal(payload, &m); err != nil {
		return fmt.Errorf("the leaf's payload is not a portal entry: %w", err)
	}
	var a, b bytes.Buffer
	if json.Compact(&a, m.PortalEntry.Entry) != nil || json.Compact(&b, entry) != nil || !bytes.Equal(a.Bytes(), b.Bytes()) {
		return errors.New("the entry is not the one in its leaf")
	}
	return nil
}

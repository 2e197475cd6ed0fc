package intermesh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
)

// ErrInvalidEvidence reports evidence whose notes do not both verify with
// the origin's key, or do not conflict.
var ErrInvalidEvidence = errors.New("intermesh: invalid evidence")

// maxEvidenceSize bounds a gossiped Evidence message: two checkpoint notes,
// a reason and, for consistency evidence, a root and a proof of at most
// maxProofHashes hashes; for rule evidence, maxRuleRecords leaves (base64)
// with their inclusion proofs.
const maxEvidenceSize = 2*maxCheckpointSize + 16<<10 + maxRuleRecords*(4*(log.MaxLeafLen+2)/3+maxProofHashes*48)

// maxProofHashes bounds a consistency proof: an RFC 6962 consistency proof
// between trees of fewer than 2^64 leaves has at most 2·64 hashes.
const maxProofHashes = 128

// reasonNotConsistent starts the reason of consistency evidence.
const reasonNotConsistent = "not-consistent"

// VerifyEvidence checks evidence offline, with the federation file alone:
// both notes are checkpoints of e.Origin signed by its key in fed, each in
// its canonical form (the text and the origin's signature line alone, as
// the origin writes it: a copy of a note with another signature line or
// loosened base64 is not a second checkpoint), they are different, and
// they cannot both come from one honest append-only log. It returns why
// they conflict.
//
// Evidence without Root1 and Proof must conflict on its face: the same
// round, a tree that shrank in a later round, the same size with two roots,
// or a prev line of round r+1 that is not the hash of the round-r note.
//
// Consistency evidence (Root1 and Proof set) shows that the second note's
// tree is not an extension of the first's: with (s1, r1) and (s2, r2) the
// notes' sizes and roots, 0 < s1 < s2, Root1 differs from r1, and Proof is
// an RFC 6962 consistency proof from Root1 at s1 to r2 at s2
// (proof.VerifyConsistency of transparency-dev/merkle). So the tree the
// origin signed at s2 has the root Root1 at s1, not the r1 it signed there;
// both cannot be true barring a SHA-256 collision.
//
// Rule evidence needs the map's rule: see VerifyEvidenceWith.
func VerifyEvidence(e Evidence, fed *config.Federation) (string, error) {
	return VerifyEvidenceWith(e, fed, nil)
}

// VerifyEvidenceWith is VerifyEvidence that also checks rule evidence, with
// rule (see MapRule); a nil rule refuses rule evidence.
func VerifyEvidenceWith(e Evidence, fed *config.Federation, rule MapRule) (string, error) {
	fm, ok := fed.Member(e.Origin)
	if !ok {
		return "", fmt.Errorf("%w: %q is not a member of %q", ErrInvalidEvidence, e.Origin, fed.Name)
	}
	v, err := note.NewVerifier(fm.Key)
	if err != nil {
		return "", fmt.Errorf("%w: key of %q: %w", ErrInvalidEvidence, e.Origin, err)
	}
	return verifyEvidence(e, note.VerifierList(v), rule)
}

// verifyEvidence is VerifyEvidenceWith with the verifiers at hand.
func verifyEvidence(e Evidence, vs note.Verifiers, rule MapRule) (string, error) {
	if isRuleEvidence(e) {
		return verifyRuleEvidence(e, vs, rule)
	}
	var hcs [2]heldCheckpoint
	for i, n := range e.Notes {
		if len(n) > maxCheckpointSize {
			return "", fmt.Errorf("%w: note %d is %d bytes, limit %d", ErrInvalidEvidence, i, len(n), maxCheckpointSize)
		}
		cp, err := openCheckpoint(n, vs)
		if err != nil {
			return "", fmt.Errorf("%w: note %d: %w", ErrInvalidEvidence, i, err)
		}
		if cp.Origin != e.Origin {
			return "", fmt.Errorf("%w: note %d is a checkpoint of %q, not %q", ErrInvalidEvidence, i, cp.Origin, e.Origin)
		}
		hcs[i] = heldCheckpoint{cp: cp, note: n, hash: sha256.Sum256(n)}
	}
	if hcs[0].hash == hcs[1].hash {
		return "", fmt.Errorf("%w: the same note twice", ErrInvalidEvidence)
	}
	if e.Root1 != nil || e.Proof != nil {
		return verifyNotConsistent(e, hcs[0].cp, hcs[1].cp)
	}
	why := conflict(hcs[0], hcs[1])
	if why == "" {
		return "", fmt.Errorf("%w: the checkpoints of %q can both be honest", ErrInvalidEvidence, e.Origin)
	}
	return why, nil
}

// verifyNotConsistent checks consistency evidence against its two opened
// checkpoints (see VerifyEvidence).
func verifyNotConsistent(e Evidence, a, b merkle.Checkpoint) (string, error) {
	s1, s2 := a.Size, b.Size
	switch {
	case s1 == 0:
		return "", fmt.Errorf("%w: consistency evidence from an empty tree", ErrInvalidEvidence)
	case s1 >= s2:
		return "", fmt.Errorf("%w: consistency evidence from size %d to size %d, not larger", ErrInvalidEvidence, s1, s2)
	case len(e.Root1) != sha256.Size:
		return "", fmt.Errorf("%w: root1 of %d bytes, want %d", ErrInvalidEvidence, len(e.Root1), sha256.Size)
	case bytes.Equal(e.Root1, a.Root):
		return "", fmt.Errorf("%w: root1 is the root of the first checkpoint", ErrInvalidEvidence)
	case len(e.Proof) > maxProofHashes:
		return "", fmt.Errorf("%w: proof of %d hashes, limit %d", ErrInvalidEvidence, len(e.Proof), maxProofHashes)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, s1, s2, e.Proof, e.Root1, b.Root); err != nil {
		return "", fmt.Errorf("%w: consistency proof from %d to %d: %w", ErrInvalidEvidence, s1, s2, err)
	}
	return fmt.Sprintf("%s: the tree of size %d (round %d) has root %x at size %d, not the root %x of round %d",
		reasonNotConsistent, s2, b.Round, e.Root1, s1, a.Root, a.Round), nil
}

// conflict says why two different checkpoints of one origin cannot both be
// honest, or returns "".
func conflict(a, b heldCheckpoint) string {
	if a.cp.Round == b.cp.Round {
		return fmt.Sprintf("two different checkpoints for round %d", a.cp.Round)
	}
	if a.cp.Round > b.cp.Round {
		a, b = b, a
	}
	return inconsistency(a, b)
}

// validateEvidenceMsg is the evidence topic's validator: the evidence must
// verify (VerifyEvidence); new evidence is recorded, evidence against a
// member already uncounted is ignored.
func (m *Mesh) validateEvidenceMsg(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	return m.record(topicEvidence, from, m.checkEvidenceMsg(ctx, from, msg.Data))
}

func (m *Mesh) checkEvidenceMsg(ctx context.Context, from peer.ID, data []byte) verdict {
	if from == m.host.ID() {
		return accepted
	}
	if len(data) > maxEvidenceSize {
		return rejected("evidence of %d bytes, limit %d", len(data), maxEvidenceSize)
	}
	if isClaim(data) {
		return m.checkClaimMsg(ctx, data)
	}
	var e Evidence
	if err := json.Unmarshal(data, &e); err != nil {
		return rejected("evidence: %v", err)
	}
	if _, ok := m.members[e.Origin]; !ok {
		return rejected("evidence against %q, not a member", e.Origin)
	}
	why, err := verifyEvidence(e, m.verifiers, m.cfg.MapRule)
	if err != nil {
		return rejected("%v", err)
	}
	e.Reason = why // ours, not the sender's words
	return m.offer(ctx, func(st *state) verdict { return st.adoptEvidence(e) })
}

// adoptEvidence records verified evidence received from another member.
func (st *state) adoptEvidence(e Evidence) verdict {
	if os := st.origins[e.Origin]; os != nil && os.equivocated {
		return ignored("%q is already uncounted", e.Origin)
	}
	st.recordEvidence(e, false)
	return accepted
}

// Key of the index of an Evidence record: 'x' 'i' <SHA-256 of both notes>
// → the record's sequence number, 8 bytes big-endian.
const evidenceIndexKind = 'i'

func evidenceIndexKey(e Evidence) []byte {
	k := evidenceKey(e)
	k[1] = evidenceIndexKind
	return k
}

// ErrEvidenceRecorded is returned (wrapped) by EvidenceIndexer for an
// Evidence record of evidence whose record the log already holds.
var ErrEvidenceRecorded = errors.New("intermesh: evidence record already in the log")

// EvidenceIndexer is the log.Indexer that writes the index of each Evidence
// record ('x' 'i' <SHA-256 of both notes> → its sequence number) in the
// transaction that writes the record, and refuses a second Evidence record
// of the same evidence (ErrEvidenceRecorded). The node registers it in its
// log's Options.Indexers; then a crash can never leave an Evidence record
// without its index, so the record is never appended twice. Records of
// other kinds, and Evidence records whose payload is not Evidence JSON,
// pass untouched.
type EvidenceIndexer struct{}

// Index implements log.Indexer.
func (EvidenceIndexer) Index(txn *badger.Txn, rec *log.Record) error {
	if rec.Kind != KindEvidence {
		return nil
	}
	var e Evidence
	if err := json.Unmarshal(rec.Payload, &e); err != nil || e.Origin != rec.Identifier {
		return nil
	}
	key := evidenceIndexKey(e)
	switch _, err := txn.Get(key); {
	case err == nil:
		return fmt.Errorf("%w: against %q", ErrEvidenceRecorded, e.Origin)
	case !errors.Is(err, badger.ErrKeyNotFound):
		return fmt.Errorf("intermesh: reading the evidence index: %w", err)
	}
	return txn.Set(key, binary.BigEndian.AppendUint64(nil, rec.Seq))
}

// appendEvidence appends an Evidence record (the evidence's JSON) to the
// node's log, once per piece of evidence. With EvidenceIndexer in the log
// the record and its index are written in one transaction; without it
// (a log the node did not open) the index is written after the record.
func (m *Mesh) appendEvidence(ctx context.Context, e Evidence) error {
	if m.cfg.Log == nil {
		return nil
	}
	if _, ok := m.EvidenceRecord(e); ok {
		return nil
	}
	payload, err := json.Marshal(e)
	if err != nil {
		return err
	}
	rec, err := m.cfg.Log.Append(ctx, log.Record{Kind: KindEvidence, Identifier: e.Origin, Payload: payload})
	if errors.Is(err, ErrEvidenceRecorded) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("intermesh: appending evidence against %q: %w", e.Origin, err)
	}
	if _, ok := m.EvidenceRecord(e); ok || m.store.db == nil {
		return nil
	}
	return m.store.db.Update(func(txn *badger.Txn) error {
		return txn.Set(evidenceIndexKey(e), binary.BigEndian.AppendUint64(nil, rec.Seq))
	})
}

// EvidenceRecord returns the index of the Evidence record of e in the
// node's log, if it was appended.
func (m *Mesh) EvidenceRecord(e Evidence) (uint64, bool) {
	if m.store.db == nil {
		return 0, false
	}
	var seq uint64
	err := m.store.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(evidenceIndexKey(e))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("evidence index of %d bytes", len(v))
			}
			seq = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	return seq, err == nil
}

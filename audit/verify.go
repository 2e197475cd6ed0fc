package audit

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"slices"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/config"
)

// The auditor's verification of signed notes, master-hash certificates and
// equivocation evidence, from the federation file alone, with
// golang.org/x/mod/sumdb/note and transparency-dev/merkle.

// Keys are the note verifiers of a federation's members.
type Keys struct {
	name     string
	quorum   int
	origins  []string                 // in file order
	byOrigin map[string]note.Verifier // one per member
	all      note.Verifiers
	http     map[string]string // member origin → portal URL
	// versions are the federation's versions after the genesis file, in
	// order (setChain); empty when it never changed.
	versions []keyVersion
}

// keyVersion is one version of the federation as the audit needs it.
type keyVersion struct {
	effective uint64
	quorum    int
	byOrigin  map[string]note.Verifier
}

// NewKeys reads the members' verifier keys.
func NewKeys(fed *config.Federation) (*Keys, error) {
	k := &Keys{
		name: fed.Name, quorum: fed.EffectiveQuorum(),
		byOrigin: map[string]note.Verifier{}, http: map[string]string{},
	}
	var list []note.Verifier
	for i, m := range fed.Members {
		v, err := note.NewVerifier(m.Key)
		if err != nil {
			return nil, fmt.Errorf("federation member[%d] (%s): key: %w", i, m.Origin, err)
		}
		if v.Name() != m.Origin {
			return nil, fmt.Errorf("federation member[%d]: key name %q is not the origin %q", i, v.Name(), m.Origin)
		}
		k.byOrigin[m.Origin] = v
		k.origins = append(k.origins, m.Origin)
		k.http[m.Origin] = m.HTTP
		list = append(list, v)
	}
	k.all = note.VerifierList(list...)
	return k, nil
}

// OpenCheckpoint verifies a signed checkpoint note: its origin is a member,
// it carries a valid signature by that member's key (and no invalid one by
// another member's), and its text is in the documented format.
func (k *Keys) OpenCheckpoint(signed string) (Checkpoint, error) {
	text := NoteText(signed)
	cp, err := parseCheckpointText(text)
	if err != nil {
		return Checkpoint{}, err
	}
	v, ok := k.keyOf(cp.Origin, cp.Round)
	if !ok {
		return Checkpoint{}, fmt.Errorf("the checkpoint's origin %q is not a federation member in round %d", cp.Origin, cp.Round)
	}
	n, err := note.Open([]byte(signed), k.all)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint of %s: signature: %w", cp.Origin, err)
	}
	if n.Text != text {
		return Checkpoint{}, fmt.Errorf("checkpoint of %s: the note's text is not its first lines", cp.Origin)
	}
	for _, s := range n.Sigs {
		if s.Name == v.Name() && s.Hash == v.KeyHash() {
			cp.Note = signed
			return cp, nil
		}
	}
	return Checkpoint{}, fmt.Errorf("checkpoint of %s: not signed by %s's key", cp.Origin, cp.Origin)
}

// Certificate is a verified master-hash note and its checkpoints.
type Certificate struct {
	Vote
	Note        string
	Signers     []string     // distinct member signers, sorted
	Checkpoints []Checkpoint // origin order
}

// Index returns the position of origin's checkpoint in c.Checkpoints, or
// -1 when the certificate covers none of origin's.
func (c *Certificate) Index(origin string) int {
	for i, cp := range c.Checkpoints {
		if cp.Origin == origin {
			return i
		}
	}
	return -1
}

// VerifyCertificate verifies a master-hash certificate of round: a note
// signed by at least the quorum of distinct members in force in that
// round, whose M_r is the one recomputed from checkpoints, each signed by
// its origin, of that round, in strictly increasing origin order.
func (k *Keys) VerifyCertificate(signed string, checkpoints []string, round uint64) (*Certificate, error) {
	return k.verifyMasterNote(signed, checkpoints, round, true)
}

// verifyMasterNote checks a master-hash note and the checkpoints it covers:
// the note's signatures are members' and valid, its text is a vote of the
// federation for round, every checkpoint is signed by its origin, is of
// that round and in strictly increasing origin order, and M_r recomputed
// from them is the note's, with as many checkpoints as the note counts.
// With quorum set it also requires at least the federation's quorum of
// distinct member signatures (a certificate, not a single vote).
func (k *Keys) verifyMasterNote(signed string, checkpoints []string, round uint64, quorum bool) (*Certificate, error) {
	n, err := note.Open([]byte(signed), k.all)
	if err != nil {
		return nil, fmt.Errorf("round %d: master-hash note signatures: %w", round, err)
	}
	v, err := ParseVoteText(k.name, n.Text)
	if err != nil {
		return nil, fmt.Errorf("round %d: %w", round, err)
	}
	if v.Round != round {
		return nil, fmt.Errorf("round %d: the master-hash note is for round %d", round, v.Round)
	}
	c := &Certificate{Vote: v, Note: signed}
	for _, s := range n.Sigs {
		// Only the keys of the members in force in the round count.
		if mv, ok := k.verifierAt(s.Name, round); ok && mv.KeyHash() == s.Hash && !slices.Contains(c.Signers, s.Name) {
			c.Signers = append(c.Signers, s.Name)
		}
	}
	slices.Sort(c.Signers)
	if q := k.quorumAt(round); quorum && len(c.Signers) < q {
		return nil, fmt.Errorf("round %d: %d signatures of the members in force, the quorum is %d", round, len(c.Signers), q)
	}
	if v.Count != uint64(len(checkpoints)) {
		return nil, fmt.Errorf("round %d: the note counts %d checkpoints, %d are listed", round, v.Count, len(checkpoints))
	}
	for i, s := range checkpoints {
		cp, err := k.OpenCheckpoint(s)
		if err != nil {
			return nil, fmt.Errorf("round %d: checkpoint %d: %w", round, i, err)
		}
		if cp.Round != round {
			return nil, fmt.Errorf("round %d: the checkpoint of %s is for round %d", round, cp.Origin, cp.Round)
		}
		if _, member := k.verifierAt(cp.Origin, round); !member {
			return nil, fmt.Errorf("round %d: %s is not a member in force in that round", round, cp.Origin)
		}
		if i > 0 && c.Checkpoints[i-1].Origin >= cp.Origin {
			return nil, fmt.Errorf("round %d: checkpoints not in strictly increasing origin order at %s", round, cp.Origin)
		}
		c.Checkpoints = append(c.Checkpoints, cp)
	}
	mh := masterHash(c.Checkpoints)
	if !bytes.Equal(mh, v.MasterHash) {
		return nil, fmt.Errorf("round %d: M_r recomputed from the %d checkpoints is %s, the note says %s",
			round, len(checkpoints), b64(mh), b64(v.MasterHash))
	}
	return c, nil
}

// masterLeafHash is the RFC 6962 leaf hash of a checkpoint in the
// master-hash tree: the leaf is origin || SHA-256(signed note).
func masterLeafHash(cp Checkpoint) []byte {
	return rfc6962.DefaultHasher.HashLeaf(append([]byte(cp.Origin), noteDigest(cp.Note)...))
}

// masterHash is M_r: the RFC 6962 root over the checkpoints' master leaves,
// in the order given (origin order).
func masterHash(cps []Checkpoint) []byte {
	hashes := make([][]byte, len(cps))
	for i, cp := range cps {
		hashes[i] = masterLeafHash(cp)
	}
	root, err := treeRoot(hashes)
	if err != nil {
		return nil
	}
	return root
}

// treeRoot is the RFC 6962 root over leaf hashes, with compact ranges.
func treeRoot(leafHashes [][]byte) ([]byte, error) {
	if len(leafHashes) == 0 {
		return rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	for _, h := range leafHashes {
		if err := r.Append(h, nil); err != nil {
			return nil, fmt.Errorf("tree root: %w", err)
		}
	}
	return r.GetRootHash(nil)
}

// RootsAt returns the RFC 6962 roots of the first n leaves for each n in
// sizes that is at most len(leafHashes), in one pass.
func RootsAt(leafHashes [][]byte, sizes []uint64) (map[uint64][]byte, error) {
	sizes = slices.Clone(sizes)
	slices.Sort(sizes)
	sizes = slices.Compact(sizes)
	out := map[uint64][]byte{}
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	r := rf.NewEmptyRange(0)
	i := 0
	for _, size := range sizes {
		if size > uint64(len(leafHashes)) {
			break
		}
		for ; uint64(i) < size; i++ {
			if err := r.Append(leafHashes[i], nil); err != nil {
				return nil, fmt.Errorf("tree root: %w", err)
			}
		}
		if size == 0 {
			out[0] = rfc6962.DefaultHasher.EmptyRoot()
			continue
		}
		root, err := r.GetRootHash(nil)
		if err != nil {
			return nil, fmt.Errorf("tree root at %d: %w", size, err)
		}
		out[size] = root
	}
	return out, nil
}

// VerifyInclusion checks an RFC 6962 inclusion proof.
func VerifyInclusion(index, size uint64, leafHash []byte, p [][]byte, root []byte) error {
	return proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leafHash, p, root)
}

// VerifyConsistency checks an RFC 6962 consistency proof between two
// checkpoints of one origin.
func VerifyConsistency(older, newer Checkpoint, p [][]byte) error {
	if older.Size > newer.Size {
		return fmt.Errorf("the tree shrank from %d to %d", older.Size, newer.Size)
	}
	return proof.VerifyConsistency(rfc6962.DefaultHasher, older.Size, newer.Size, p, older.Root, newer.Root)
}

// conflict says why two checkpoints of one origin, both validly signed,
// cannot both be honest, or returns "" if they can. It knows the conflicts
// that two notes prove alone: one round with two different checkpoints, one
// size with two roots or two map lines, a tree that shrank in a later round, and a
// round-r+1 checkpoint whose prev line is not the hash of the round-r note.
func conflict(a, b Checkpoint) string {
	if a.Origin != b.Origin || NoteText(a.Note) == NoteText(b.Note) {
		return ""
	}
	if a.Round > b.Round {
		a, b = b, a
	}
	switch {
	case a.Size == b.Size && !bytes.Equal(a.Root, b.Root):
		return fmt.Sprintf("two roots for tree size %d (%s in round %d, %s in round %d)", a.Size, b64(a.Root), a.Round, b64(b.Root), b.Round)
	case a.Size == b.Size && len(a.Map) > 0 && len(b.Map) > 0 && !bytes.Equal(a.Map, b.Map):
		return fmt.Sprintf("two map roots for tree size %d (%s in round %d, %s in round %d)", a.Size, b64(a.Map), a.Round, b64(b.Map), b.Round)
	case a.Round == b.Round:
		return fmt.Sprintf("two checkpoints for round %d (sizes %d and %d)", a.Round, a.Size, b.Size)
	case a.Size > b.Size:
		return fmt.Sprintf("the tree shrank from %d in round %d to %d in round %d", a.Size, a.Round, b.Size, b.Round)
	case b.Round == a.Round+1 && !bytes.Equal(b.Prev, noteDigest(a.Note)):
		return fmt.Sprintf("the round %d checkpoint's prev line is not the hash of the round %d checkpoint", b.Round, a.Round)
	}
	return ""
}

// verifyEvidence checks a claim of misbehaviour: both notes are checkpoints
// signed by origin's key, and they conflict on their face or, for
// consistency evidence, the consistency proof shows that the later tree has
// another root (e.Root1) at the earlier size; or, for rule evidence (no
// second note), its records break the map's rules (verifyRuleEvidence).
// It returns why.
func (k *Keys) verifyEvidence(e evidencePayload) (string, error) {
	if e.Notes[1] == "" {
		return k.verifyRuleEvidence(e)
	}
	origin, notes := e.Origin, e.Notes
	var cps [2]Checkpoint
	for i, n := range notes {
		cp, err := k.OpenCheckpoint(n)
		if err != nil {
			return "", fmt.Errorf("note %d: %w", i+1, err)
		}
		if cp.Origin != origin {
			return "", fmt.Errorf("note %d is a checkpoint of %s, not of %s", i+1, cp.Origin, origin)
		}
		cps[i] = cp
	}
	if why := conflict(cps[0], cps[1]); why != "" {
		return why, nil
	}
	if e.Root1 == nil && e.Proof == nil {
		return "", fmt.Errorf("the two checkpoints of %s do not conflict", origin)
	}
	return notConsistent(cps[0], cps[1], e.Root1, e.Proof)
}

// notConsistent checks consistency evidence: a proof that the tree of the
// larger checkpoint b has root root1 at a's size, while a says it is a.Root.
func notConsistent(a, b Checkpoint, root1 []byte, p [][]byte) (string, error) {
	switch {
	case a.Size == 0 || a.Size >= b.Size:
		return "", fmt.Errorf("consistency evidence needs a first tree smaller than the second and not empty (sizes %d and %d)", a.Size, b.Size)
	case len(root1) != 32:
		return "", fmt.Errorf("consistency evidence: root1 is %d bytes, want 32", len(root1))
	case bytes.Equal(root1, a.Root):
		return "", fmt.Errorf("consistency evidence: root1 is the first checkpoint's own root, so nothing conflicts")
	case len(p) > maxEvidenceProof:
		return "", fmt.Errorf("consistency evidence: a proof of %d hashes", len(p))
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, a.Size, b.Size, p, root1, b.Root); err != nil {
		return "", fmt.Errorf("consistency evidence: the proof does not verify: %w", err)
	}
	return fmt.Sprintf("the tree of size %d (round %d) has root %s at size %d, not %s as round %d says",
		b.Size, b.Round, b64(root1), a.Size, b64(a.Root), a.Round), nil
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

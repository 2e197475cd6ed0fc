package intermesh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Claims. A member whose recomputation of another member's map does not
// give the map line of its checkpoint refuses the checkpoint (it is never
// counted there) and publishes a claim: a note it signs, naming the
// checkpoint by its hash and giving the root it recomputed, beside the
// checkpoint itself. A claim is not evidence: nobody can check it without
// the records. Every member recomputes every checkpoint anyway, so a
// claim changes nothing anywhere: a receiver compares it with its own
// recomputation and says whether it confirms it, refutes it or has not
// recomputed the checkpoint yet (log and intermesh_map_claims_total). A
// member that claims falsely makes honest members blame nobody and count
// the checkpoint all the same; the operators see who claimed what.
//
// The claim note's text is
//
//	<federation>/claim
//	map <base64 SHA-256 of the checkpoint note>
//	root <base64 recomputed root>
//
// and it travels on the evidence topic as
// {"claim":"<signed claim note>","checkpoint":"<the checkpoint note>"}.

// maxClaimSize bounds a claim message: the claim note and the checkpoint.
const maxClaimSize = 2*maxCheckpointSize + 1<<10

// claimMsg is a claim as gossiped.
type claimMsg struct {
	Claim      string `json:"claim"`
	Checkpoint string `json:"checkpoint"`
}

// claimText is the text of a claim note.
func claimText(federation string, cpHash [32]byte, root []byte) string {
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("%s/claim\nmap %s\nroot %s\n", federation, b64(cpHash[:]), b64(root))
}

// claim is a verified claim.
type claim struct {
	by   string         // the claimant
	hc   heldCheckpoint // the checkpoint claimed wrong
	root []byte         // the claimant's recomputed root
}

// publishClaim signs and gossips a claim that hc's map line is not root.
func (m *Mesh) publishClaim(hc heldCheckpoint, root []byte) {
	signed, err := note.Sign(&note.Note{Text: claimText(m.fed.Name, hc.hash, root)}, m.signer)
	if err != nil {
		m.log.Error("signing a map claim", "err", err)
		return
	}
	data, err := json.Marshal(claimMsg{Claim: string(signed), Checkpoint: string(hc.note)})
	if err != nil {
		return
	}
	m.metrics.mapClaims.WithLabelValues(m.self.origin, "published").Inc()
	m.gossip(topicEvidence, data)
}

// isClaim reports whether an evidence topic message is a claim.
func isClaim(data []byte) bool {
	var probe struct {
		Claim *string `json:"claim"`
	}
	return json.Unmarshal(data, &probe) == nil && probe.Claim != nil
}

// checkClaimMsg validates a gossiped claim: the claim note is signed by
// exactly one member, the checkpoint by another, of a round in the window,
// the note names the checkpoint and a root other than its map line. A
// claimant's first claim against a checkpoint is taken and relayed; a
// repeat (another root for the same checkpoint) is ignored.
func (m *Mesh) checkClaimMsg(ctx context.Context, data []byte) verdict {
	if len(data) > maxClaimSize {
		return rejected("claim of %d bytes, limit %d", len(data), maxClaimSize)
	}
	var cm claimMsg
	if err := json.Unmarshal(data, &cm); err != nil {
		return rejected("claim: %v", err)
	}
	c, err := m.openClaim(cm)
	if err != nil {
		return rejected("claim: %v", err)
	}
	if !m.inWindow(c.hc.cp.Round) {
		return ignored("claim about round %d, outside the window", c.hc.cp.Round)
	}
	return m.offer(ctx, func(st *state) verdict { return st.adoptClaim(c) })
}

// openClaim verifies a claim message's notes.
func (m *Mesh) openClaim(cm claimMsg) (claim, error) {
	n, err := note.Open([]byte(cm.Claim), m.verifiers)
	if err != nil {
		return claim{}, err
	}
	if len(n.Sigs) != 1 || len(n.UnverifiedSigs) != 0 {
		return claim{}, fmt.Errorf("a claim note needs one member's signature alone")
	}
	cp, err := openCheckpoint([]byte(cm.Checkpoint), m.verifiers)
	if err != nil {
		return claim{}, fmt.Errorf("its checkpoint: %w", err)
	}
	hc := heldCheckpoint{cp: cp, note: []byte(cm.Checkpoint), hash: sha256.Sum256([]byte(cm.Checkpoint))}
	by := n.Sigs[0].Name
	root, err := parseClaimText(n.Text, m.fed.Name, hc.hash)
	switch {
	case err != nil:
		return claim{}, err
	case by == cp.Origin:
		return claim{}, fmt.Errorf("%s claims its own checkpoint wrong", by)
	case bytes.Equal(root, cp.Map):
		return claim{}, fmt.Errorf("the claimed root is the checkpoint's own map line")
	}
	return claim{by: by, hc: hc, root: root}, nil
}

// parseClaimText parses a claim note's text for a checkpoint of hash h
// and returns the claimed root.
func parseClaimText(text, federation string, h [32]byte) ([]byte, error) {
	lines := strings.Split(text, "\n")
	if len(lines) != 4 || lines[3] != "" || lines[0] != federation+"/claim" {
		return nil, fmt.Errorf("not a claim note of %s", federation)
	}
	if lines[1] != "map "+base64.StdEncoding.EncodeToString(h[:]) {
		return nil, fmt.Errorf("the claim names another checkpoint")
	}
	root, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[2], "root "))
	if err != nil || !strings.HasPrefix(lines[2], "root ") || len(root) != sha256.Size ||
		base64.StdEncoding.EncodeToString(root) != lines[2][len("root "):] {
		return nil, fmt.Errorf("the claim's root line is not the base64 of 32 bytes")
	}
	return root, nil
}

// claimOutcome says what this node makes of a claim against hc: it
// counted hc (its recomputation gives the map line: refuted), refused it
// for its map line (confirmed), or neither yet (pending).
func (st *state) claimOutcome(hc heldCheckpoint) string {
	os := st.origins[hc.cp.Origin]
	switch rs := st.rounds[hc.cp.Round]; {
	case os != nil && os.counted[hc.cp.Round] == hc.hash:
		return "refuted"
	case rs != nil && rs.mapRefused[hc.hash]:
		return "confirmed"
	}
	return "pending"
}

// adoptClaim takes a verified claim in its round, if this node holds the
// round (a claim creates none): the first of each claimant against each
// checkpoint is counted by outcome and logged; nothing else changes.
func (st *state) adoptClaim(c claim) verdict {
	rs := st.rounds[c.hc.cp.Round] // a claim creates no round
	if rs == nil {
		return ignored("claim about round %d, which this node holds nothing of", c.hc.cp.Round)
	}
	key := c.by + "\n" + string(c.hc.hash[:])
	switch {
	case rs.claims[key]:
		return ignored("%s claimed against this checkpoint already", c.by)
	case rs.claimsBy[c.by] >= len(st.m.members):
		return ignored("%s claimed against %d checkpoints of round %d already", c.by, rs.claimsBy[c.by], rs.round)
	}
	rs.claims[key] = true
	rs.claimsBy[c.by]++
	outcome := st.claimOutcome(c.hc)
	st.m.metrics.mapClaims.WithLabelValues(c.by, outcome).Inc()
	st.m.log.Warn("a member claims a checkpoint's map line is not its records' map; nothing is done on a claim, each member recomputes",
		"claimant", c.by, "member", c.hc.cp.Origin, "round", c.hc.cp.Round, "here", outcome)
	return accepted
}

// refuseMap notes that this node refused hc for its map line and publishes
// its claim (once per checkpoint).
func (st *state) refuseMap(hc heldCheckpoint, root []byte) {
	rs := st.round(hc.cp.Round)
	if rs == nil || rs.mapRefused[hc.hash] {
		return
	}
	rs.mapRefused[hc.hash] = true
	st.m.publishClaim(hc, root)
}

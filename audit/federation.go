package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/config"
)

// The audit across federation changes. The federation file is version 0;
// later versions are signed updates (docs/formats.md, Federation updates)
// that every member appends to its log as FederationUpdate records. The
// auditor learns the chain from the nodes (GET /federation/updates),
// verifies every step from the federation file, then judges each
// checkpoint and certificate by the members, keys and quorum in force in
// its round, and checks that every FederationUpdate record in a log is
// the certified step of that chain.

// setChain makes k judge each round by the version of chain in force then.
func (k *Keys) setChain(chain []*config.FederationVersion) error {
	seen := map[string]bool{}
	var list []note.Verifier
	k.versions = nil
	for i, v := range chain {
		kv := keyVersion{effective: v.Effective, quorum: v.Quorum, byOrigin: map[string]note.Verifier{}}
		for _, m := range v.Members {
			nv, err := note.NewVerifier(m.Key)
			if err != nil {
				return fmt.Errorf("federation version %d: member %s: %w", v.Version, m.Origin, err)
			}
			kv.byOrigin[m.Origin] = nv
			if !seen[m.Key] {
				seen[m.Key] = true
				list = append(list, nv)
			}
			if _, known := k.http[m.Origin]; !known {
				k.origins = append(k.origins, m.Origin)
			}
			if m.HTTP != "" || k.http[m.Origin] == "" {
				k.http[m.Origin] = m.HTTP
			}
		}
		if i > 0 {
			k.versions = append(k.versions, kv)
		}
	}
	k.all = note.VerifierList(list...)
	return nil
}

// verifierAt is origin's key in round, if it is a member then.
func (k *Keys) verifierAt(origin string, round uint64) (note.Verifier, bool) {
	for i := len(k.versions) - 1; i >= 0; i-- {
		if k.versions[i].effective <= round {
			v, ok := k.versions[i].byOrigin[origin]
			return v, ok
		}
	}
	v, ok := k.byOrigin[origin]
	return v, ok
}

// keyOf is the key origin's checkpoints of round are signed with: its key
// in force in that round; for a checkpoint made after it was removed (a
// retired member's log stays auditable), its key in the last version
// before round that lists it; for one made before it joined, its key in
// the first version that lists it. A certificate still counts only
// members in force (verifyMasterNote).
func (k *Keys) keyOf(origin string, round uint64) (note.Verifier, bool) {
	if v, ok := k.verifierAt(origin, round); ok {
		return v, true
	}
	for i := len(k.versions) - 1; i >= 0; i-- {
		if v, ok := k.versions[i].byOrigin[origin]; ok && k.versions[i].effective <= round {
			return v, true
		}
	}
	if v, ok := k.byOrigin[origin]; ok {
		return v, true
	}
	for _, kv := range k.versions {
		if v, ok := kv.byOrigin[origin]; ok && kv.effective > round {
			return v, true
		}
	}
	return nil, false
}

// quorumAt is the quorum in force in round.
func (k *Keys) quorumAt(round uint64) int {
	for i := len(k.versions) - 1; i >= 0; i-- {
		if k.versions[i].effective <= round {
			return k.versions[i].quorum
		}
	}
	return k.quorum
}

// loadFederationChain asks each node for the federation's updates and
// keeps the longest chain that verifies from the federation file; a node
// whose chain does not verify is noted in bad.
func (a *auditor) loadFederationChain(ctx context.Context, urls []string) (chain []*config.FederationVersion, bad map[string]error) {
	bad = map[string]error{}
	chain = []*config.FederationVersion{config.Genesis(a.cfg.Federation)}
	a.chainNotes = nil
	for _, u := range urls {
		notes, err := getUpdatesOf(ctx, u)
		if err != nil {
			continue // an older node without the endpoint, or down: its records are still checked
		}
		c, err := config.VerifyFederationChain(a.cfg.Federation, notes)
		if err != nil {
			bad[u] = err
			continue
		}
		if len(c) > len(chain) {
			chain, a.chainNotes = c, notes
		}
	}
	return chain, bad
}

// maxUpdatesBody bounds the answer of GET /federation/updates.
const maxUpdatesBody = 4 << 20

// updatesTimeout bounds one GET /federation/updates.
const updatesTimeout = 15 * time.Second

// getUpdatesOf reads a node's GET /federation/updates: the signed updates
// from version 1 on, as {"Updates":["<note>",...]}.
func getUpdatesOf(ctx context.Context, base string) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, updatesTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/federation/updates", nil)
	if err != nil {
		return nil, fmt.Errorf("GET /federation/updates: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET /federation/updates: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /federation/updates: %s", resp.Status)
	}
	var body struct{ Updates []string }
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxUpdatesBody)).Decode(&body); err != nil {
		return nil, fmt.Errorf("GET /federation/updates: %w", err)
	}
	out := make([][]byte, len(body.Updates))
	for i, u := range body.Updates {
		out[i] = []byte(u)
	}
	return out, nil
}

// checkFederationRecord checks a FederationUpdate record: it is the
// certified step to its version of the chain the audit follows, and it is
// not backdated: the log certified no round from its effective round on
// before it (the records are checked in log order).
func (a *auditor) checkFederationRecord(n *nodeAudit, idx uint64, leaf *Leaf) {
	var v uint64
	if _, err := fmt.Sscanf(leaf.Identifier, "federation/%d", &v); err != nil || fmt.Sprintf("federation/%d", v) != leaf.Identifier || v == 0 {
		a.report.fail(n.rep, CheckFederationRecords, "record %d: identifier %q is not federation/<version>", idx, leaf.Identifier)
		return
	}
	if v >= uint64(len(a.chain)) {
		a.report.fail(n.rep, CheckFederationRecords, "record %d: version %d is not in the federation's verified chain (%d versions)", idx, v, len(a.chain)-1)
		return
	}
	u, err := config.CheckFederationUpdate(a.chain[v-1], leaf.Payload)
	switch {
	case err != nil:
		a.report.fail(n.rep, CheckFederationRecords, "record %d: %v", idx, err)
	case !u.Certified:
		a.report.fail(n.rep, CheckFederationRecords, "record %d: version %d is not certified", idx, v)
	case u.Next.Hash() != a.chain[v].Hash():
		a.report.fail(n.rep, CheckFederationRecords, "record %d: version %d differs from the chain's", idx, v)
	case n.rep.RoundsCertified > 0 && n.rep.LastRound >= u.Next.Effective:
		// The log certified round LastRound under the version before, then
		// took a version in force from that round or earlier: its signers
		// rewrote the members of rounds already certified.
		a.report.fail(n.rep, CheckFederationRecords,
			"record %d: version %d is backdated: in force from round %d, but the log certified round %d before it; signed by %s",
			idx, v, u.Next.Effective, n.rep.LastRound, strings.Join(u.Signers, ", "))
	default:
		a.report.pass(n.rep, CheckFederationRecords)
	}
}

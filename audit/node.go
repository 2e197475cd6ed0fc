package audit

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
)

// nodeAudit is what the audit fetched from one node and verified.
type nodeAudit struct {
	rep      *NodeReport
	client   *client.Client
	own      *logCopy            // the node's own log
	replicas map[string]*logCopy // the replicas it serves, by origin
	// certs are the verified certificates of the node's MasterHash
	// records: certs[round] is the first record's; byIndex by record index.
	certs   map[uint64]*Certificate
	byIndex map[uint64]*Certificate
	// checked is the number of own entries whose records were checked.
	checked uint64
	// seen are the verified checkpoints the node showed, and where.
	seen []observation
}

// observation is a verified checkpoint and where the audit saw it.
type observation struct {
	cp    Checkpoint
	where string
}

// maxProblems bounds the entries problems reported one by one per log.
const maxProblems = 10

// statusAttempts is how often the Status proofs are fetched again when they
// do not verify: a checkpoint closing between the parts of one Status
// answer makes a proof refer to a checkpoint the answer does not carry.
const statusAttempts = 3

// unreachable reports whether err is a failure to reach a node at all (no
// connection, a timeout), as opposed to an answer that is wrong.
func unreachable(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue)
}

// auditNode runs the checks of one node: checkpoint, entries, Status proof
// chains, MasterHash records, replicas and evidence.
func (a *auditor) auditNode(ctx context.Context, u string) *nodeAudit {
	n := &nodeAudit{
		rep:   &NodeReport{URL: u, Origin: a.keys.originOf(u)},
		certs: map[uint64]*Certificate{}, byIndex: map[uint64]*Certificate{},
		replicas: map[string]*logCopy{},
	}
	a.report.Nodes = append(a.report.Nodes, n.rep)
	r := a.report
	c, err := a.client(u)
	if err != nil {
		r.fail(n.rep, CheckReachable, "%v", err)
		return n
	}
	n.client = c
	raw, err := c.Checkpoint(ctx)
	if err != nil {
		if unreachable(err) {
			// Down or cut off: reported as such, not failed; the other
			// nodes' checks (their replicas of this member, the
			// certificates covering it) still judge what it signed.
			n.rep.Unreachable = err.Error()
			return n
		}
		r.fail(n.rep, CheckReachable, "GET /checkpoint: %v", err)
		return n
	}
	st, err := c.Status(ctx)
	if err != nil {
		r.fail(n.rep, CheckReachable, "Status: %v", err)
		return n
	}
	r.pass(n.rep, CheckReachable)
	// The latest valid checkpoint of the two; the checks go on without one
	// (the checkpoints of the node in certificates still check its entries).
	var latest Checkpoint
	for _, c := range []struct{ note, where string }{{string(raw), "/checkpoint"}, {st.CheckpointValue, "Status"}} {
		if cp, ok := a.ownCheckpoint(n, c.note, c.where); ok && cp.Size >= latest.Size {
			latest = cp
		}
	}
	n.rep.Size = latest.Size
	if n.rep.Origin == "" {
		return n // neither the federation file nor a checkpoint says whose node it is
	}

	ok := a.fetchOwnLog(ctx, n, latest)
	if n.own != nil {
		defer a.reportProblems(n, n.own, "")
	}
	if !ok {
		return n
	}
	a.checkRecords(n)
	a.checkStatus(ctx, n, st)
	if !a.cfg.SkipReplicas {
		a.fetchReplicas(ctx, n)
	}
	return n
}

// ownCheckpoint verifies a checkpoint of the node's own log: signed by the
// member whose portal the node is, or (for a node not named in the
// federation file) by the member it claims to be.
func (a *auditor) ownCheckpoint(n *nodeAudit, signed, where string) (Checkpoint, bool) {
	r := a.report
	cp, err := a.keys.OpenCheckpoint(signed)
	if err != nil {
		if n.rep.Origin == "" {
			if c, perr := parseCheckpointText(NoteText(signed)); perr == nil {
				n.rep.Origin = c.Origin
			}
		}
		r.fail(n.rep, CheckCheckpoint, "%s: %v", where, err)
		return cp, false
	}
	if n.rep.Origin == "" {
		n.rep.Origin = cp.Origin
	}
	if cp.Origin != n.rep.Origin {
		r.fail(n.rep, CheckCheckpoint, "%s: a checkpoint of %s, but the federation file says this is %s's portal", where, cp.Origin, n.rep.Origin)
		return cp, false
	}
	r.pass(n.rep, CheckCheckpoint)
	n.observe(cp, fmt.Sprintf("%s of %s", where, n.rep.label()))
	return cp, true
}

func (n *nodeAudit) observe(cp Checkpoint, where string) {
	n.seen = append(n.seen, observation{cp: cp, where: where})
}

// fetchOwnLog copies the node's own log and reports the entries check; it
// reports false when nothing more can be checked.
func (a *auditor) fetchOwnLog(ctx context.Context, n *nodeAudit, latest Checkpoint) bool {
	r := a.report
	own, err := a.newLogCopy(n.rep.URL, n.rep.Origin, false)
	if err != nil {
		r.fail(n.rep, CheckEntries, "%v", err)
		return false
	}
	n.own = own
	err = a.fetchLog(ctx, n.client, own, shortOrigin(n.rep.Origin)+" entries", latest.Size)
	n.rep.Entries = own.size()
	var pe *portal.Error
	switch {
	case errors.As(err, &pe) && pe.Status == portal.ClientUnauthorized:
		r.fail(n.rep, CheckReachable, "Transfer refused (give the node's transfer token with --token): %v", err)
		return false
	case errors.Is(err, errGap):
		r.fail(n.rep, CheckEntries, "%v", err)
	case err != nil:
		r.fail(n.rep, CheckReachable, "%v", err)
		return false
	}
	if own.size() < latest.Size {
		r.fail(n.rep, CheckRoot, "the checkpoint of round %d says %d entries, the node served %d", latest.Round, latest.Size, own.size())
	}
	return true
}

// reportProblems reports the entries check of a log copy.
func (a *auditor) reportProblems(n *nodeAudit, l *logCopy, prefix string) {
	if len(l.problems) == 0 {
		a.report.pass(n.rep, CheckEntries)
		return
	}
	for i, p := range l.problems {
		if i == maxProblems {
			a.report.fail(n.rep, CheckEntries, "%s%d more entries with faults", prefix, len(l.problems)-maxProblems)
			break
		}
		a.report.fail(n.rep, CheckEntries, "%s%s", prefix, p)
	}
}

// checkRecords checks the MasterHash and Evidence records fetched since it
// last ran.
func (a *auditor) checkRecords(n *nodeAudit) {
	for _, idx := range sortedKeys(n.own.records) {
		if idx < n.checked {
			continue
		}
		leaf := n.own.records[idx]
		switch leaf.Kind {
		case "MasterHash":
			a.checkMasterRecord(n, idx, &leaf)
		case "FederationUpdate":
			a.checkFederationRecord(n, idx, &leaf)
		case "Evidence":
			e, err := parseEvidence(leaf.Payload)
			if err != nil {
				a.report.fail(n.rep, CheckEvidence, "record %d: %v", idx, err)
				continue
			}
			a.checkEvidence(n, e, fmt.Sprintf("Evidence record %d", idx))
		}
	}
	n.checked = n.own.size()
}

// checkMasterRecord verifies a MasterHash record: a certificate (outcome
// "certificate") or the node's own vote ("no-quorum").
func (a *auditor) checkMasterRecord(n *nodeAudit, idx uint64, leaf *Leaf) {
	r := a.report
	rr, err := ParseRoundResult(leaf.Payload)
	if err != nil {
		r.fail(n.rep, CheckMasterRecords, "record %d: %v", idx, err)
		return
	}
	switch rr.Outcome {
	case OutcomeCertificate:
		cert, err := a.keys.verifyMasterNote(rr.Note, rr.Checkpoints, rr.Round, true)
		if err != nil {
			r.fail(n.rep, CheckMasterRecords, "record %d: certificate: %v", idx, err)
			return
		}
		r.pass(n.rep, CheckMasterRecords)
		n.byIndex[idx] = cert
		if _, dup := n.certs[rr.Round]; !dup {
			n.certs[rr.Round] = cert
			n.rep.RoundsCertified++
			if n.rep.FirstRound == 0 || rr.Round < n.rep.FirstRound {
				n.rep.FirstRound = rr.Round
			}
			n.rep.LastRound = max(n.rep.LastRound, rr.Round)
		}
		for _, cp := range cert.Checkpoints {
			n.observe(cp, fmt.Sprintf("the certificate of round %d in record %d of %s", rr.Round, idx, n.rep.label()))
		}
	case OutcomeNoQuorum:
		n.rep.RoundsWithoutQuorum++
		if rr.Note == "" && len(rr.Checkpoints) == 0 {
			r.pass(n.rep, CheckMasterRecords)
			return
		}
		vote, err := a.keys.verifyMasterNote(rr.Note, rr.Checkpoints, rr.Round, false)
		if err == nil && !slices.Contains(vote.Signers, n.rep.Origin) {
			err = fmt.Errorf("the vote is not signed by %s", n.rep.Origin)
		}
		if err != nil {
			r.fail(n.rep, CheckMasterRecords, "record %d (no quorum): own vote: %v", idx, err)
			return
		}
		r.pass(n.rep, CheckMasterRecords)
		for _, cp := range vote.Checkpoints {
			n.observe(cp, fmt.Sprintf("the vote of round %d in record %d of %s", rr.Round, idx, n.rep.label()))
		}
	default:
		r.fail(n.rep, CheckMasterRecords, "record %d: unknown outcome %q", idx, rr.Outcome)
	}
}

// checkStatus verifies the proof chains of a Status answer, fetching Status
// (and the new entries) again if they do not verify, in case a checkpoint
// closed while the node was answering.
func (a *auditor) checkStatus(ctx context.Context, n *nodeAudit, st *portal.StatusResponse) {
	var results []checkResult
	for attempt := 1; ; attempt++ {
		results = a.statusResults(n, st)
		if !anyFailed(results) || attempt == statusAttempts {
			break
		}
		next, err := n.client.Status(ctx)
		if err != nil {
			break
		}
		if err := a.fetchLog(ctx, n.client, n.own, shortOrigin(n.rep.Origin)+" entries", 0); err != nil {
			break
		}
		n.rep.Entries = n.own.size()
		a.checkRecords(n)
		st = next
	}
	for _, e := range st.Evidence {
		a.checkEvidence(n, evidencePayload{Origin: e.Origin, Reason: e.Reason, Notes: e.Notes, Root1: e.Root1, Proof: e.Proof}, "Status")
	}
	for _, res := range results {
		if res.err != nil {
			a.report.fail(n.rep, res.check, "%v", res.err)
		} else {
			a.report.pass(n.rep, res.check)
		}
	}
}

// checkResult is the outcome of one check, before it is reported.
type checkResult struct {
	check string
	err   error
}

func anyFailed(rs []checkResult) bool {
	return slices.ContainsFunc(rs, func(r checkResult) bool { return r.err != nil })
}

// statusResults checks each peer's proof chain in a Status answer.
func (a *auditor) statusResults(n *nodeAudit, st *portal.StatusResponse) []checkResult {
	var out []checkResult
	add := func(check string, err error) { out = append(out, checkResult{check, err}) }
	own, err := a.keys.OpenCheckpoint(st.CheckpointValue)
	if err != nil || own.Origin != n.rep.Origin {
		if len(st.Peers) > 0 {
			add(CheckRecordIncl, fmt.Errorf("Status carries proofs but no valid checkpoint of %s to check them against", n.rep.Origin))
		}
		return out
	}
	for _, p := range st.Peers {
		out = append(out, a.peerResults(n, own, &p)...)
	}
	return out
}

// peerResults checks one peer's proof chain against the node's checkpoint
// own: the peer's checkpoint, its consistency with the previous one, the
// certificate, the checkpoint's inclusion in M_r and the MasterHash
// record's inclusion in own.
func (a *auditor) peerResults(n *nodeAudit, own Checkpoint, p *portal.PeerProof) []checkResult {
	var out []checkResult
	add := func(check string, err error) { out = append(out, checkResult{check, err}) }
	who := fmt.Sprintf("peer %s: ", p.Origin)
	cp, err := a.keys.OpenCheckpoint(p.Checkpoint)
	if err == nil && cp.Origin != p.Origin {
		err = fmt.Errorf("the checkpoint is of %s", cp.Origin)
	}
	if err != nil {
		add(CheckPeerCP, fmt.Errorf("%s%w", who, err))
		return out
	}
	add(CheckPeerCP, nil)
	n.observe(cp, fmt.Sprintf("Status of %s", n.rep.label()))
	if p.PreviousCheckpoint != "" {
		prev, err := a.keys.OpenCheckpoint(p.PreviousCheckpoint)
		if err == nil && prev.Origin != cp.Origin {
			err = fmt.Errorf("the previous checkpoint is of %s", prev.Origin)
		}
		if err == nil {
			n.observe(prev, fmt.Sprintf("Status of %s (previous checkpoint)", n.rep.label()))
			if err = VerifyConsistency(prev, cp, p.ConsistencyProof); err != nil {
				err = fmt.Errorf("from size %d (round %d) to %d (round %d): %w", prev.Size, prev.Round, cp.Size, cp.Round, err)
			}
		}
		add(CheckConsistency, wrapWho(who, err))
	}
	if p.MasterHash == "" {
		return out
	}
	if p.MasterRecordIndex == nil {
		add(CheckStatusCert, fmt.Errorf("%sa certificate without the index of its MasterHash record", who))
		return out
	}
	idx := *p.MasterRecordIndex
	cert, err := n.statusCertificate(idx, p.MasterHash)
	add(CheckStatusCert, wrapWho(who, err))
	if err != nil {
		return out
	}
	i := cert.Index(cp.Origin)
	switch {
	case i < 0:
		err = fmt.Errorf("the certificate of round %d has no checkpoint of %s", cert.Round, cp.Origin)
	case cert.Checkpoints[i].Note != cp.Note:
		err = fmt.Errorf("the certificate of round %d holds another checkpoint of %s", cert.Round, cp.Origin)
	default:
		err = VerifyInclusion(uint64(i), cert.Count, masterLeafHash(cp), p.MasterHashInclusion, cert.MasterHash)
	}
	add(CheckMasterIncl, wrapWho(who, err))
	if idx >= own.Size {
		err = fmt.Errorf("record %d is not below the checkpoint's size %d", idx, own.Size)
	} else if err = VerifyInclusion(idx, own.Size, n.own.hashes[idx], p.MasterRecordInclusion, own.Root); err != nil {
		err = fmt.Errorf("record %d in the checkpoint of round %d (size %d): %w", idx, own.Round, own.Size, err)
	}
	add(CheckRecordIncl, wrapWho(who, err))
	return out
}

// statusCertificate returns the verified certificate of the MasterHash
// record idx, which must be the certificate note Status shows.
func (n *nodeAudit) statusCertificate(idx uint64, shown string) (*Certificate, error) {
	if idx >= n.own.size() {
		return nil, fmt.Errorf("MasterHash record %d is beyond the %d entries fetched", idx, n.own.size())
	}
	leaf, ok := n.own.records[idx]
	if !ok || leaf.Kind != "MasterHash" {
		return nil, fmt.Errorf("entry %d is not a MasterHash record", idx)
	}
	cert, ok := n.byIndex[idx]
	if !ok {
		return nil, fmt.Errorf("MasterHash record %d holds no valid certificate", idx)
	}
	if cert.Note != shown {
		return nil, fmt.Errorf("the certificate in Status is not the one in MasterHash record %d", idx)
	}
	return cert, nil
}

func wrapWho(who string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s%w", who, err)
}

// checkEvidence verifies evidence a node shows (in Status or an Evidence
// record): evidence that holds up fails the accused member's equivocation
// check; evidence that does not fails the node's evidence check.
func (a *auditor) checkEvidence(n *nodeAudit, e evidencePayload, where string) {
	why, err := a.keys.verifyEvidence(e)
	if err != nil {
		a.report.fail(n.rep, CheckEvidence, "%s: the evidence against %s does not hold up: %v", where, e.Origin, err)
		return
	}
	a.report.pass(n.rep, CheckEvidence)
	a.report.addEvidence(e.Origin, why, e.Notes, fmt.Sprintf("%s of %s", where, n.rep.label()))
}

// fetchReplicas copies every replica the node serves (Transfer with
// Origin); a node that serves none of an origin is not at fault.
func (a *auditor) fetchReplicas(ctx context.Context, n *nodeAudit) {
	for _, origin := range a.keys.origins {
		if origin == n.rep.Origin {
			continue
		}
		l, err := a.newLogCopy(n.rep.URL, origin, true)
		if err != nil {
			a.report.fail(n.rep, CheckEntries, "replica of %s: %v", origin, err)
			continue
		}
		err = a.fetchLog(ctx, n.client, l, shortOrigin(n.rep.Origin)+" replica of "+shortOrigin(origin), 0)
		var pe *portal.Error
		if l.size() == 0 && (errors.As(err, &pe) || err == nil) {
			if l.cache != "" {
				_ = os.Remove(l.cache) // keep no empty file for a replica not served
			}
			continue
		}
		if err != nil {
			a.report.fail(n.rep, CheckEntries, "replica of %s: %v", origin, err)
		}
		a.reportProblems(n, l, "replica of "+origin+": ")
		n.replicas[origin] = l
		if l.mapped {
			if a.mapReplicas == nil {
				a.mapReplicas = map[string]replicaCopy{}
			}
			a.mapReplicas[origin] = replicaCopy{node: n, copy: l}
		}
		if n.rep.Replicas == nil {
			n.rep.Replicas = map[string]uint64{}
		}
		n.rep.Replicas[origin] = l.size()
	}
}

// shortOrigin is the last path element of an origin, for progress bars.
func shortOrigin(origin string) string {
	if i := strings.LastIndexByte(origin, '/'); i >= 0 {
		return origin[i+1:]
	}
	return origin
}

// sortedKeys returns the keys of m in increasing order.
func sortedKeys[V any](m map[uint64]V) []uint64 {
	keys := make([]uint64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

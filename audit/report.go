package audit

import (
	"crypto/sha256"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
)

// The names of the audit's checks, as the report prints them.
const (
	CheckReachable     = "reachable"          // the node answers /checkpoint, Status and Transfer
	CheckCheckpoint    = "checkpoint"         // signature by the member's key, and format
	CheckEntries       = "entries"            // dense indexes, leaves decode and match the items
	CheckRoot          = "checkpoint root"    // RFC 6962 root of the entries = the checkpoint's root
	CheckPeerCP        = "status checkpoint"  // each peer checkpoint in Status is signed by its member
	CheckConsistency   = "status consistency" // consistency proof from PreviousCheckpoint
	CheckStatusCert    = "status certificate" // the master-hash certificate in Status
	CheckMasterIncl    = "master hash inclusion"
	CheckRecordIncl    = "master record inclusion"
	CheckMasterRecords = "master records" // every MasterHash record's certificate or vote
	CheckCertsAgree    = "certificates agree"
	CheckEquivocation  = "equivocation"
	CheckReplicaRoot   = "replica root"
	// CheckMap: a checkpoint's map line is the root of the map the audit
	// recomputes from the records (see checkOwnMaps).
	CheckMap      = "map"
	CheckEvidence = "evidence"
	// CheckFederationRecords: each FederationUpdate record is the certified
	// step of the federation's verified chain, and not backdated.
	CheckFederationRecords = "federation records"
)

// Report is the result of an audit. Its JSON form is what 'meshctl audit
// --json' prints, and scripts read its field names: they do not change.
type Report struct {
	Federation string `json:"federation"`
	Quorum     int    `json:"quorum"`
	// FederationVersion is the latest version of the federation's
	// verified chain of updates (0: it never changed).
	FederationVersion uint64        `json:"federation_version"`
	OK                bool          `json:"ok"`
	Nodes             []*NodeReport `json:"nodes"`
	Failures          []Failure     `json:"failures"`
	// Evidence lists the verified proofs of misbehaviour: found in Status,
	// in Evidence records, or by the audit itself.
	Evidence []Evidence `json:"evidence,omitempty"`

	mu           sync.Mutex
	seenEvidence map[[32]byte]int
}

// NodeReport is what the audit found at one node.
type NodeReport struct {
	URL    string `json:"url"`
	Origin string `json:"origin"`
	// Size is the tree size of the node's latest checkpoint.
	Size uint64 `json:"size"`
	// Entries is the number of entries of its own log fetched.
	Entries uint64 `json:"entries"`
	// Replicas are the entries fetched of each replica the node serves.
	Replicas map[string]uint64 `json:"replicas,omitempty"`
	Passed   int               `json:"passed"`
	Failed   int               `json:"failed"`
	// Checks counts passes and failures per check name.
	Checks map[string]*CheckCount `json:"checks"`
	// RoundsCertified counts the MasterHash records holding a verified
	// certificate; FirstRound and LastRound are the first and last of them.
	RoundsCertified     int    `json:"rounds_certified"`
	FirstRound          uint64 `json:"first_round,omitempty"`
	LastRound           uint64 `json:"last_round,omitempty"`
	RoundsWithoutQuorum int    `json:"rounds_without_quorum"`
	// Unreachable says why the audit could not reach the node (it is down
	// or cut off); such a node is not failed, and the rest are judged.
	Unreachable string `json:"unreachable,omitempty"`
}

// CheckCount is how often a check passed and failed at a node, and how
// often it could not be made (for the map check: checkpoints closed
// without a map line, before the member had a map).
type CheckCount struct {
	Passed     int `json:"passed"`
	Failed     int `json:"failed"`
	NotChecked int `json:"not_checked,omitempty"`
}

// Failure is one failed check.
type Failure struct {
	Node   string `json:"node"` // "<origin> (<url>)", or the origin alone
	URL    string `json:"url,omitempty"`
	Origin string `json:"origin,omitempty"`
	Check  string `json:"check"`
	Detail string `json:"detail"`
}

// String is the report line of the failure.
func (f Failure) String() string {
	return fmt.Sprintf("%s: %s: %s", f.Node, f.Check, f.Detail)
}

// Evidence is verified proof that a member misbehaved.
type Evidence struct {
	Origin string    `json:"origin"`
	Reason string    `json:"reason"`
	Notes  [2]string `json:"notes"`
	// Found says where: "Status of <node>", "Evidence record 12 of <node>",
	// or "audit" for a conflict the audit found itself.
	Found []string `json:"found"`
}

// label names a node in the report.
func (n *NodeReport) label() string {
	switch {
	case n.Origin == "":
		return n.URL
	case n.URL == "":
		return n.Origin
	}
	return fmt.Sprintf("%s (%s)", n.Origin, n.URL)
}

// pass records that a check passed at node n.
func (r *Report) pass(n *NodeReport, check string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n.count(check).Passed++
	n.Passed++
}

// fail records that a check failed at node n, and why.
func (r *Report) fail(n *NodeReport, check, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n.count(check).Failed++
	n.Failed++
	r.Failures = append(r.Failures, Failure{
		Node: n.label(), URL: n.URL, Origin: n.Origin, Check: check, Detail: fmt.Sprintf(format, args...),
	})
}

// notChecked records that a check could not be made at node n; it counts
// neither as passed nor as failed.
func (r *Report) notChecked(n *NodeReport, check string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n.count(check).NotChecked++
}

func (n *NodeReport) count(check string) *CheckCount {
	if n.Checks == nil {
		n.Checks = map[string]*CheckCount{}
	}
	c := n.Checks[check]
	if c == nil {
		c = &CheckCount{}
		n.Checks[check] = c
	}
	return c
}

// node returns the report of the node serving origin, making an entry
// without a URL for a member that was not audited.
func (r *Report) node(origin string) *NodeReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.Nodes {
		if n.Origin == origin {
			return n
		}
	}
	n := &NodeReport{Origin: origin}
	r.Nodes = append(r.Nodes, n)
	return n
}

// passAudited records that a check of origin passed, at each audited node
// serving origin (and nowhere if none was audited).
func (r *Report) passAudited(origin, check string) {
	r.mu.Lock()
	var ns []*NodeReport
	for _, n := range r.Nodes {
		if n.Origin == origin {
			ns = append(ns, n)
		}
	}
	r.mu.Unlock()
	for _, n := range ns {
		r.pass(n, check)
	}
}

// addEvidence records verified evidence against origin once per pair of
// notes, and fails origin's equivocation check with the first piece.
func (r *Report) addEvidence(origin, reason string, notes [2]string, found string) {
	pair := []string{NoteText(notes[0]), NoteText(notes[1])}
	slices.Sort(pair)
	key := sha256.Sum256([]byte(pair[0] + "\x00" + pair[1]))
	r.mu.Lock()
	if i, ok := r.seenEvidence[key]; ok {
		if !slices.Contains(r.Evidence[i].Found, found) {
			r.Evidence[i].Found = append(r.Evidence[i].Found, found)
		}
		r.mu.Unlock()
		return
	}
	if r.seenEvidence == nil {
		r.seenEvidence = map[[32]byte]int{}
	}
	first := !slices.ContainsFunc(r.Evidence, func(e Evidence) bool { return e.Origin == origin })
	r.seenEvidence[key] = len(r.Evidence)
	r.Evidence = append(r.Evidence, Evidence{Origin: origin, Reason: reason, Notes: notes, Found: []string{found}})
	r.mu.Unlock()
	if first {
		r.fail(r.node(origin), CheckEquivocation, "%s signed two checkpoints that cannot both be true: %s (found by %s; the evidence section has the notes)", origin, reason, found)
	}
}

// finish sorts the report and sets OK: no check failed, and at least one
// node was reached.
func (r *Report) finish() {
	sort.SliceStable(r.Nodes, func(i, j int) bool { return r.Nodes[i].Origin < r.Nodes[j].Origin })
	if len(r.Nodes) > 0 && len(r.unreachable()) == len(r.Nodes) {
		r.fail(r.Nodes[0], CheckReachable, "no node of the federation could be reached")
	}
	r.OK = len(r.Failures) == 0
}

// unreachable lists the nodes the audit could not reach.
func (r *Report) unreachable() []string {
	var out []string
	for _, n := range r.Nodes {
		if n.Unreachable != "" {
			out = append(out, n.label())
		}
	}
	return out
}

// WriteText writes the short report a person reads (what 'meshctl audit'
// prints without --json): each node's counts, the evidence, the verdict and
// every failure.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "Audit of federation %s (quorum %d), %d nodes\n", r.Federation, r.Quorum, len(r.Nodes))
	if r.FederationVersion > 0 {
		fmt.Fprintf(w, "Federation changed by %d verified updates; each round judged by the members and quorum in force then\n", r.FederationVersion)
	}
	for _, n := range r.Nodes {
		fmt.Fprintf(w, "\n%s\n", n.label())
		fmt.Fprintf(w, "  checkpoint size %d, %d entries fetched", n.Size, n.Entries)
		if len(n.Replicas) > 0 {
			var rs []string
			for o, c := range n.Replicas {
				rs = append(rs, fmt.Sprintf("%s %d", o, c))
			}
			slices.Sort(rs)
			fmt.Fprintf(w, "; replicas: %s", strings.Join(rs, ", "))
		}
		fmt.Fprintln(w)
		if n.Unreachable != "" {
			fmt.Fprintf(w, "  UNREACHABLE (down or cut off; not judged): %s\n", n.Unreachable)
		}
		fmt.Fprintf(w, "  checks: %d passed, %d failed\n", n.Passed, n.Failed)
		if c := n.Checks[CheckMap]; c != nil {
			fmt.Fprintf(w, "  map lines: %d match the records' map, %d do not", c.Passed, c.Failed)
			if c.NotChecked > 0 {
				fmt.Fprintf(w, ", %d checkpoints without one not checked", c.NotChecked)
			}
			fmt.Fprintln(w)
		}
		switch {
		case n.RoundsCertified > 0:
			fmt.Fprintf(w, "  rounds certified: %d (%d to %d)", n.RoundsCertified, n.FirstRound, n.LastRound)
		default:
			fmt.Fprintf(w, "  rounds certified: 0")
		}
		if n.RoundsWithoutQuorum > 0 {
			fmt.Fprintf(w, ", %d without quorum", n.RoundsWithoutQuorum)
		}
		fmt.Fprintln(w)
	}
	for _, e := range r.Evidence {
		fmt.Fprintf(w, "\nEvidence against %s: %s (found by %s)\n", e.Origin, e.Reason, strings.Join(e.Found, "; "))
		for _, n := range e.Notes {
			fmt.Fprintf(w, "%s\n", indent(strings.TrimSuffix(n, "\n"), "    "))
		}
	}
	if r.OK {
		if down := r.unreachable(); len(down) > 0 {
			fmt.Fprintf(w, "\nAudit passed: every check passed at the %d nodes reached; not reached: %s.\n", len(r.Nodes)-len(down), strings.Join(down, ", "))
			return
		}
		fmt.Fprintf(w, "\nAudit passed: every check passed.\n")
		return
	}
	fmt.Fprintf(w, "\nAudit FAILED: %d checks failed.\n", len(r.Failures))
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  %s\n", f)
	}
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

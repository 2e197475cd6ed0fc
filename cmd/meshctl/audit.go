package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"

	"github.com/spf13/cobra"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/portal/client"
)

// auditOptions are the flags of 'meshctl audit'.
type auditOptions struct {
	federation string
	nodes      []string
	cache      string
	noReplicas bool
}

// newAuditCommand is 'meshctl audit': verify a federation's logs,
// checkpoints and certificates from public data and the federation file.
func newAuditCommand(opts *globalOptions) *cobra.Command {
	var o auditOptions
	cmd := &cobra.Command{
		Use:   "audit --federation FILE [--node URL ...] [--cache DIR] [--no-replicas]",
		Short: "Verify the federation's logs, checkpoints and master-hash certificates",
		Long: `audit is the auditor's tool. It needs only the federation file and HTTP access
to the nodes (--node URL, repeatable; default: every member's http URL in the
file). For each node it fetches the latest checkpoint (GET /checkpoint), its
Status with the proof chains, and every entry of its log (Transfer, which needs
--token unless the node makes it public), then verifies offline:

  checkpoint               each checkpoint is signed by the member's key and well formed
  entries                  indexes are dense from 0; every leaf decodes and matches its item
  checkpoint root          the RFC 6962 root of the entries at every checkpoint size seen
                           (its own, in Status, in certificates) is that checkpoint's root
  status checkpoint        every peer checkpoint in Status is signed by that member
  status consistency       the consistency proof from the peer's previous checkpoint
  status certificate       the master-hash certificate in Status is the one in the
                           node's MasterHash record and verifies
  master hash inclusion    the peer's checkpoint is in M_r
  master record inclusion  the MasterHash record is in the node's checkpoint
  master records           every MasterHash record: a quorum of member signatures, M_r
                           recomputed from the listed checkpoints, each signed by its origin
  certificates agree       the nodes' certificates of one round agree
  equivocation             no member signed two checkpoints that cannot both be true
  replica root             each replica the node serves (Transfer with Origin) has the
                           origin's root at every checkpoint size
  evidence                 evidence of misbehaviour in Status or Evidence records holds up

Evidence that holds up fails the audit, naming the member. The report is short
(--json for the full machine report); the exit code is 0 only when every check
passed, 1 when one failed, 2 for a command-line mistake.

--cache DIR keeps the entries fetched, per node and log, so that a later audit
fetches only the new ones (and an interrupted one resumes). A progress bar is
shown while fetching when stderr is a terminal.`,
		Args: exactArgs(0, "no arguments (name nodes with --node)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.federation == "" {
				return usagef(cmd, "audit needs --federation FILE")
			}
			fed, err := config.LoadFederation(o.federation)
			if err != nil {
				return usagef(cmd, "--federation: %w", err)
			}
			nodes := o.nodes
			if len(nodes) == 0 {
				for _, m := range fed.Members {
					if m.HTTP != "" {
						nodes = append(nodes, m.HTTP)
					}
				}
				if len(nodes) == 0 {
					return usagef(cmd, "no member of %s has an http URL: name the nodes with --node URL", o.federation)
				}
			}
			for _, n := range nodes {
				if u, err := url.Parse(n); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return usagef(cmd, "--node %q is not a portal URL: want http://host:port or https://host", n)
				}
			}
			rep, err := runAudit(cmd, auditConfig{
				fed: fed, nodes: nodes, token: opts.token, cache: o.cache, replicas: !o.noReplicas, allMembers: len(o.nodes) == 0,
			})
			if err != nil {
				return err
			}
			if err := opts.emit(cmd, rep, rep.writeHuman); err != nil {
				return err
			}
			if !rep.OK {
				return &exitError{code: exitFailure}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.federation, "federation", "", "the federation file (members, keys, quorum)")
	f.StringArrayVar(&o.nodes, "node", nil, "portal URL of a node to audit (repeatable; default: every member's http URL)")
	f.StringVar(&o.cache, "cache", "", "directory keeping fetched entries, so that a re-run resumes")
	f.BoolVar(&o.noReplicas, "no-replicas", false, "do not fetch and check the replicas each node serves")
	return cmd
}

// auditConfig is what one audit needs.
type auditConfig struct {
	fed   *config.Federation
	nodes []string
	// allMembers adds the portals of members that joined by updates.
	allMembers bool
	token      string
	cache      string
	replicas   bool
}

// auditor runs one audit.
type auditor struct {
	cfg    auditConfig
	keys   *federationKeys
	cmd    *cobra.Command // for the progress bar
	report *auditReport
	nodes  []*nodeAudit
	// chain is the federation's verified chain of versions (the file
	// first), chainNotes the signed updates after it.
	chain      []*config.FederationVersion
	chainNotes [][]byte
}

// runAudit audits every node in turn, then compares what they showed.
func runAudit(cmd *cobra.Command, cfg auditConfig) (*auditReport, error) {
	keys, err := newFederationKeys(cfg.fed)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	a := &auditor{
		cfg: cfg, keys: keys, cmd: cmd,
		report: &auditReport{Federation: cfg.fed.Name, Quorum: keys.quorum, Failures: []auditFailure{}},
	}
	ctx := cmd.Context()
	var urls []string
	addURL := func(u string) {
		if u != "" && !slices.ContainsFunc(urls, func(v string) bool { return sameURL(u, v) }) {
			urls = append(urls, u)
		}
	}
	for _, u := range cfg.nodes {
		addURL(u)
	}
	chain, badChains := a.loadFederationChain(ctx, urls)
	a.chain = chain
	if err := keys.setChain(chain); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	a.report.FederationVersion = chain[len(chain)-1].Version
	if cfg.allMembers {
		for _, v := range chain[1:] {
			for _, m := range v.Members {
				addURL(m.HTTP)
			}
		}
	}
	for _, u := range urls {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		n := a.auditNode(ctx, u)
		if err, bad := badChains[u]; bad {
			a.report.fail(n.rep, checkFederationRecords, "GET /federation/updates: %v", err)
		}
		a.nodes = append(a.nodes, n)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	a.checkCertificatesAgree()
	a.checkEquivocation()
	if err := a.checkRoots(); err != nil {
		return nil, err
	}
	a.report.finish()
	return a.report, nil
}

// client returns a portal client of the node at u.
func (a *auditor) client(u string) (*client.Client, error) {
	var opts []client.Option
	if a.cfg.token != "" {
		opts = append(opts, client.WithToken(a.cfg.token))
	}
	return client.New(u, opts...)
}

// originOf is the origin of the member whose http URL is u, or "".
func (k *federationKeys) originOf(u string) string {
	for _, o := range k.origins {
		if k.http[o] != "" && sameURL(k.http[o], u) {
			return o
		}
	}
	return ""
}

// sameURL compares two base URLs, ignoring a trailing slash.
func sameURL(a, b string) bool {
	trim := func(s string) string {
		for len(s) > 0 && s[len(s)-1] == '/' {
			s = s[:len(s)-1]
		}
		return s
	}
	return trim(a) == trim(b)
}

// fetchLog brings a log copy up to date with the node, resuming from the
// cache, with a progress bar of about total entries.
func (a *auditor) fetchLog(ctx context.Context, c *client.Client, l *logCopy, what string, total uint64) error {
	bar := newAuditBar(a.cmd, what, l.size(), total)
	defer bar.finish()
	return l.fetch(ctx, c, bar)
}

// newLogCopy returns the copy of origin's log at the node at u, read back
// from the cache if there is one.
func (a *auditor) newLogCopy(u, origin string, replica bool) (*logCopy, error) {
	l := &logCopy{origin: origin, replica: replica}
	if a.cfg.cache == "" {
		return l, nil
	}
	l.cache = cachePath(a.cfg.cache, u, origin)
	if err := mkdirFor(l.cache); err != nil {
		return nil, err
	}
	if err := l.loadCache(); err != nil {
		return nil, err
	}
	return l, nil
}

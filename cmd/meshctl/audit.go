package main

import (
	"net/url"
	"os"
	"slices"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/intermesh/intermesh/audit"
	"github.com/intermesh/intermesh/config"
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
// The audit itself is package audit; this is its flags and output.
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
			if len(o.nodes) == 0 && !slices.ContainsFunc(fed.Members, func(m config.Member) bool { return m.HTTP != "" }) {
				return usagef(cmd, "no member of %s has an http URL: name the nodes with --node URL", o.federation)
			}
			for _, n := range o.nodes {
				if u, err := url.Parse(n); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return usagef(cmd, "--node %q is not a portal URL: want http://host:port or https://host", n)
				}
			}
			rep, err := audit.Run(cmd.Context(), audit.Config{
				Federation: fed, Nodes: o.nodes, Token: opts.token, Cache: o.cache, SkipReplicas: o.noReplicas,
				Progress: func(what string, have, total uint64) audit.Progress { return newAuditBar(cmd, what, have, total) },
			})
			if err != nil {
				return err
			}
			return opts.emitVerdict(cmd, rep, rep.WriteText, rep.OK)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.federation, "federation", "", "the federation file (members, keys, quorum)")
	f.StringArrayVar(&o.nodes, "node", nil, "portal URL of a node to audit (repeatable; default: every member's http URL)")
	f.StringVar(&o.cache, "cache", "", "directory keeping fetched entries, so that a re-run resumes")
	f.BoolVar(&o.noReplicas, "no-replicas", false, "do not fetch and check the replicas each node serves")
	return cmd
}

// auditBar is a progress bar of one log's fetching on a terminal.
type auditBar struct{ *transferBar }

func (b auditBar) Add()    { b.add() }
func (b auditBar) Finish() { b.finish() }

// newAuditBar shows a progress bar of total entries on stderr if it is a
// terminal, and nothing otherwise.
func newAuditBar(cmd *cobra.Command, what string, done, total uint64) auditBar {
	f, ok := cmd.ErrOrStderr().(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return auditBar{&transferBar{}}
	}
	max := int64(-1)
	if total > done {
		max = int64(total - done)
	}
	return auditBar{&transferBar{bar: progressbar.NewOptions64(max,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("entries"),
		progressbar.OptionClearOnFinish(),
	)}}
}

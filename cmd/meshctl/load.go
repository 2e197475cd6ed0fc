package main

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/loadgen"
)

// loadOptions are the flags of 'meshctl load'.
type loadOptions struct {
	nodes       []string
	federation  string
	rate        float64
	duration    time.Duration
	accounts    int
	concurrency int
	timeout     time.Duration
	acks        string
	verify      bool
	wait        time.Duration
}

// newLoadCommand is 'meshctl load': the flags and output of package
// loadgen's generator (loadgen.Run) and verifier (loadgen.Verify).
func newLoadCommand(opts *globalOptions) *cobra.Command {
	var o loadOptions
	cmd := &cobra.Command{
		Use:   "load [--node URL ...] --rate R --duration D [--accounts N] | load --verify --federation FILE",
		Short: "Drive real, signed writes at portals and keep the list of the acknowledged ones; --verify checks them",
		Long: `load first creates --accounts accounts, each bound to a fresh ProfileAccount
(Ed448 offline and administration keys, an X448 encryption key, a valid signed
envelope), spread round robin over the portals (--node, repeatable; default:
every member's http URL in --federation, else --portal). Then, for --duration,
it publishes signed updates of those profiles (each signed by the offline key,
with a later Updated time and the other of two administration keys made with
the account, so consecutive versions differ in their keys) at --rate requests
per second, open loop: the
latency of a request is measured from the time it was scheduled, so a stalled
portal shows as latency, not as a lower rate. At most --concurrency requests
are in flight, over connections kept open (up to --concurrency per portal). A
progress line is shown when stderr is a terminal.

The report gives the writes acknowledged and refused (by reason), latency
p50/p99/max of the acknowledged updates and the throughput; --json prints it
for machines. Every acknowledged write is appended to --acks (JSON lines): the
portal that acknowledged it, the identifier, and the envelope's PayloadDigest.

load --verify --federation FILE reads --acks and checks that every
acknowledged write
  - is served by the portal that acknowledged it (Get, every version),
  - is served by every other member from its replica of that portal's log,
  - is in the portal's log under a checkpoint of that portal that a
    master-hash certificate (a quorum of member signatures, verified with the
    federation file's keys) covers: the entries up to the certified size are
    copied with Transfer, their RFC 6962 root must be the certified root, and
    an inclusion proof of the write's leaf is verified against it.
It waits up to --wait for replication and for a certificate covering the
latest writes. Exit status 0 only when every write passes.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fed, nodes, err := o.resolve(cmd, opts)
			if err != nil {
				return err
			}
			if o.verify {
				if fed == nil {
					return usagef(cmd, "load --verify needs --federation FILE")
				}
				rep, err := loadgen.Verify(cmd.Context(), loadgen.VerifyConfig{
					Federation: fed, Acks: o.acks, Token: opts.token, Wait: o.wait})
				if errors.Is(err, loadgen.ErrInvalidConfig) {
					return usagef(cmd, "--federation %s: %w", o.federation, err)
				}
				if err != nil {
					return err
				}
				return opts.emitVerdict(cmd, rep, rep.WriteText, rep.OK)
			}
			rep, err := loadgen.Run(cmd.Context(), loadgen.Config{
				Portals: nodes, Domains: loadgen.PortalDomains(fed, nodes), Rate: o.rate, Duration: o.duration, Accounts: o.accounts,
				Concurrency: o.concurrency, Timeout: o.timeout, Acks: o.acks, Token: opts.token,
				Progress: terminal(cmd)})
			if err != nil {
				return fmt.Errorf("load: %w", err)
			}
			return opts.emit(cmd, rep, rep.WriteText)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.nodes, "node", nil, "portal URL to load (repeatable; default: the federation's members, else --portal)")
	f.StringVar(&o.federation, "federation", "", "the federation file (members' portals and keys); needed by --verify")
	f.Float64Var(&o.rate, "rate", 100, "update requests per second")
	f.DurationVar(&o.duration, "duration", 30*time.Second, "how long to send updates")
	f.IntVar(&o.accounts, "accounts", 100, "accounts to create first (each with its own profile)")
	f.IntVar(&o.concurrency, "concurrency", 256, "most requests in flight")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "time limit of one request")
	f.StringVar(&o.acks, "acks", "", "file listing the acknowledged writes, appended to (default: meshctl-load.jsonl beside the --federation file, else in the working directory)")
	f.BoolVar(&o.verify, "verify", false, "check every write listed in --acks instead of generating load")
	f.DurationVar(&o.wait, "wait", 2*time.Minute, "with --verify: how long to wait for replicas and certificates")
	return cmd
}

// defaultAcks is the name of the list of acknowledged writes.
const defaultAcks = "meshctl-load.jsonl"

// resolve checks the flags and returns the federation (if given) and the
// portals to load.
func (o *loadOptions) resolve(cmd *cobra.Command, opts *globalOptions) (*config.Federation, []string, error) {
	var fed *config.Federation
	if o.federation != "" {
		var err error
		if fed, err = config.LoadFederation(o.federation); err != nil {
			return nil, nil, usagef(cmd, "--federation: %w", err)
		}
	}
	switch {
	case o.rate <= 0:
		return nil, nil, usagef(cmd, "--rate must be positive (got %g)", o.rate)
	case o.duration < 0:
		return nil, nil, usagef(cmd, "--duration must not be negative (got %s)", o.duration)
	case o.accounts < 1:
		return nil, nil, usagef(cmd, "--accounts must be at least 1 (got %d)", o.accounts)
	case o.concurrency < 1:
		return nil, nil, usagef(cmd, "--concurrency must be at least 1 (got %d)", o.concurrency)
	case o.timeout <= 0:
		return nil, nil, usagef(cmd, "--timeout must be positive (got %s)", o.timeout)
	case o.acks == "" && cmd.Flags().Changed("acks"):
		return nil, nil, usagef(cmd, "--acks must name a file")
	case o.acks == "":
		// Beside the federation file: a run against another testnet (another
		// directory) starts a list of its own instead of appending to one
		// whose portals are not its members.
		o.acks = defaultAcks
		if o.federation != "" {
			o.acks = filepath.Join(filepath.Dir(o.federation), defaultAcks)
		}
	}
	nodes := o.nodes
	if len(nodes) == 0 && fed != nil {
		for _, m := range fed.Members {
			if m.HTTP != "" {
				nodes = append(nodes, m.HTTP)
			}
		}
	}
	if len(nodes) == 0 {
		nodes = []string{opts.portal}
	}
	for _, n := range nodes {
		if u, err := url.Parse(n); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, nil, usagef(cmd, "--node %q is not a portal URL: want http://host:port or https://host", n)
		}
	}
	return fed, nodes, nil
}

// terminal is stderr if it is a terminal (for the progress line), else nil.
func terminal(cmd *cobra.Command) io.Writer {
	if f, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return f
	}
	return nil
}

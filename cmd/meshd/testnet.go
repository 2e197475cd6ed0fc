package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/intermesh/intermesh/testnet"
)

func newTestnetCommand() *cobra.Command {
	var (
		opts      testnet.Options
		verbose   bool
		traffic   time.Duration
		processes bool
		chaos     testnetChaos
	)
	cmd := &cobra.Command{
		Use:   "testnet [--nodes N] [--dir DIR] [--http-base-port P]",
		Short: "Run a local federation of N nodes on 127.0.0.1 until Ctrl-C",
		Long: `Testnet generates N node directories and a shared federation file (or reuses
them if DIR already holds a testnet), starts every node in this process on
127.0.0.1 (node i serves its portal on port P+i), drives a light stream of
portal traffic, and prints each round's state of every node. A testnet started
again from its DIR keeps the ports, period and quorum it was made with; the
flags that choose them apply to a new testnet only.

With --processes every member runs as its own 'meshd run' OS process (this
same binary) with its own directory, config file, copy of the federation file
and ports, as on separate machines; each member's log goes to
DIR/nodeI/meshd.log. A member that dies is not restarted; the per-round report
then comes from the members' public Status answers.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Dir == "" {
				d, err := os.MkdirTemp("", "intermesh-testnet-")
				if err != nil {
					return err
				}
				opts.Dir = d
			}
			opts.Logger = slog.New(slog.DiscardHandler)
			if verbose {
				opts.Logger = newLogger(cmd.ErrOrStderr(), defaultLogging("info"))
			}
			out := cmd.OutOrStdout()
			if chaos.on && !processes {
				return fmt.Errorf("testnet: --chaos needs --processes")
			}
			if processes {
				return runProcessTestnet(cmd, opts.Layout, traffic, chaos)
			}
			tn, err := testnet.Start(cmd.Context(), opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "testnet: %d nodes in %s, portals %s to %s, rounds of %s\n",
				tn.Size(), opts.Dir, tn.PortalURL(0), tn.PortalURL(tn.Size()-1), tn.Period())
			fmt.Fprintf(out, "testnet: audit it with: %s audit --federation %s\n", siblingOf(os.Args[0], "meshctl"), filepath.Join(opts.Dir, testnet.FederationFile))
			err = tn.Watch(cmd.Context(), out, traffic)
			fmt.Fprintln(out, "testnet: stopping")
			if cerr := tn.Close(); cerr != nil {
				return cerr
			}
			fmt.Fprintf(out, "testnet: stopped; the data stays in %s\n", opts.Dir)
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&opts.Nodes, "nodes", 4, "number of nodes")
	f.StringVar(&opts.Dir, "dir", "", "testnet directory (default: a new temporary directory)")
	f.IntVar(&opts.HTTPBasePort, "http-base-port", 8080, "node i serves its portal on 127.0.0.1:P+i")
	f.IntVar(&opts.P2PBasePort, "p2p-base-port", 4001, "node i listens for libp2p on 127.0.0.1:P+i (TCP and QUIC)")
	f.DurationVar(&opts.Period, "period", 10*time.Second, "epoch period")
	f.IntVar(&opts.Quorum, "quorum", 0, "quorum (default floor(2n/3)+1)")
	f.StringVar(&opts.AdminToken, "admin-token", testnet.DefaultAdminToken, "every new node's http.admin_token, for meshctl federation propose|sign (a testnet listens on 127.0.0.1 only)")
	f.DurationVar(&traffic, "traffic", time.Second, "interval between generated portal transactions (0 turns traffic off)")
	f.BoolVar(&verbose, "verbose", false, "print the nodes' logs")
	f.BoolVar(&processes, "processes", false, "run every member as its own meshd process")
	f.BoolVar(&chaos.on, "chaos", false, "with --processes: SIGKILL and restart members, partition and heal them, at random")
	f.Uint64Var(&chaos.seed, "chaos-seed", 0, "seed of the chaos's random choices (default: from the clock; printed)")
	f.DurationVar(&chaos.killEvery, "kill-every", 30*time.Second, "with --chaos: mean interval between kills (0: none)")
	f.DurationVar(&chaos.partitionEvery, "partition-every", 45*time.Second, "with --chaos: mean interval between partitions (0: none)")
	f.DurationVar(&chaos.down, "chaos-down", 0, "with --chaos: mean time a killed member stays down or a partition lasts (default 2 periods)")
	return cmd
}

package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/intermesh/intermesh/config"
)

func newInitCommand() *cobra.Command {
	var (
		dir  string
		opts config.InitOptions
	)
	cmd := &cobra.Command{
		Use:   "init --dir DIR",
		Short: "Create a node directory: key, config file with commented defaults, data directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return fmt.Errorf("init: --dir is required")
			}
			periodFromFederation(dir, &opts)
			c, err := config.Init(dir, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "initialized node %q in %s\n  config: %s/%s\n  key:    %s\n  portal: http://%s\nstart it with: meshd run --dir %s\n",
				c.Origin, dir, dir, config.FileName, c.KeyPath(), c.HTTP.Listen, dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "node directory to create (required)")
	cmd.Flags().StringVar(&opts.Origin, "origin", "", "the node's log name (default meshd-<key fingerprint>)")
	cmd.Flags().StringVar(&opts.HTTPListen, "http", "", "portal listen address (default 127.0.0.1:8080)")
	cmd.Flags().StringSliceVar(&opts.P2PListen, "p2p", nil, "libp2p listen multiaddresses")
	cmd.Flags().StringVar(&opts.Federation, "federation", "", "federation file, relative to --dir (if it exists, the node takes its epoch_period)")
	return cmd
}

// periodFromFederation sets the round length of a new node to the
// federation file's epoch_period, when the file exists already and loads:
// a node whose epoch.period differs from its federation's refuses to start.
func periodFromFederation(dir string, opts *config.InitOptions) {
	if opts.Federation == "" || opts.EpochPeriod.Duration != 0 {
		return
	}
	path := opts.Federation
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	if fed, err := config.LoadFederation(path); err == nil {
		opts.EpochPeriod = fed.EpochPeriod
	}
}

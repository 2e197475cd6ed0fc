package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
			fmt.Fprintf(cmd.OutOrStdout(), "initialized node %q in %s\n  config: %s\n  key:    %s\n  portal: http://%s\nstart it with: %s run --dir %s\n",
				c.Origin, dir, filepath.Join(dir, config.FileName), filepath.Join(dir, filepath.Base(c.KeyPath())), c.HTTP.Listen, invokedAs(os.Args[0], "meshd"), dir)
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

// invokedAs is how the user runs the named binary, for the commands a hint
// prints, given arg0 (os.Args[0]): the path it was started by (./bin/meshd)
// when arg0 is a path to name, else name (found in $PATH).
func invokedAs(arg0, name string) string {
	if strings.ContainsRune(arg0, filepath.Separator) && filepath.Base(arg0) == name {
		return arg0
	}
	return name
}

// siblingOf is how to run binary name that sits beside meshd started as
// arg0 (os.Args[0]): its directory (./bin/) joined with name, or name alone.
func siblingOf(arg0, name string) string {
	if a := arg0; strings.ContainsRune(a, filepath.Separator) && filepath.Base(a) == "meshd" {
		d := filepath.Dir(a)
		if !filepath.IsAbs(d) && !strings.HasPrefix(d, ".") {
			d = "." + string(filepath.Separator) + d
		}
		return d + string(filepath.Separator) + name
	}
	return name
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/intermesh/intermesh/testnet"
)

// testnetChaos are the --chaos flags.
type testnetChaos struct {
	on                              bool
	seed                            uint64
	killEvery, partitionEvery, down time.Duration
}

// runProcessTestnet runs `meshd testnet --processes`: every member is a
// `meshd run` process of this same executable.
func runProcessTestnet(cmd *cobra.Command, l testnet.Layout, traffic time.Duration, chaos testnetChaos) error {
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("testnet: finding the meshd executable: %w", err)
	}
	out := cmd.OutOrStdout()
	p, err := testnet.StartProcesses(cmd.Context(), testnet.ProcessOptions{
		Layout: l,
		Binary: bin,
		// Load against a testnet comes from one address: no per-IP limit.
		Env: []string{"MESHD_HTTP_RATE_PER_SECOND=0"},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "testnet: %d member processes in %s, portals %s to %s, rounds of %s\n",
		p.Size(), l.Dir, p.PortalURL(0), p.PortalURL(p.Size()-1), p.Period())
	for i := 0; i < p.Size(); i++ {
		fmt.Fprintf(out, "  node%-2d pid %-7d %s  log %s\n", i, p.Pid(i), p.PortalURL(i), filepath.Join(l.NodeDir(i), testnet.LogFileName))
	}
	fmt.Fprintf(out, "testnet: audit it with: %s audit --federation %s\n", siblingOf(os.Args[0], "meshctl"), filepath.Join(l.Dir, testnet.FederationFile))
	var (
		wg    sync.WaitGroup
		stats testnet.ChaosStats
	)
	if chaos.on {
		if !cmd.Flags().Changed("chaos-seed") {
			chaos.seed = uint64(time.Now().UnixNano())
		}
		fmt.Fprintf(out, "testnet: chaos with seed %d (--chaos-seed %d repeats its choices): a kill every ~%s, a partition every ~%s\n",
			chaos.seed, chaos.seed, chaos.killEvery, chaos.partitionEvery)
		wg.Go(func() {
			stats = p.Chaos(cmd.Context(), testnet.ChaosOptions{
				Seed: chaos.seed, KillEvery: chaos.killEvery, PartitionEvery: chaos.partitionEvery,
				Down: chaos.down, Log: out,
			})
		})
	}
	err = p.Watch(cmd.Context(), out, traffic)
	wg.Wait()
	if chaos.on {
		fmt.Fprintf(out, "testnet: chaos seed %d: %d kills, %d restarts, %d partitions, %d heals, %d failed; slowest rejoin %s, %d not rejoined within 2 min\n",
			chaos.seed, stats.Kills, stats.Restarts, stats.Partitions, stats.Heals, stats.Failed,
			stats.MaxRejoin.Round(time.Millisecond), stats.NotRejoined)
	}
	fmt.Fprintln(out, "testnet: stopping the members")
	if cerr := p.Close(); cerr != nil {
		return cerr
	}
	fmt.Fprintf(out, "testnet: stopped; the data stays in %s\n", l.Dir)
	return err
}

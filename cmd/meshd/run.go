package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/node"
)

func newRunCommand() *cobra.Command {
	var (
		dir             string
		httpAddr, level string
		period          string
		federation      string
		transferPublic  bool
		adminToken      string
	)
	cmd := &cobra.Command{
		Use:   "run --dir DIR",
		Short: "Run a node until SIGINT or SIGTERM",
		Long: `Run serves the portal, closes an epoch every period on the wall-clock
schedule, and (with a federation file) takes part in the InterMesh.
Settings come from DIR/meshd.toml, then MESHD_* environment variables, then flags.

SIGUSR1 isolates the node from the other federation members (its connection
gater refuses and closes every member connection; the portal keeps serving);
SIGUSR2 lets it reconnect. 'meshd testnet --chaos' partitions members this way.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return fmt.Errorf("run: --dir is required")
			}
			c, err := config.Load(dir, os.Getenv)
			if err != nil {
				return err
			}
			f := cmd.Flags()
			if f.Changed("http") {
				c.HTTP.Listen = httpAddr
			}
			if f.Changed("log-level") {
				c.Log.Level = level
			}
			if f.Changed("period") {
				if err := c.Epoch.Period.UnmarshalText([]byte(period)); err != nil {
					return fmt.Errorf("run: --period: %w", err)
				}
			}
			if f.Changed("federation") {
				c.P2P.Federation = federation
			}
			if f.Changed("transfer-public") {
				c.HTTP.TransferPublic = transferPublic
			}
			if f.Changed("admin-token") {
				c.HTTP.AdminToken = adminToken
			}
			if err := c.Validate(); err != nil {
				return err
			}
			logger := newLogger(cmd.ErrOrStderr(), c.Log)
			if limit, source := node.ApplyMemoryLimit(c, os.Getenv); source != "none" {
				logger.Info("Go memory limit", "mib", limit>>20, "from", source)
			}
			logger.Info("store profile", "profile", c.StoreProfile(), "setting", c.Store.Profile)
			n, err := node.New(cmd.Context(), c, logger)
			if err != nil {
				return err
			}
			stopSignals := isolateOnSignals(cmd.Context(), n, logger)
			defer stopSignals()
			return n.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "node directory, made by 'meshd init' (required)")
	cmd.Flags().StringVar(&httpAddr, "http", "", "portal listen address (overrides http.listen)")
	cmd.Flags().StringVar(&level, "log-level", "", "debug, info, warn or error (overrides log.level)")
	cmd.Flags().StringVar(&period, "period", "", "epoch period, e.g. 10s (overrides epoch.period)")
	cmd.Flags().StringVar(&federation, "federation", "", "federation file (overrides p2p.federation)")
	cmd.Flags().BoolVar(&transferPublic, "transfer-public", false, "let anyone call Transfer (overrides http.transfer_public)")
	cmd.Flags().StringVar(&adminToken, "admin-token", "", "the operator's bearer token for DeleteAccount without a proof (overrides http.admin_token; "+
		"other users of the machine can read command lines: prefer MESHD_HTTP_ADMIN_TOKEN or the config file)")
	return cmd
}

// defaultLogging is the text log format at the given level.
func defaultLogging(level string) config.Logging { return config.Logging{Level: level, Format: "text"} }

// newLogger builds the daemon's slog logger from the log settings.
func newLogger(w io.Writer, c config.Logging) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

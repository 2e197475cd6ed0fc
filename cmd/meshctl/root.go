package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
)

// Defaults of the global flags, and the environment variables that override
// them.
const (
	defaultPortal = "http://127.0.0.1:8080"
	defaultHome   = ".meshctl" // under the user's home directory
	envPortal     = "MESHCTL_PORTAL"
	envHome       = "MESHCTL_HOME"
	envToken      = "MESHCTL_TOKEN"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the operation failed (a portal error, a keystore error ...)
	exitUsage   = 2 // the command line is wrong
)

// globalOptions are the flags every command shares. newRootCommand builds
// one and hands it to each command group.
type globalOptions struct {
	portal string
	home   string
	json   bool
	token  string
	// rand is the source of key material (crypto/rand.Reader).
	rand io.Reader
}

// newRootCommand builds the meshctl command tree. A new command group is one
// more AddCommand here.
func newRootCommand() *cobra.Command {
	opts := &globalOptions{rand: rand.Reader}
	root := &cobra.Command{
		Use:   "meshctl",
		Short: "The Mesh user's side of every portal transaction",
		Long: `meshctl creates Mesh profiles and keys in a local keystore, and drives the
transactions of a Mesh portal: accounts, publishing, device connection,
key escrow, status and log transfer.

Private keys stay in the keystore (--home, files mode 0600); they are never
sent to a portal. Output is for humans unless --json is given.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          noSubcommand,
		RunE:          missingSubcommand,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&opts.portal, "portal", envOr(envPortal, defaultPortal), "portal base URL (env "+envPortal+")")
	pf.StringVar(&opts.home, "home", os.Getenv(envHome), "keystore directory (env "+envHome+"; default ~/"+defaultHome+")")
	pf.BoolVar(&opts.json, "json", false, "print results as JSON, for scripts")
	// The token's default is read from the environment after parsing, so
	// that --help never prints it.
	pf.StringVar(&opts.token, "token", "", "bearer token sent to the portal, for Transfer or operator deletes (env "+envToken+")")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if !cmd.Flags().Changed("token") {
			opts.token = os.Getenv(envToken)
		}
		return nil
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{cmd: c, err: err}
	})
	root.AddCommand(
		newProfileCommand(opts),
		newAccountCommand(opts),
		newPublishCommand(opts),
		newGetCommand(opts),
		newVerifyProofCommand(opts),
		newDeviceCommand(opts),
		newMessageCommand(opts),
		newEscrowCommand(opts),
		newStatusCommand(opts),
		newHelloCommand(opts),
		newTransferCommand(opts),
		newAuditCommand(opts),
		newLoadCommand(opts),
		newFederationCommand(opts),
		newMonitorCommand(opts),
	)
	return root
}

// run executes meshctl with args and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return report(stderr, root.ExecuteContext(ctx))
}

// report prints err (if any) and returns the exit code.
func report(stderr io.Writer, err error) int {
	var ue *usageError
	var ee *exitError
	var pe *portal.Error
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		path := "meshctl"
		if ue.cmd != nil {
			path = ue.cmd.CommandPath()
		}
		fmt.Fprintf(stderr, "meshctl: %v\nRun '%s --help' for usage.\n", ue.err, path)
		return exitUsage
	case errors.As(err, &pe):
		// "meshctl: <what was being done>: the portal answered Status 404
		// (<reference text>): <StatusDescription>"
		what := strings.TrimSuffix(err.Error(), pe.Error())
		fmt.Fprintf(stderr, "meshctl: %sthe portal answered Status %d (%s): %s\n", what, pe.Status, portal.StatusText(pe.Status), pe.Description)
		return exitFailure
	case strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag"):
		fmt.Fprintf(stderr, "meshctl: %v\nRun 'meshctl --help' for usage.\n", err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "meshctl: %v\n", err)
	return exitFailure
}

// usageError is a mistake on the command line (of cmd, or of a global
// flag when cmd is nil).
type usageError struct {
	cmd *cobra.Command
	err error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef returns a usageError for cmd.
func usagef(cmd *cobra.Command, format string, args ...any) error {
	return &usageError{cmd: cmd, err: fmt.Errorf(format, args...)}
}

// exitError ends meshctl with a code and nothing more to say (the command
// already printed its result, e.g. an account name that is not valid).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// exactArgs is cobra.ExactArgs with a usage error naming what is expected.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef(cmd, "%s takes %s (got %d arguments)", commandName(cmd), what, len(args))
		}
		return nil
	}
}

// maxArgs is cobra.MaximumNArgs with a usage error.
func maxArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usagef(cmd, "%s takes at most %s (got %d arguments)", commandName(cmd), what, len(args))
		}
		return nil
	}
}

// noSubcommand rejects arguments to a command group: they name a
// subcommand that does not exist.
func noSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef(cmd, "unknown command %q for %q", args[0], commandName(cmd))
	}
	return nil
}

// missingSubcommand is the RunE of a command group.
func missingSubcommand(cmd *cobra.Command, _ []string) error {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return usagef(cmd, "%s needs a subcommand: %s", commandName(cmd), strings.Join(names, ", "))
}

// commandName is the command's path without the root's name ("account
// create"), or the root's name for the root.
func commandName(cmd *cobra.Command) string {
	if !cmd.HasParent() {
		return cmd.Name()
	}
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// newGroup returns a command group (a command that only holds subcommands).
func newGroup(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Args: noSubcommand, RunE: missingSubcommand}
	c.AddCommand(subs...)
	return c
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// findProfile opens the keystore and finds the profile ref names (a UDF, a
// prefix of one, or a name; "" for the keystore's only profile).
func (o *globalOptions) findProfile(ref string) (*localProfile, error) {
	ks, err := o.keystore()
	if err != nil {
		return nil, err
	}
	return ks.FindProfile(ref)
}

// keystore opens the keystore at --home (default ~/.meshctl).
func (o *globalOptions) keystore() (*Keystore, error) {
	dir := o.home
	if dir == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("finding the keystore: %w (set --home or %s)", err, envHome)
		}
		dir = filepath.Join(h, defaultHome)
	}
	return OpenKeystore(dir)
}

// client returns a portal client for --portal (and --token).
func (o *globalOptions) client() (*portalClient, error) {
	u, err := url.Parse(o.portal)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &usageError{err: fmt.Errorf("--portal %q is not a portal URL: want http://host:port or https://host", o.portal)}
	}
	var copts []client.Option
	if o.token != "" {
		copts = append(copts, client.WithToken(o.token))
	}
	c, err := client.New(o.portal, copts...)
	if err != nil {
		return nil, err
	}
	return &portalClient{Client: c, url: o.portal}, nil
}

// portalClient is the portal client with the URL it talks to, for messages.
type portalClient struct {
	*client.Client
	url string
}

// wrap adds what was being done to a transaction's error; an error that
// never reached the portal says so.
func (c *portalClient) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	var pe *portal.Error
	if errors.As(err, &pe) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: cannot talk to the portal at %s: %w", what, c.url, err)
}

// emit prints a result: v as JSON with --json, otherwise what human writes.
func (o *globalOptions) emit(cmd *cobra.Command, v any, human func(w io.Writer)) error {
	w := cmd.OutOrStdout()
	if o.json {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("writing JSON output: %w", err)
		}
		return nil
	}
	human(w)
	return nil
}

// emitVerdict is emit for a check: after the output, a check that did not
// hold (ok false) exits with exitFailure.
func (o *globalOptions) emitVerdict(cmd *cobra.Command, v any, human func(w io.Writer), ok bool) error {
	if err := o.emit(cmd, v, human); err != nil {
		return err
	}
	if !ok {
		return &exitError{code: exitFailure}
	}
	return nil
}

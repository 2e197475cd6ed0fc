// Command meshd is the intermesh daemon: a Mesh portal that replicates its
// log with a federation of other portals.
//
//	meshd init --dir DIR [--origin NAME] [--http ADDR]   create a node directory
//	meshd run  --dir DIR [--http ADDR]                   run the node until SIGINT/SIGTERM
//	meshd testnet [--nodes N] [--dir DIR]                run a local N-node federation
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		if !errors.Is(err, errReported) {
			fmt.Fprintln(os.Stderr, "meshd:", err)
		}
		os.Exit(exitCode(err))
	}
}

// exitCode is 2 for a mistake on the command line (an unknown command or
// flag, a missing argument), 1 for any other failure.
func exitCode(err error) int {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "required flag", "accepts ", "unknown option"} {
		if strings.HasPrefix(msg, p) {
			return 2
		}
	}
	return 1
}

// errReported is returned by commands that have already told the user.
var errReported = errors.New("reported")

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "meshd",
		Short:         "The intermesh daemon: a Mesh portal that replicates its log with a federation",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newInitCommand(), newRunCommand(), newTestnetCommand(), newMemberCommand())
	return root
}

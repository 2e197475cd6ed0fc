package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// newStatusCommand is 'meshctl status': the portal's log and checkpoints.
func newStatusCommand(opts *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the portal's log and checkpoint status (Status)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := opts.client()
			if err != nil {
				return err
			}
			resp, err := c.Status(cmd.Context())
			if err != nil {
				return c.wrap("asking for the status", err)
			}
			return opts.emit(cmd, resp, func(w io.Writer) {
				fmt.Fprintf(w, "Portal            %s\n", opts.portal)
				fmt.Fprintf(w, "Last write        %s\n", formatTime(resp.LastWriteTime))
				fmt.Fprintf(w, "Last checkpoint   %s\n", formatTime(resp.LastCheckpointTime))
				fmt.Fprintf(w, "Next checkpoint   %s\n", formatTime(resp.NextCheckpointTime))
				if origin, size, ok := checkpointSize(resp.CheckpointValue); ok {
					fmt.Fprintf(w, "Checkpoint        %s, tree size %d\n", origin, size)
				} else {
					fmt.Fprintf(w, "Checkpoint        none yet\n")
				}
				fmt.Fprintf(w, "Federation peers  %d\n", len(resp.Peers))
				for _, p := range resp.Peers {
					_, size, _ := checkpointSize(p.Checkpoint)
					fmt.Fprintf(w, "  %s  tree size %d\n", p.Origin, size)
				}
				if resp.CheckpointValue != "" {
					fmt.Fprintf(w, "\nThe latest checkpoint, as signed (a C2SP signed note: origin, size, root, round, time, prev):\n%s\n",
						strings.TrimSuffix(resp.CheckpointValue, "\n"))
				}
			})
		},
	}
}

// checkpointSize reads the origin and tree size of a C2SP checkpoint note
// (origin line, then the size). It does not verify the note.
func checkpointSize(note string) (string, uint64, bool) {
	lines := strings.SplitN(note, "\n", 3)
	if len(lines) < 3 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(lines[1], 10, 64)
	return lines[0], n, err == nil
}

func formatTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// newHelloCommand is 'meshctl hello': the portal's protocol versions.
func newHelloCommand(opts *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "hello",
		Short: "Ask the portal which protocol versions it speaks (Hello)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := opts.client()
			if err != nil {
				return err
			}
			resp, err := c.Hello(cmd.Context())
			if err != nil {
				return c.wrap("saying hello", err)
			}
			return opts.emit(cmd, resp, func(w io.Writer) {
				fmt.Fprintf(w, "Portal %s: %s\n", opts.portal, resp.StatusDescription)
				if v := resp.Version; v != nil {
					var enc []string
					for _, e := range v.Encodings {
						enc = append(enc, e.ID...)
					}
					fmt.Fprintf(w, "Protocol %d.%d  encodings: %s\n", v.Major, v.Minor, orDash(strings.Join(enc, ", ")))
					for _, u := range v.URI {
						fmt.Fprintf(w, "Service URI %s\n", u)
					}
				}
				if resp.Service != "" {
					fmt.Fprintf(w, "Service name %s (the portal account proofs are signed for)\n", resp.Service)
				}
			})
		},
	}
}

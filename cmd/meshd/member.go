package main

import (
	"crypto/ed25519"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/intermesh/intermesh/config"
)

// newMemberCommand prints a node's [[member]] entry for the federation
// file, so that operators on separate machines can assemble it.
func newMemberCommand() *cobra.Command {
	var (
		dir     string
		addrs   []string
		httpURL string
		domains []string
	)
	cmd := &cobra.Command{
		Use:   "member --dir DIR [--addr MULTIADDR,...] [--http-url URL] [--domain DOMAIN,...]",
		Short: "Print this node's [[member]] entry for the federation file",
		Long: `Member reads the node's key and config and prints the [[member]] entry that
the federation file needs for it: origin, libp2p peer ID, note verifier key,
the libp2p addresses the other members dial (default: p2p.listen; give the
public addresses with --addr when the node listens on 0.0.0.0 or behind NAT)
the portal URL auditors use (default: http://<http.listen>) and the account
domains the member serves (--domain; none: it creates accounts of any name).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return fmt.Errorf("member: --dir is required")
			}
			c, err := config.Load(dir, os.Getenv)
			if err != nil {
				return err
			}
			key, err := config.LoadKey(c.KeyPath())
			if err != nil {
				return err
			}
			pub := key.Public().(ed25519.PublicKey)
			vkey, err := config.VerifierKey(c.Origin, pub)
			if err != nil {
				return err
			}
			id, err := config.PeerIDFromKey(pub)
			if err != nil {
				return fmt.Errorf("member: %w", err)
			}
			if len(addrs) == 0 {
				addrs = c.P2P.Listen
			}
			if httpURL == "" {
				httpURL = "http://" + c.HTTP.Listen
			}
			for _, d := range domains {
				if err := config.CheckDomain(d); err != nil {
					return fmt.Errorf("member: --domain: %w", err)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "[[member]]\norigin = %q\npeer_id = %q\nkey = %q\naddrs = [%s]\nhttp = %q\n",
				c.Origin, id.String(), vkey, quoteAll(addrs), httpURL)
			if len(domains) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "domains = [%s]\n", quoteAll(domains))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "node directory, made by 'meshd init' (required)")
	cmd.Flags().StringSliceVar(&addrs, "addr", nil, "libp2p multiaddresses the other members dial (default p2p.listen)")
	cmd.Flags().StringVar(&httpURL, "http-url", "", "portal URL for auditors (default http://<http.listen>)")
	cmd.Flags().StringSliceVar(&domains, "domain", nil, "account domains the member serves, lower-case DNS names (default none: any name)")
	return cmd
}

// quoteAll is a TOML array's elements: each string quoted, comma-separated.
func quoteAll(ss []string) string {
	quoted := make([]string, len(ss))
	for i, s := range ss {
		quoted[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(quoted, ", ")
}

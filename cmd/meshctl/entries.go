package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// publishResult is the JSON output of publish and profile publish.
type publishResult struct {
	Type              string
	Identifier        string `json:",omitempty"`
	Status            int
	StatusDescription string `json:",omitempty"`
}

// newPublishCommand is 'meshctl publish FILE|-': publish a signed entry.
func newPublishCommand(opts *globalOptions) *cobra.Command {
	var account string
	cmd := &cobra.Command{
		Use:   "publish FILE|- [--account NAME@DOMAIN]",
		Short: "Publish a signed entry (a profile or an OfflineEscrowEntry) from a file or stdin (Publish)",
		Long: `Publish a type-tagged Mesh entry, {"<Type>":[header, payload, trailer]}, read from
FILE or from stdin ("-"), for an account of the portal (--account; default: the
keystore's only account). The entry is checked locally first (shape, digest and
signature), so a broken file is reported before anything is sent. An entry that
is not the account's own profile is vouched for by an AccountProof signed with
the administration key of the account's profile, from the keystore.`,
		Args:    exactArgs(1, "one file name, or - for stdin"),
		PreRunE: accountFlags("account"),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, src, err := readInput(cmd, args[0])
			if err != nil {
				return err
			}
			raw = bytes.TrimSpace(raw)
			e, err := mesh.VerifyEntry(raw, 0)
			if err != nil {
				return fmt.Errorf("%s is not a valid signed entry: %w", src, err)
			}
			ks, err := opts.keystore()
			if err != nil {
				return err
			}
			if account, err = defaultAccount(cmd, ks, account); err != nil {
				return err
			}
			c, err := opts.client()
			if err != nil {
				return err
			}
			req := &portal.PublishRequest{Entry: raw, AccountID: account}
			if p, err := ks.ProfileOfAccount(account); err != nil || !mesh.UDFEqual(p.State.Identifier, e.Identifier.String()) {
				if req.Proof, err = signAccountProof(cmd.Context(), c, ks, account, portal.TxPublish, raw); err != nil {
					return err
				}
			}
			resp, err := c.Publish(cmd.Context(), req)
			if err != nil {
				return c.wrap("publishing "+e.Type+" "+e.Identifier.String(), err)
			}
			r := publishResult{Type: e.Type, Identifier: e.Identifier.String(), Status: resp.Status, StatusDescription: resp.StatusDescription}
			return opts.emit(cmd, r, func(w io.Writer) {
				fmt.Fprintf(w, "Published %s %s to %s\n", r.Type, r.Identifier, opts.portal)
			})
		},
	}
	cmd.Flags().StringVar(&account, "account", "", "the account to publish for (default: the keystore's only account)")
	return cmd
}

// readInput reads a file, or stdin for "-", and says which it read.
func readInput(cmd *cobra.Command, name string) ([]byte, string, error) {
	if name == "-" {
		b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), mesh.MaxEnvelopeSize+1))
		if err != nil {
			return nil, "", fmt.Errorf("reading stdin: %w", err)
		}
		return b, "stdin", nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, "", fmt.Errorf("reading the entry: %w", err)
	}
	return b, name, nil
}

// getOptions are the flags of 'meshctl get'.
type getOptions struct {
	id, account string
	full, all   bool
	raw, verify bool
	federation  string
	proofOut    string // --proof-out: where to write the proof bundle
}

// getItem is one entry of the JSON output of get: the portal's DataItem and
// what meshctl made of it.
type getItem struct {
	portal.DataItem
	// Type is the entry's type tag, e.g. ProfileMesh.
	Type string `json:",omitempty"`
	// Verified reports that the entry's signature was checked here.
	Verified bool
	// VerifyError says why it could not be.
	VerifyError string `json:",omitempty"`
	// Decoded is the envelope's payload, decoded (type-tagged JSON).
	Decoded json.RawMessage `json:",omitempty"`
}

// newGetCommand is 'meshctl get': look up entries (Get).
func newGetCommand(opts *globalOptions) *cobra.Command {
	var g getOptions
	cmd := &cobra.Command{
		Use:   "get (--id UDF | --account NAME@DOMAIN) [--full] [--all] [--raw] [--verify --federation FILE]",
		Short: "Get a published profile or escrow entry by identifier or account (Get)",
		Long: `Get the latest version of a published entry, by its identifier (--id) or by the
account it is bound to (--account). --all gets every version, oldest first; --full
adds the log metadata (index, time, leaf). Each entry's signature is verified
locally. --raw prints only the entries, one per line, as 'meshctl publish -' reads
them. --verify (with --federation FILE, implies --full) proves, offline with the
federation file's keys, that the answer is the latest version (or that there is
none) under a checkpoint that a quorum of the federation certified at most two
rounds ago, asking other members for a newer certificate when needed: an
account at its home member (the member serving its domain), an identifier alone
in every member's log. It says what it proved, and exits 1 if anything could not
be proved. With --all it proves the complete history (of an identifier alone, in
every member's log, or its absence from it); --proof-out FILE writes what was
proved for 'meshctl verify-proof'.`,
		Args:    exactArgs(0, "no arguments (use --id or --account)"),
		PreRunE: accountFlags("account"),
		RunE:    func(cmd *cobra.Command, _ []string) error { return g.run(cmd, opts) },
	}
	f := cmd.Flags()
	f.StringVar(&g.id, "id", "", "identifier (UDF) of the profile or escrow entry")
	f.StringVar(&g.account, "account", "", "account whose profile to get")
	f.BoolVar(&g.full, "full", false, "include the log metadata: index, time, kind, leaf")
	f.BoolVar(&g.all, "all", false, "every version, oldest first (Multiple)")
	f.BoolVar(&g.raw, "raw", false, "print only the entries, one JSON per line")
	f.BoolVar(&g.verify, "verify", false, "check the entries' inclusion and the federation's certificate offline (needs --federation)")
	f.StringVar(&g.federation, "federation", "", "the federation file whose member keys --verify trusts")
	f.StringVar(&g.proofOut, "proof-out", "", "with --verify: write what was proved to this file, a proof bundle 'meshctl verify-proof' checks offline")
	return cmd
}

// run checks the flags of 'meshctl get', fetches the entries and prints them.
func (g *getOptions) run(cmd *cobra.Command, opts *globalOptions) error {
	if (g.id == "") == (g.account == "") {
		return usagef(cmd, "get needs exactly one of --id UDF and --account NAME")
	}
	var keys *getVerifier
	if g.verify != (g.federation != "") {
		return usagef(cmd, "--verify needs --federation FILE, and --federation is only for --verify")
	}
	if g.proofOut != "" && (!g.verify || g.all) {
		return usagef(cmd, "--proof-out needs --verify, and proves the latest version (not --all)")
	}
	if g.verify {
		var err error
		if keys, err = newGetVerifier(g.federation); err != nil {
			return err
		}
		g.full = true
	}
	items, checks, err := g.fetch(cmd, opts, keys)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if g.raw {
		for _, it := range items {
			fmt.Fprintf(w, "%s\n", it.Entry)
		}
		return nil
	}
	if keys == nil {
		return opts.emit(cmd, items, func(w io.Writer) {
			for _, it := range items {
				printItem(w, it)
			}
		})
	}
	return emitGetProofs(cmd, opts, items, checks)
}

// fetch gets every page of the lookup; with keys, it verifies each page.
func (g *getOptions) fetch(cmd *cobra.Command, opts *globalOptions, keys *getVerifier) (items []getItem, checks []getVerification, err error) {
	c, err := opts.client()
	if err != nil {
		return nil, nil, err
	}
	req := &portal.GetRequest{Identifier: g.id, Account: g.account, Full: g.full, Multiple: g.all}
	what := "getting " + g.id
	if g.account != "" {
		what = "getting account " + fmt.Sprintf("%q", g.account)
	}
	switch {
	case keys != nil && g.all && g.account == "":
		return g.fetchEveryOriginHistory(cmd.Context(), c, keys, req, what)
	case keys != nil && g.all:
		return g.fetchHistory(cmd.Context(), c, keys, req, what)
	case keys != nil && g.proofOut != "" && g.account == "":
		return g.fetchEveryOriginBundle(cmd, c, keys, req, what, g.proofOut)
	case keys != nil && g.proofOut != "":
		return g.fetchLatestBundle(cmd, c, keys, req, what, g.proofOut)
	case keys != nil:
		return g.fetchLatest(cmd.Context(), c, keys, req, what)
	}
	for {
		resp, err := c.Get(cmd.Context(), req)
		if err != nil {
			return nil, nil, c.wrap(what, err)
		}
		for _, d := range resp.DataItems {
			items = append(items, inspectItem(d))
		}
		if keys != nil {
			checks = append(checks, verifyGet(keys, resp))
		}
		if resp.PageKey == "" {
			return items, checks, nil
		}
		req.SearchConstraints = &portal.SearchConstraints{PageKey: resp.PageKey}
	}
}

// emitGetProofs prints the entries and what --verify proved, or failed to.
func emitGetProofs(cmd *cobra.Command, opts *globalOptions, items []getItem, checks []getVerification) error {
	failed := slices.ContainsFunc(checks, func(v getVerification) bool { return v.Failed != "" })
	return opts.emitVerdict(cmd, struct {
		Items  []getItem
		Proofs []getVerification
	}{items, checks}, func(w io.Writer) {
		for _, it := range items {
			printItem(w, it)
		}
		for _, v := range checks {
			printProved(w, "proved:", v)
		}
		if !failed {
			fmt.Fprintln(w, "Verified: everything above is proved with the federation file's keys.")
		}
	}, !failed)
}

// inspectItem verifies and decodes an item's entry where it can.
func inspectItem(d portal.DataItem) getItem {
	it := getItem{DataItem: d, Type: portal.Entry(d.Entry).Type()}
	if len(d.Entry) == 0 {
		return it
	}
	if _, env, err := mesh.ParseEntry(d.Entry); err == nil && json.Valid(env.Payload) {
		it.Decoded = env.Payload
	}
	e, err := mesh.VerifyEntry(d.Entry, 0)
	if err != nil {
		it.VerifyError = err.Error()
		return it
	}
	it.Verified = true
	if it.Identifier == "" {
		it.Identifier = e.Identifier.String()
	}
	return it
}

// printItem prints one got entry for humans.
func printItem(w io.Writer, it getItem) {
	fmt.Fprintf(w, "%s %s\n", orDash(it.Type), it.Identifier)
	if it.Index != nil {
		fmt.Fprintf(w, "  index     %d\n", *it.Index)
	}
	if it.Time != nil {
		fmt.Fprintf(w, "  time      %s\n", it.Time.UTC().Format(time.RFC3339Nano))
	}
	for _, f := range [][2]string{{"kind", it.Kind}, {"account", it.Account}, {"origin", it.Origin}} {
		if f[1] != "" {
			fmt.Fprintf(w, "  %-9s %s\n", f[0], f[1])
		}
	}
	if it.Replicated {
		fmt.Fprintf(w, "  replicated from %s's log\n", orDash(it.Origin))
	}
	switch {
	case it.Verified && it.Type == mesh.TypeOfflineEscrowEntry:
		fmt.Fprintf(w, "  verified  digest (escrow entries are not signed)\n")
	case it.Verified:
		fmt.Fprintf(w, "  verified  signature OK\n")
	case it.VerifyError != "":
		fmt.Fprintf(w, "  verified  NO: %s\n", it.VerifyError)
	}
	if len(it.Decoded) > 0 {
		var buf bytes.Buffer
		if json.Indent(&buf, it.Decoded, "  ", "  ") == nil {
			fmt.Fprintf(w, "  payload   %s\n", buf.String())
		}
	}
}

package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/intermesh/intermesh/portal"
)

// fetchLatestBundle is fetchLatest for 'get --verify --proof-out out': it
// asks, verifies the certificate the answer carries, asks again under the
// certified round if need be, proves the answer at a whole second, and
// writes what it proved as a proof bundle (bundle.go), keeping the
// certificate proof it verified. It writes nothing unless everything was
// proved, and checks that the bundle it writes verifies offline.
//
// It takes fetchLatest's steps (askCertified: the account's home member,
// a newer certificate from another member, the certified round), and
// keeps the proof of the certificate it proved under.
func (g *getOptions) fetchLatestBundle(cmd *cobra.Command, c *portalClient, keys *getVerifier, req *portal.GetRequest, what, out string) ([]getItem, []getVerification, error) {
	ctx := cmd.Context()
	c, err := homeClient(keys, g.account, c)
	if err != nil {
		return nil, nil, err
	}
	resp, certp, err := askCertified(ctx, c, keys, req, what)
	if err != nil {
		return nil, nil, err
	}
	if certp == nil {
		return itemsOf(resp), []getVerification{{Failed: "the answer carries no certificate that verifies"}}, nil
	}
	q, now := g.query(), time.Now().UTC().Truncate(time.Second)
	v := verifyLatest(keys, *certp, q, resp, now)
	err = g.keepBundle(cmd, keys, []getVerification{v}, out, func() (*proofBundle, error) { return newProofBundle(q, now, resp, certp.proof) })
	if err != nil {
		return nil, nil, err
	}
	return itemsOf(resp), []getVerification{v}, nil
}

// keepBundle writes the bundle that bundle makes of what checks proved
// to out, when every check proved, and says on stderr what it did.
func (g *getOptions) keepBundle(cmd *cobra.Command, keys *getVerifier, checks []getVerification, out string, bundle func() (*proofBundle, error)) error {
	if slices.ContainsFunc(checks, func(v getVerification) bool { return v.Failed != "" }) {
		fmt.Fprintf(cmd.ErrOrStderr(), "meshctl: no proof bundle written to %s: the answer is not proved\n", out)
		return nil
	}
	b, err := bundle()
	if err != nil {
		return fmt.Errorf("the proof bundle: %w", err)
	}
	if err := saveProofBundle(keys, b, out); err != nil {
		return err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "meshctl: wrote the proof bundle %s (check it with: meshctl verify-proof %s --federation %s)\n", out, out, g.federation)
	return nil
}

// saveProofBundle writes b, the bundle of proved answers, to path, after
// checking that it verifies offline, as of its time, as it is written.
func saveProofBundle(keys *getVerifier, b *proofBundle, path string) error {
	data, err := b.MarshalText()
	if err != nil {
		return fmt.Errorf("the proof bundle: %w", err)
	}
	back, err := parseProofBundle(data)
	if err != nil {
		return fmt.Errorf("the proof bundle: %w", err)
	}
	if v := verifyBundle(keys, back, b.at); v.Proof.Failed != "" {
		return fmt.Errorf("the proof bundle does not verify as written: %s", v.Proof.Failed)
	}
	return writeBundleFile(path, data)
}

// newVerifyProofCommand is 'meshctl verify-proof FILE --federation F'.
func newVerifyProofCommand(opts *globalOptions) *cobra.Command {
	var federation string
	cmd := &cobra.Command{
		Use:   "verify-proof FILE --federation FILE",
		Short: "Verify offline a proof bundle that 'get --verify --proof-out' wrote",
		Long: `Verify offline, with the federation file's member keys alone, a proof bundle
(docs/formats.md, "Proof bundles") that 'meshctl get --verify --proof-out FILE'
wrote: the master-hash certificate, the answer's records and inclusion proofs
under the checkpoint it certifies, and the map lookup proofs that make the
record the latest version of the name, or prove the name absent. A bundle of a
lookup by identifier alone (get --id X) holds a section per member origin under
one certificate: each is proved against that origin's certified checkpoint and
reported origin by origin, and every member origin of the federation file must
have exactly one section. Freshness is
judged as of the time the bundle records (the time the getter checked it);
verify-proof also says whether the certificate is still fresh now. It exits 0
if everything is proved as of that time, 1 if not (or the bundle is malformed),
2 for a command-line mistake.`,
		Args: exactArgs(1, "one proof bundle file"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if federation == "" {
				return usagef(cmd, "verify-proof needs --federation FILE, the federation whose keys it trusts")
			}
			return runVerifyProof(cmd, opts, args[0], federation)
		},
	}
	cmd.Flags().StringVar(&federation, "federation", "", "the federation file whose member keys the proof is checked with")
	return cmd
}

// runVerifyProof reads, verifies and reports a proof bundle.
func runVerifyProof(cmd *cobra.Command, opts *globalOptions, file, federation string) error {
	keys, err := newGetVerifier(federation)
	if err != nil {
		return err
	}
	data, err := readBundleFile(file)
	if err != nil {
		return err
	}
	b, err := parseProofBundle(data)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	v := verifyBundle(keys, b, time.Now())
	asOf := v.AsOf.Format(time.RFC3339)
	return opts.emitVerdict(cmd, v, func(w io.Writer) {
		for _, it := range v.Items {
			printItem(w, it)
		}
		for _, o := range v.Origins {
			printProved(w, fmt.Sprintf("proved of %s's log as of %s:", o.Origin, asOf), o.Proof)
		}
		printProved(w, fmt.Sprintf("proved as of %s (the time the bundle records; freshness is judged then):", asOf), v.Proof)
		if v.Proof.Failed != "" {
			return
		}
		fmt.Fprintf(w, "Verified: everything above is proved with the federation file's keys, as of %s.\n", asOf)
		if v.StillFresh {
			fmt.Fprintf(w, "Still fresh now (%s): the certificate is recent enough for the answer to be the latest now too.\n", v.Now.Format(time.RFC3339))
		} else {
			fmt.Fprintf(w, "No longer fresh now (%s): %s\n", v.Now.Format(time.RFC3339), v.Stale)
		}
	}, v.Proof.Failed == "")
}

// printProved prints a heading and what v proved, or failed to.
func printProved(w io.Writer, heading string, v getVerification) {
	fmt.Fprintln(w, heading)
	for _, p := range v.Proved {
		fmt.Fprintf(w, "  %s\n", p)
	}
	if v.Failed != "" {
		fmt.Fprintf(w, "NOT PROVED: %s\n", v.Failed)
	}
}

// readBundleFile reads a bundle file of at most maxBundleSize bytes.
func readBundleFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("reading the proof bundle: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBundleSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading the proof bundle %s: %w", file, err)
	}
	if len(data) > maxBundleSize {
		return nil, fmt.Errorf("the proof bundle %s is over %d bytes", file, maxBundleSize)
	}
	return data, nil
}

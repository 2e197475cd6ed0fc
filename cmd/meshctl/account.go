package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/intermesh/intermesh/portal"
)

// newAccountCommand is 'meshctl account': portal accounts.
func newAccountCommand(opts *globalOptions) *cobra.Command {
	return newGroup("account", "Validate, create and delete portal accounts",
		newAccountValidateCommand(opts),
		newAccountCreateCommand(opts),
		newAccountDeleteCommand(opts),
	)
}

func newAccountValidateCommand(opts *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "validate NAME@DOMAIN",
		Short: "Ask the portal whether an account name is acceptable and free (ValidateAccount)",
		Long: `Ask the portal whether an account name (NAME@DOMAIN, e.g. alice@example.com) is
acceptable and free. The exit code is 0 if it is, 1 if it is not (the reason is
printed), 2 for a name without a domain.`,
		Args: accountArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := opts.client()
			if err != nil {
				return err
			}
			resp, err := c.ValidateAccount(cmd.Context(), &portal.ValidateRequest{Account: args[0]})
			if err != nil {
				return c.wrap(fmt.Sprintf("validating account %q", args[0]), err)
			}
			return opts.emitVerdict(cmd, resp, func(w io.Writer) {
				if resp.Valid {
					fmt.Fprintf(w, "%q: available\n", args[0])
					return
				}
				fmt.Fprintf(w, "%q: not available: %s\n", args[0], resp.Reason)
				if resp.InvalidCharacters != "" {
					fmt.Fprintf(w, "  invalid characters: %q\n", resp.InvalidCharacters)
				}
				if resp.Minimum > 0 || resp.Maximum > 0 {
					fmt.Fprintf(w, "  length: %d to %d\n", resp.Minimum, resp.Maximum)
				}
			}, resp.Valid)
		},
	}
}

// checkAccount is meshctl's one check of an account name on the command line
// (where: "account create", "get --account"): NAME@DOMAIN, neither part
// empty, or a usage error (exit 2). The portal also takes names without a
// domain; meshctl creates and addresses only names with one.
func checkAccount(cmd *cobra.Command, where, name string) error {
	if local, domain, _ := strings.Cut(name, "@"); local == "" || domain == "" {
		return usagef(cmd, "%s %q: an account name is NAME@DOMAIN, for example alice@example.com", where, name)
	}
	return nil
}

// accountArg is the Args of a command that takes one account name.
func accountArg(cmd *cobra.Command, args []string) error {
	if err := exactArgs(1, "one account name")(cmd, args); err != nil {
		return err
	}
	return checkAccount(cmd, commandName(cmd), args[0])
}

// accountFlags is a PreRunE that checks the account names given to the
// named flags (one not given is not checked: the command finds a default).
func accountFlags(names ...string) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		for _, name := range names {
			if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
				if err := checkAccount(cmd, commandName(cmd)+" --"+name, f.Value.String()); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

// accountResult is the JSON output of account create and delete.
type accountResult struct {
	Account           string
	Profile           string `json:",omitempty"`
	Status            int
	StatusDescription string `json:",omitempty"`
}

func newAccountCreateCommand(opts *globalOptions) *cobra.Command {
	var profile string
	cmd := &cobra.Command{
		Use:   "create NAME@DOMAIN [--profile PROFILE]",
		Short: "Create an account bound to a profile of the keystore (CreateAccount)",
		Long: `Create an account (NAME@DOMAIN, e.g. alice@example.com) at the portal, bound to
a profile of the keystore (--profile: its UDF, a prefix of it or its local
name; default: the only profile). The request carries the profile's consent to
be bound to the name: an AccountProof signed by its administration key, for
this portal (its Hello's service name). The portal registers the signed
profile and keeps the proof in the same log record. A name without a domain
is a usage error (exit 2).`,
		Args: accountArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := opts.findProfile(profile)
			if err != nil {
				return err
			}
			c, err := opts.client()
			if err != nil {
				return err
			}
			// The profile's consent to be bound to the name.
			proof, err := signProfileProof(cmd.Context(), c, p, args[0], portal.TxCreateAccount, p.Entry)
			if err != nil {
				return err
			}
			resp, err := c.CreateAccount(cmd.Context(), &portal.CreateRequest{Account: args[0], Profile: p.Entry, Proof: proof})
			if err != nil {
				return c.wrap(fmt.Sprintf("creating account %q", args[0]), err)
			}
			if err := p.BindAccount(args[0]); err != nil {
				return fmt.Errorf("account %q was created, but recording it in the keystore failed: %w", args[0], err)
			}
			if err := p.RememberWrite(resp.Written, time.Now()); err != nil {
				return fmt.Errorf("account %q was created, but recording its record in the keystore failed: %w", args[0], err)
			}
			r := accountResult{Account: args[0], Profile: p.State.Identifier, Status: resp.Status, StatusDescription: resp.StatusDescription}
			return opts.emit(cmd, r, func(w io.Writer) {
				fmt.Fprintf(w, "Created account %s at %s, bound to profile %s", args[0], opts.portal, p.State.Identifier)
				if profile == "" {
					fmt.Fprintf(w, " (the keystore's only profile; --profile names another)")
				}
				fmt.Fprintln(w)
			})
		},
	}
	cmd.Flags().StringVar(&profile, "profile", "", "the profile to bind (UDF, prefix or local name)")
	return cmd
}

func newAccountDeleteCommand(opts *globalOptions) *cobra.Command {
	var profile string
	cmd := &cobra.Command{
		Use:   "delete NAME@DOMAIN [--profile PROFILE]",
		Short: "Delete an account (DeleteAccount); its profile stays published",
		Long: `Delete an account (NAME@DOMAIN). The request carries a proof signed by the
administration key of the profile the account is bound to, which must be in the
keystore (found by the account, or named with --profile). An operator without
that key can delete any account with the portal's admin token (--token). A name
without a domain is a usage error (exit 2).`,
		Args: accountArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			account := args[0]
			ks, err := opts.keystore()
			if err != nil {
				return err
			}
			req := &portal.DeleteRequest{Account: account}
			var p *localProfile
			if profile != "" {
				p, err = ks.FindProfile(profile)
			} else {
				p, err = ks.ProfileOfAccount(account)
			}
			switch {
			case err == nil:
				key, err := p.Key(keyAdmin)
				if err != nil {
					return fmt.Errorf("signing the delete proof: %w", err)
				}
				proof, err := signEntry(&portal.DeleteProof{Account: account, Signed: time.Now()}, key)
				if err != nil {
					return err
				}
				req.Proof = proof
			case errors.Is(err, ErrNotInKeystore) && opts.token != "" && profile == "":
				// An operator's delete with the admin token, no proof.
			default:
				return fmt.Errorf("deleting account %q needs the key of its profile: %w (an operator can use --token)", account, err)
			}
			c, err := opts.client()
			if err != nil {
				return err
			}
			resp, err := c.DeleteAccount(cmd.Context(), req)
			if err != nil {
				return c.wrap(fmt.Sprintf("deleting account %q", account), err)
			}
			r := accountResult{Account: account, Status: resp.Status, StatusDescription: resp.StatusDescription}
			if p != nil {
				r.Profile = p.State.Identifier
				p.State.Accounts = slices.DeleteFunc(p.State.Accounts, func(a string) bool { return strings.EqualFold(a, account) })
				if err := p.SaveState(); err != nil {
					return fmt.Errorf("account %q was deleted, but updating the keystore failed: %w", account, err)
				}
			}
			return opts.emit(cmd, r, func(w io.Writer) {
				fmt.Fprintf(w, "Deleted account %s at %s\n", account, opts.portal)
			})
		},
	}
	cmd.Flags().StringVar(&profile, "profile", "", "the profile the account is bound to (UDF, prefix or local name)")
	return cmd
}

// signAccountProof signs an AccountProof for the portal c talks to, account
// and transaction tx (and, for Publish, entry) with the administration key
// of the account's profile, which must be in the keystore: the portal asks
// for it before it reveals the account's private state or publishes an
// entry for it. The proof names the portal as its Hello does
// (HelloResponse.Service), so no other portal takes it.
func signAccountProof(ctx context.Context, c *portalClient, ks *Keystore, account, tx string, entry portal.Entry) (portal.Entry, error) {
	p, err := ks.ProfileOfAccount(account)
	if err != nil {
		return nil, fmt.Errorf("%s for account %q needs the administration key of its profile: %w", tx, account, err)
	}
	return signProfileProof(ctx, c, p, account, tx, entry)
}

// signProfileProof is signAccountProof with the administration key of the
// keystore's profile p: for CreateAccount, the consent of the profile to be
// bound to account (entry is then the profile's own entry).
func signProfileProof(ctx context.Context, c *portalClient, p *localProfile, account, tx string, entry portal.Entry) (portal.Entry, error) {
	key, err := p.Key(keyAdmin)
	if err != nil {
		return nil, fmt.Errorf("%s for account %q: %w", tx, account, err)
	}
	hello, err := c.Hello(ctx)
	if err != nil {
		return nil, c.wrap(fmt.Sprintf("asking the portal its name for the AccountProof of %s", tx), err)
	}
	if hello.Service == "" {
		return nil, fmt.Errorf("%s for account %q: the portal at %s does not give its service name in Hello, which an AccountProof must name", tx, account, c.url)
	}
	return portal.SignAccountProof(hello.Service, account, tx, entry, time.Now(), key)
}

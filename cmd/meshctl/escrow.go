package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/intermesh/intermesh/internal/keyfile"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// Offline key escrow (seed 003 §8.5–8.6). meshctl encrypts the profile's
// private keys under a fresh symmetric key, splits that key into Shamir
// shares (portal/mesh does the cryptography) and publishes the encrypted
// OfflineEscrowEntry; the portal never sees a share. Recovery rebuilds the
// key from enough shares, gets the entry by the key's UDF, decrypts it and
// puts the keys back into the keystore.

// escrowFormat names the escrowed plaintext's format.
const escrowFormat = "meshctl-profile-keys/1"

// escrowedKeys is the plaintext of an escrow entry: the profile's private
// keys as KeyData, by role (offline, admin, encryption).
type escrowedKeys struct {
	Format  string
	Profile string
	Keys    map[string]*mesh.KeyData
}

// newEscrowCommand is 'meshctl escrow'.
func newEscrowCommand(opts *globalOptions) *cobra.Command {
	return newGroup("escrow", "Escrow a profile's keys in shares, and recover them",
		newEscrowCreateCommand(opts),
		newEscrowRecoverCommand(opts),
	)
}

// escrowResult is the JSON output of escrow create.
type escrowResult struct {
	Identifier string
	Profile    string
	Threshold  int
	Shares     []string
}

func newEscrowCreateCommand(opts *globalOptions) *cobra.Command {
	var shares, threshold int
	var profile string
	cmd := &cobra.Command{
		Use:   "create --shares M --threshold N [--profile PROFILE]",
		Short: "Encrypt the profile's keys, publish the OfflineEscrowEntry and print M shares, N of which recover them (Publish)",
		Long: `Escrow the private keys of a profile (offline, administration and encryption):
they are encrypted under a fresh key, which is split into M shares of which any N
recover it (Shamir, done here: the portal never sees a share). The encrypted
OfflineEscrowEntry is published for the profile's first account, vouched for by
an AccountProof signed with its administration key; the shares are printed. Give them to different
people or places; 'meshctl escrow recover' puts the keys back from N of them.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if threshold < 2 || threshold > shares || shares > mesh.MaxEscrowShares {
				return usagef(cmd, "want 2 <= --threshold (%d) <= --shares (%d) <= %d", threshold, shares, mesh.MaxEscrowShares)
			}
			p, err := opts.findProfile(profile)
			if err != nil {
				return err
			}
			plain := escrowedKeys{Format: escrowFormat, Profile: p.State.Identifier, Keys: map[string]*mesh.KeyData{}}
			for _, name := range []string{keyOffline, keyAdmin, keyEncryption} {
				k, err := p.Key(name)
				if err != nil {
					return fmt.Errorf("escrowing profile %s: %w", p.State.Identifier, err)
				}
				plain.Keys[name] = k.KeyData()
			}
			data, err := json.Marshal(&plain)
			if err != nil {
				return fmt.Errorf("encoding the escrowed keys: %w", err)
			}
			entry, shareStrings, err := mesh.Escrow(opts.rand, data, threshold, shares)
			if err != nil {
				return fmt.Errorf("escrowing profile %s: %w", p.State.Identifier, err)
			}
			raw, err := signEntry(entry) // enveloped, not signed
			if err != nil {
				return err
			}
			if len(p.State.Accounts) == 0 {
				return fmt.Errorf("escrowing profile %s: the portal takes an escrow entry only for an account: bind one first ('meshctl account create NAME@DOMAIN')", p.State.Identifier)
			}
			ks, err := opts.keystore()
			if err != nil {
				return err
			}
			account := p.State.Accounts[0]
			c, err := opts.client()
			if err != nil {
				return err
			}
			proof, err := signAccountProof(cmd.Context(), c, ks, account, portal.TxPublish, raw)
			if err != nil {
				return err
			}
			if _, err := c.Publish(cmd.Context(), &portal.PublishRequest{Entry: raw, AccountID: account, Proof: proof}); err != nil {
				return c.wrap("publishing the escrow entry", err)
			}
			p.State.Escrows = append(p.State.Escrows, entry.Identifier)
			if err := p.SaveState(); err != nil {
				return fmt.Errorf("the escrow entry was published, but recording it in the keystore failed: %w", err)
			}
			r := escrowResult{Identifier: entry.Identifier, Profile: p.State.Identifier, Threshold: threshold, Shares: shareStrings}
			return opts.emit(cmd, r, func(w io.Writer) {
				fmt.Fprintf(w, "Escrowed the keys of profile %s in entry %s at %s.\n", r.Profile, r.Identifier, opts.portal)
				fmt.Fprintf(w, "Any %d of these %d shares recover them ('meshctl escrow recover SHARE...'). Keep them apart; they are shown only now:\n", threshold, shares)
				for _, s := range shareStrings {
					fmt.Fprintf(w, "  %s\n", s)
				}
			})
		},
	}
	f := cmd.Flags()
	f.IntVar(&shares, "shares", 3, "number of shares to make (M)")
	f.IntVar(&threshold, "threshold", 2, "number of shares that recover the keys (N)")
	f.StringVar(&profile, "profile", "", "the profile whose keys to escrow (UDF, prefix or local name)")
	return cmd
}

// recoverResult is the JSON output of escrow recover.
type recoverResult struct {
	Identifier string
	Profile    string
	// Account is the account the escrow entry was published for, which
	// the recovered profile is bound to in the keystore.
	Account string `json:",omitempty"`
	// Restored are the keys written to the keystore; the others were there.
	Restored []string
	Dir      string
}

func newEscrowRecoverCommand(opts *globalOptions) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "recover [SHARE...]",
		Short: "Rebuild the escrow key from shares, get and decrypt the OfflineEscrowEntry, restore the keys (Get)",
		Long: `Recover a profile's keys from escrow shares (as arguments, or one per line on
stdin). The shares rebuild the escrow key, whose UDF is the identifier of the
OfflineEscrowEntry; the entry is fetched from the portal and decrypted, and the
keys are written back to the keystore with the profile, fetched by its
identifier. Keys already in the keystore are kept; a different key in the same
place is an error.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			shares := args
			if len(shares) == 0 {
				var err error
				if shares, err = readShares(cmd.InOrStdin()); err != nil {
					return err
				}
			}
			if len(shares) == 0 {
				return usagef(cmd, "escrow recover needs the shares, as arguments or one per line on stdin")
			}
			key, err := mesh.RecoverEscrowKey(shares)
			if err != nil {
				return fmt.Errorf("rebuilding the escrow key: %w", err)
			}
			id := mesh.EscrowKeyUDF(key).String()
			c, err := opts.client()
			if err != nil {
				return err
			}
			resp, err := c.Get(cmd.Context(), &portal.GetRequest{Identifier: id, Full: true})
			var pe *portal.Error
			if errors.As(err, &pe) && pe.Status == portal.NotFound {
				return fmt.Errorf("the portal has no escrow entry %s: are the shares right, and is this the portal they were made at? (%w)", id, err)
			}
			if err != nil {
				return c.wrap("getting escrow entry "+id, err)
			}
			plain, err := openEscrow(resp, key)
			if err != nil {
				return fmt.Errorf("escrow entry %s: %w", id, err)
			}
			ks, err := opts.keystore()
			if err != nil {
				return err
			}
			r, err := restoreProfile(cmd, c, ks, plain, name)
			if err != nil {
				return err
			}
			r.Identifier = id
			if r.Account, err = bindRecovered(ks, plain.Profile, resp.DataItems[0].Account); err != nil {
				return err
			}
			return opts.emit(cmd, r, func(w io.Writer) {
				fmt.Fprintf(w, "Recovered profile %s from escrow entry %s.\n", r.Profile, id)
				if r.Account != "" {
					fmt.Fprintf(w, "Bound to account %s in this keystore (the escrow entry was published for it).\n", r.Account)
				}
				if len(r.Restored) == 0 {
					fmt.Fprintf(w, "Its keys were already in %s.\n", r.Dir)
				} else {
					fmt.Fprintf(w, "Restored keys: %s (in %s)\n", strings.Join(r.Restored, ", "), r.Dir)
				}
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "a local name for the profile, if it is not in the keystore yet")
	return cmd
}

// bindRecovered records, in the keystore, that the recovered profile is
// bound to account (the account its escrow entry was published for), so
// that the commands that act for the profile's account work as on the
// machine it came from; it returns the account, "" if there is none.
func bindRecovered(ks *Keystore, profile, account string) (string, error) {
	if account == "" {
		return "", nil
	}
	p, err := ks.Profile(profile)
	if err != nil {
		return "", err
	}
	if err := p.BindAccount(account); err != nil {
		return "", fmt.Errorf("recording account %s in the keystore: %w", account, err)
	}
	return account, nil
}

// readShares reads shares, one per line (blank lines ignored).
func readShares(r io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			out = append(out, s)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading shares from stdin: %w", err)
	}
	return out, nil
}

// openEscrow decodes the OfflineEscrowEntry of a Get response and decrypts it.
func openEscrow(resp *portal.GetResponse, key []byte) (*escrowedKeys, error) {
	if len(resp.DataItems) == 0 {
		return nil, errors.New("the portal returned no entry")
	}
	typ, env, err := mesh.ParseEntry(resp.DataItems[0].Entry)
	if err != nil {
		return nil, err
	}
	var entry mesh.OfflineEscrowEntry
	if typ != entry.TypeName() {
		return nil, fmt.Errorf("it is a %s, not an %s", typ, entry.TypeName())
	}
	if err := env.CheckDigest(); err != nil {
		return nil, err
	}
	if err := mesh.DecodePayload(env.Payload, &entry); err != nil {
		return nil, err
	}
	data, err := entry.Decrypt(key)
	if err != nil {
		return nil, err
	}
	var plain escrowedKeys
	if err := json.Unmarshal(data, &plain); err != nil {
		return nil, fmt.Errorf("decrypted data: %w", err)
	}
	if plain.Format != escrowFormat {
		return nil, fmt.Errorf("decrypted data is in format %q; this meshctl reads %q", plain.Format, escrowFormat)
	}
	return &plain, nil
}

// restoreProfile writes recovered keys into the keystore, with the profile
// entry got from the portal if the keystore does not have it.
func restoreProfile(cmd *cobra.Command, c *portalClient, ks *Keystore, plain *escrowedKeys, name string) (recoverResult, error) {
	r := recoverResult{Profile: plain.Profile}
	keys := map[string]*mesh.PrivateKey{}
	for role, kd := range plain.Keys {
		k, err := kd.PrivateKey()
		if err != nil {
			return r, fmt.Errorf("recovered %s key: %w", role, err)
		}
		keys[role] = k
	}
	off := keys[keyOffline]
	if off == nil || !mesh.UDFEqual(off.UDF().String(), plain.Profile) {
		return r, fmt.Errorf("the recovered keys do not include the offline key of profile %s", plain.Profile)
	}
	p, err := ks.Profile(plain.Profile)
	switch {
	case err == nil:
	case errors.Is(err, ErrNotInKeystore):
		resp, gerr := c.Get(cmd.Context(), &portal.GetRequest{Identifier: plain.Profile})
		if gerr != nil {
			return r, c.wrap("getting profile "+plain.Profile, gerr)
		}
		if len(resp.DataItems) == 0 {
			return r, fmt.Errorf("the portal returned no profile %s", plain.Profile)
		}
		entry := []byte(resp.DataItems[0].Entry)
		e, verr := mesh.VerifyEntry(entry, 0)
		if verr != nil {
			return r, fmt.Errorf("profile %s does not verify: %w", plain.Profile, verr)
		}
		if !e.Identifier.Equal(off.UDF()) {
			return r, fmt.Errorf("the portal returned profile %s for %s", e.Identifier, plain.Profile)
		}
		p = &localProfile{Entry: entry, State: profileState{Identifier: plain.Profile, Name: name, Created: time.Now().UTC().Truncate(time.Second)}}
		dir := ks.entryDir(kindProfiles, plain.Profile)
		if err := os.MkdirAll(dir, keyfile.DirMode); err != nil {
			return r, fmt.Errorf("keystore: %w", err)
		}
		p.Dir = dir
		if err := keyfile.WriteNew(filepath.Join(dir, fileProfile), append(append([]byte(nil), entry...), '\n')); err != nil && !errors.Is(err, ErrExists) {
			return r, err
		}
		if err := keyfile.WriteJSON(filepath.Join(dir, fileState), &p.State, false); err != nil && !errors.Is(err, ErrExists) {
			return r, err
		}
	default:
		return r, err
	}
	r.Dir = p.Dir
	for _, role := range []string{keyOffline, keyAdmin, keyEncryption} {
		k := keys[role]
		if k == nil {
			continue
		}
		wrote, err := restoreKey(p.Dir, role, k)
		if err != nil {
			return r, err
		}
		if wrote {
			r.Restored = append(r.Restored, role)
		}
	}
	return r, nil
}

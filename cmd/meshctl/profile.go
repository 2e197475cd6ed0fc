package main

import (
	"encoding/json"
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

// newProfileCommand is 'meshctl profile': the user's Mesh profiles.
func newProfileCommand(opts *globalOptions) *cobra.Command {
	return newGroup("profile", "Create, list and publish Mesh profiles (ProfileMesh) in the keystore",
		newProfileCreateCommand(opts),
		newProfileListCommand(opts),
		newProfileShowCommand(opts),
		newProfilePublishCommand(opts),
	)
}

// profileKeys are the private keys of a new ProfileMesh.
type profileKeys struct {
	offline, admin, encryption *mesh.PrivateKey
}

// newProfileMesh makes the keys of a ProfileMesh and the profile signed by
// its offline key, as a type-tagged entry ready to publish.
func newProfileMesh(rnd io.Reader, now time.Time) (*profileKeys, []byte, error) {
	var k profileKeys
	var err error
	if k.offline, err = mesh.GenerateKey(rnd, mesh.CurveEd448); err != nil {
		return nil, nil, fmt.Errorf("generating the offline signature key: %w", err)
	}
	if k.admin, err = mesh.GenerateKey(rnd, mesh.CurveEd448); err != nil {
		return nil, nil, fmt.Errorf("generating the administration key: %w", err)
	}
	if k.encryption, err = mesh.GenerateKey(rnd, mesh.CurveX448); err != nil {
		return nil, nil, fmt.Errorf("generating the encryption key: %w", err)
	}
	p := &mesh.ProfileMesh{
		Profile: mesh.Profile{
			Assertion:           mesh.Assertion{Updated: &now},
			KeyOfflineSignature: mesh.NewKeyData(k.offline.Public()),
			KeysOnlineSignature: []mesh.KeyData{*mesh.NewKeyData(k.admin.Public())},
		},
		KeyEncryption: mesh.NewKeyData(k.encryption.Public()),
	}
	entry, err := signEntry(p, k.offline)
	if err != nil {
		return nil, nil, err
	}
	return &k, entry, nil
}

// signEntry signs obj with key and returns the type-tagged entry
// {"<Type>":[header, payload, trailer]}.
func signEntry(obj mesh.Object, keys ...*mesh.PrivateKey) ([]byte, error) {
	env, err := mesh.SignObject(obj, keys...)
	if err != nil {
		return nil, fmt.Errorf("signing the %s: %w", obj.TypeName(), err)
	}
	b, err := mesh.MarshalEntry(obj.TypeName(), env)
	if err != nil {
		return nil, fmt.Errorf("encoding the %s: %w", obj.TypeName(), err)
	}
	return b, nil
}

// profileResult is the JSON output of profile create, list and show.
type profileResult struct {
	profileState
	// Keys are the UDFs of the private keys in the keystore, by role.
	Keys map[string]string `json:",omitempty"`
	// Dir is the profile's keystore directory.
	Dir   string          `json:",omitempty"`
	Entry json.RawMessage `json:",omitempty"`
}

func newProfileCreateCommand(opts *globalOptions) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "create [--name NAME]",
		Short: "Create a ProfileMesh and its keys (offline, administration, encryption) in the keystore",
		Long: `Create a new personal Mesh profile (ProfileMesh): an Ed448 offline signature key,
whose UDF is the profile's identifier, an Ed448 administration key (this device's
online signing key) and an X448 encryption key. The keys are written to the
keystore. The portal takes a profile only for an account: the signed profile is
published when an account is created with it ('meshctl account create').`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ks, err := opts.keystore()
			if err != nil {
				return err
			}
			now := time.Now().UTC().Truncate(time.Second)
			keys, entry, err := newProfileMesh(opts.rand, now)
			if err != nil {
				return err
			}
			id := keys.offline.UDF().String()
			dir, err := ks.create(kindProfiles, id)
			if err != nil {
				return err
			}
			p := &localProfile{Dir: dir, Entry: entry, State: profileState{Identifier: id, Name: name, Created: now}}
			if err := saveProfile(p, keys); err != nil {
				_ = os.RemoveAll(dir)
				return err
			}
			return opts.emit(cmd, describeProfile(p, true), func(w io.Writer) {
				fmt.Fprintf(w, "Created profile %s", id)
				if name != "" {
					fmt.Fprintf(w, " (%s)", name)
				}
				fmt.Fprintf(w, "\nKeys are in %s\n", dir)
				fmt.Fprintf(w, "Next: 'meshctl account create NAME@DOMAIN' binds an account to it; 'meshctl escrow create' backs up its keys.\n")
			})
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "a local name for the profile (never published)")
	return cmd
}

// saveProfile writes a new profile's entry, state and keys.
func saveProfile(p *localProfile, k *profileKeys) error {
	if err := keyfile.WriteNew(filepath.Join(p.Dir, fileProfile), append(append([]byte(nil), p.Entry...), '\n')); err != nil {
		return err
	}
	for _, kk := range []struct {
		name string
		key  *mesh.PrivateKey
	}{{keyOffline, k.offline}, {keyAdmin, k.admin}, {keyEncryption, k.encryption}} {
		if err := saveKey(p.Dir, kk.name, kk.key); err != nil {
			return err
		}
	}
	return keyfile.WriteJSON(filepath.Join(p.Dir, fileState), &p.State, false)
}

// describeProfile is the JSON form of a local profile.
func describeProfile(p *localProfile, withEntry bool) profileResult {
	r := profileResult{profileState: p.State, Dir: p.Dir, Keys: map[string]string{}}
	for _, name := range []string{keyOffline, keyAdmin, keyEncryption} {
		if k, err := p.Key(name); err == nil {
			r.Keys[name] = k.UDF().String()
		}
	}
	if withEntry {
		r.Entry = p.Entry
	}
	return r
}

func newProfileListCommand(opts *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the profiles in the keystore",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ks, err := opts.keystore()
			if err != nil {
				return err
			}
			all, err := ks.Profiles()
			if err != nil {
				return err
			}
			out := make([]profileResult, len(all))
			for i, p := range all {
				out[i] = describeProfile(p, false)
			}
			return opts.emit(cmd, out, func(w io.Writer) {
				if len(out) == 0 {
					fmt.Fprintf(w, "No profiles in %s. Create one with 'meshctl profile create'.\n", ks.Dir())
				}
				for _, p := range out {
					fmt.Fprintf(w, "%s  %-12s  accounts: %s\n", p.Identifier, orDash(p.Name), orDash(strings.Join(p.Accounts, ", ")))
				}
			})
		},
	}
}

func newProfileShowCommand(opts *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "show [PROFILE]",
		Short: "Show a profile of the keystore: its keys, accounts and escrow entries",
		Args:  maxArgs(1, "one profile (UDF, prefix or name)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := opts.findProfile(firstArg(args))
			if err != nil {
				return err
			}
			r := describeProfile(p, true)
			return opts.emit(cmd, r, func(w io.Writer) {
				fmt.Fprintf(w, "Profile     %s\n", r.Identifier)
				fmt.Fprintf(w, "Name        %s\n", orDash(r.Name))
				fmt.Fprintf(w, "Created     %s\n", r.Created.Format(time.RFC3339))
				fmt.Fprintf(w, "Accounts    %s\n", orDash(strings.Join(r.Accounts, ", ")))
				fmt.Fprintf(w, "Escrows     %s\n", orDash(strings.Join(r.Escrows, ", ")))
				for _, name := range []string{keyOffline, keyAdmin, keyEncryption} {
					fmt.Fprintf(w, "Key %-11s %s\n", name, orDash(r.Keys[name]))
				}
				fmt.Fprintf(w, "Directory   %s\n", r.Dir)
			})
		},
	}
}

func newProfilePublishCommand(opts *globalOptions) *cobra.Command {
	var account string
	cmd := &cobra.Command{
		Use:   "publish [PROFILE] [--account NAME@DOMAIN]",
		Short: "Publish a new version of a keystore profile for its account (Publish)",
		Long: `Sign a new version of a profile of the keystore (the same profile, Updated now,
signed by its administration key) and publish it for an account bound to it
(--account; default: the profile's only account). The portal keeps only a
version newer than the one it holds, so an old version cannot be replayed.`,
		Args:    maxArgs(1, "one profile (UDF, prefix or name)"),
		PreRunE: accountFlags("account"),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := opts.findProfile(firstArg(args))
			if err != nil {
				return err
			}
			if account == "" {
				if len(p.State.Accounts) != 1 {
					return usagef(cmd, "publishing profile %s needs --account NAME: it is bound to %d accounts (the portal takes a profile only for an account; 'meshctl account create' makes one)",
						p.State.Identifier, len(p.State.Accounts))
				}
				account = p.State.Accounts[0]
			}
			entry, err := newProfileVersion(p, time.Now())
			if err != nil {
				return err
			}
			c, err := opts.client()
			if err != nil {
				return err
			}
			resp, err := c.Publish(cmd.Context(), &portal.PublishRequest{Entry: entry, AccountID: account})
			if err != nil {
				return c.wrap("publishing profile "+p.State.Identifier, err)
			}
			p.Entry = entry
			if err := keyfile.Replace(filepath.Join(p.Dir, fileProfile), append(append([]byte(nil), entry...), '\n')); err != nil {
				return fmt.Errorf("the new version was published, but saving it in the keystore failed: %w", err)
			}
			if err := p.RememberWrite(resp.Written, time.Now()); err != nil {
				return fmt.Errorf("the new version was published, but recording its record in the keystore failed: %w", err)
			}
			return opts.emit(cmd, publishResult{Type: mesh.TypeProfileMesh, Identifier: p.State.Identifier, Status: resp.Status, StatusDescription: resp.StatusDescription},
				func(w io.Writer) {
					fmt.Fprintf(w, "Published ProfileMesh %s to %s for account %s\n", p.State.Identifier, opts.portal, account)
				})
		},
	}
	cmd.Flags().StringVar(&account, "account", "", "the account to publish for (default: the profile's only account)")
	return cmd
}

// newProfileVersion signs the next version of a keystore profile: the
// same ProfileMesh with Updated set to now (or just after the current
// version's Updated), signed by the administration key.
func newProfileVersion(p *localProfile, now time.Time) ([]byte, error) {
	_, env, err := mesh.ParseEntry(p.Entry)
	if err != nil {
		return nil, fmt.Errorf("profile %s in the keystore: %w", p.State.Identifier, err)
	}
	var pm mesh.ProfileMesh
	if err := mesh.DecodePayload(env.Payload, &pm); err != nil {
		return nil, fmt.Errorf("profile %s in the keystore: %w", p.State.Identifier, err)
	}
	now = now.UTC().Round(0)
	if pm.Updated != nil && !now.After(*pm.Updated) {
		now = pm.Updated.Add(time.Microsecond)
	}
	pm.Updated = &now
	key, err := p.Key(keyAdmin)
	if err != nil {
		return nil, fmt.Errorf("signing a new version of profile %s: %w", p.State.Identifier, err)
	}
	return signEntry(&pm, key)
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

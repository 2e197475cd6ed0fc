package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/intermesh/intermesh/internal/keyfile"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// Encrypted messages through the portal: 'message send' encrypts a text
// to an account's encryption key, signs it and publishes it as a
// CatalogedPublication (the portal stores only ciphertext); 'message read'
// gets it by its ID and decrypts it with any key of the keystore that is a
// recipient: an activated device holds the account's encryption key.

// newMessageCommand is 'meshctl message'.
func newMessageCommand(opts *globalOptions) *cobra.Command {
	return newGroup("message", "Send a message encrypted to an account through the portal, and read one",
		newMessageSendCommand(opts),
		newMessageReadCommand(opts),
	)
}

// messageResult is the JSON output of message send and read.
type messageResult struct {
	ID      string
	Account string `json:",omitempty"`
	Signer  string `json:",omitempty"`
	Text    string `json:",omitempty"`
}

// messageSigner is the key a keystore signs messages with: the
// administration key of its profile (the only one), or else the account
// signature key of its activated device.
func messageSigner(ks *Keystore) (*mesh.PrivateKey, error) {
	profiles, err := ks.Profiles()
	if err != nil {
		return nil, err
	}
	if len(profiles) == 1 {
		return profiles[0].Key(keyAdmin)
	}
	devices, err := ks.Devices()
	if err != nil {
		return nil, err
	}
	for _, d := range devices {
		if k, err := loadKey(d.Dir, keyAccountSignature); err == nil {
			return k, nil
		}
	}
	return nil, errors.New("signing a message needs a profile's administration key or an activated device in the keystore")
}

func newMessageSendCommand(opts *globalOptions) *cobra.Command {
	var to, account string
	cmd := &cobra.Command{
		Use:   "send --to ACCOUNT [--account NAME] TEXT...",
		Short: "Encrypt TEXT to an account's encryption key, sign it and publish it",
		Long: `Encrypt TEXT to the encryption key of the profile ACCOUNT is bound to, sign it with
the keystore's administration key, and publish it as a CatalogedPublication for
the account NAME (default ACCOUNT), with an AccountProof signed by NAME's
administration key. It prints the message ID, which 'meshctl message read' takes.
Both are full account names such as alice@example.com: one without a domain is a
usage error (exit 2).`,
		Args:    cobra.MinimumNArgs(1),
		PreRunE: accountFlags("to", "account"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usagef(cmd, "message send needs --to ACCOUNT")
			}
			ks, err := opts.keystore()
			if err != nil {
				return err
			}
			signer, err := messageSigner(ks)
			if err != nil {
				return err
			}
			c, err := opts.client()
			if err != nil {
				return err
			}
			e, err := accountProfile(cmd.Context(), c, to)
			if err != nil {
				return err
			}
			m, ok := e.Object.(*mesh.ProfileMesh)
			if !ok {
				return fmt.Errorf("account %q is bound to a %s, which has no account encryption key here", to, e.Type)
			}
			key, err := m.KeyEncryption.PublicKey()
			if err != nil {
				return fmt.Errorf("the encryption key of account %q: %w", to, err)
			}
			env, err := mesh.Encrypt(opts.rand, []byte(strings.Join(args, " ")), []mesh.PublicKey{key}, signer)
			if err != nil {
				return err
			}
			entry, id, err := mesh.NewPublication(env)
			if err != nil {
				return err
			}
			if account == "" {
				account = to
			}
			proof, err := signAccountProof(cmd.Context(), c, ks, account, portal.TxPublish, entry)
			if err != nil {
				return err
			}
			if _, err := c.Publish(cmd.Context(), &portal.PublishRequest{Entry: entry, AccountID: account, Proof: proof}); err != nil {
				return c.wrap("publishing the message", err)
			}
			r := messageResult{ID: id.String(), Account: to, Signer: signer.UDF().String()}
			return opts.emit(cmd, r, func(w io.Writer) {
				fmt.Fprintf(w, "Published message %s to account %s (encrypted to %s, signed by %s)\n", r.ID, to, key.UDF(), r.Signer)
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the account to encrypt to")
	cmd.Flags().StringVar(&account, "account", "", "the account to publish for (default: --to)")
	return cmd
}

// decryptionKeys are the X448 private keys of the keystore: its profiles'
// encryption keys, and its devices' own and account encryption keys.
func decryptionKeys(ks *Keystore) ([]*mesh.PrivateKey, error) {
	var out []*mesh.PrivateKey
	profiles, err := ks.Profiles()
	if err != nil {
		return nil, err
	}
	for _, p := range profiles {
		if k, err := p.Key(keyEncryption); err == nil {
			out = append(out, k)
		}
	}
	devices, err := ks.Devices()
	if err != nil {
		return nil, err
	}
	for _, d := range devices {
		for _, name := range []string{keyEncryption, keyAccountEncryption} {
			if k, err := loadKey(d.Dir, name); err == nil {
				out = append(out, k)
			}
		}
	}
	return out, nil
}

// trustedSigners resolves the keys a message may be signed by: the
// administration and offline keys of the profiles the keystore belongs to
// (its own, and its devices' accounts', from the portal), and its
// activated devices' own signature keys.
func trustedSigners(ctx context.Context, c *portalClient, ks *Keystore) (mesh.KeyResolver, error) {
	keys := map[mesh.UDF]mesh.PublicKey{}
	add := func(p mesh.SignedProfile) error {
		ak, err := mesh.AuthorityKeys(p)
		for id, k := range ak {
			keys[id] = k
		}
		return err
	}
	profiles, err := ks.Profiles()
	if err != nil {
		return nil, err
	}
	for _, p := range profiles {
		e, err := mesh.VerifyEntry(p.Entry, 0)
		if err != nil {
			return nil, fmt.Errorf("the keystore's profile %s does not verify: %w", p.State.Identifier, err)
		}
		if err := add(e.Profile()); err != nil {
			return nil, err
		}
	}
	devices, err := ks.Devices()
	if err != nil {
		return nil, err
	}
	for _, d := range devices {
		if d.State.ParentUDF == "" || !d.activated() {
			continue
		}
		parent, err := verifiedProfile(ctx, c, d.State.ParentUDF)
		if err != nil {
			return nil, err
		}
		if err := add(parent); err != nil {
			return nil, err
		}
		var conn mesh.Envelope
		if err := keyfile.ReadJSON(filepath.Join(d.Dir, fileConnection), &conn); err == nil {
			if k, _, err := mesh.DeviceKey(&conn, parent); err == nil {
				keys[k.UDF()] = k
			}
		}
	}
	return func(kid mesh.UDF) (mesh.PublicKey, error) {
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return mesh.PublicKey{}, mesh.ErrUnknownKey
	}, nil
}

func newMessageReadCommand(opts *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "read ID",
		Short: "Get a message by its ID and decrypt it with the keystore's keys",
		Long: `Get the encrypted message ID from the portal and decrypt it with whichever key of
the keystore is a recipient (an activated device holds its account's encryption
key). The message must be signed by a key of the keystore's accounts.`,
		Args: exactArgs(1, "one message ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ks, err := opts.keystore()
			if err != nil {
				return err
			}
			keys, err := decryptionKeys(ks)
			if err != nil {
				return err
			}
			c, err := opts.client()
			if err != nil {
				return err
			}
			resp, err := c.Get(cmd.Context(), &portal.GetRequest{Identifier: args[0]})
			if err != nil {
				return c.wrap("getting message "+args[0], err)
			}
			if len(resp.DataItems) == 0 {
				return fmt.Errorf("the portal has no message %s", args[0])
			}
			e, err := mesh.VerifyEntry(resp.DataItems[0].Entry, 0)
			if err != nil {
				return fmt.Errorf("message %s does not verify: %w", args[0], err)
			}
			pub, ok := e.Object.(*mesh.CatalogedPublication)
			if !ok {
				return fmt.Errorf("%s is a %s, not a message", args[0], e.Type)
			}
			resolve, err := trustedSigners(cmd.Context(), c, ks)
			if err != nil {
				return err
			}
			text, signer, err := pub.EnvelopedData.Decrypt(keys, resolve)
			if err != nil {
				return fmt.Errorf("message %s does not decrypt with this keystore's keys: %w", args[0], err)
			}
			r := messageResult{ID: e.Identifier.String(), Signer: signer.String(), Text: string(text)}
			return opts.emit(cmd, r, func(w io.Writer) {
				fmt.Fprintf(w, "Message %s, signed by %s:\n%s\n", r.ID, r.Signer, r.Text)
			})
		},
	}
}

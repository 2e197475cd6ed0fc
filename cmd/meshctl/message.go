package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/intermesh/intermesh/internal/keyfile"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// newMessageCommand is 'meshctl message': messages encrypted to an account (CatalogedPublications).
func newMessageCommand(opts *globalOptions) *cobra.Command {
	return newGroup("message", "Send a message encrypted to an account through the portal, list an account's, and read one",
		newMessageSendCommand(opts), newMessageListCommand(opts), newMessageReadCommand(opts))
}

// messageResult is the JSON output of message send and read, and list's items.
type messageResult struct {
	ID      string
	Account string     `json:",omitempty"`
	Time    *time.Time `json:",omitempty"` // when the portal logged it (list)
	Signer  string     `json:",omitempty"`
	Text    string     `json:",omitempty"`
}

// messageStore is the keystore, its profiles and devices, and a portal client.
type messageStore struct {
	ks       *Keystore
	profiles []*localProfile
	devices  []*localDevice
	c        *portalClient
}

func (o *globalOptions) messageStore() (s messageStore, err error) {
	if s.ks, err = o.keystore(); err == nil {
		if s.profiles, err = s.ks.Profiles(); err == nil {
			if s.devices, err = s.ks.Devices(); err == nil {
				s.c, err = o.client()
			}
		}
	}
	return s, err
}

// signer is its only profile's administration key, else a device's account signature key.
func (s messageStore) signer() (*mesh.PrivateKey, error) {
	if len(s.profiles) == 1 {
		return s.profiles[0].Key(keyAdmin)
	}
	for _, d := range s.devices {
		if k, err := loadKey(d.Dir, keyAccountSignature); err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("signing a message needs a profile's administration key or an activated device in the keystore")
}

func newMessageSendCommand(opts *globalOptions) *cobra.Command {
	var to, account string
	cmd := &cobra.Command{
		Use:   "send --to ACCOUNT [--account NAME] TEXT...",
		Short: "Encrypt TEXT to an account's encryption key, sign it and publish it",
		Long: `Encrypt TEXT to the encryption key of the profile ACCOUNT is bound to, sign it with the
keystore's administration key, and publish it as a CatalogedPublication for the account
NAME (default ACCOUNT), with an AccountProof signed by NAME's administration key. It
prints the message ID, which 'meshctl message read' takes. Both are full account names
such as alice@example.com: one without a domain is a usage error (exit 2).`,
		Args:    cobra.MinimumNArgs(1),
		PreRunE: accountFlags("to", "account"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usagef(cmd, "message send needs --to ACCOUNT")
			}
			s, err := opts.messageStore()
			if err != nil {
				return err
			}
			signer, err := s.signer()
			if err != nil {
				return err
			}
			e, err := accountProfile(cmd.Context(), s.c, to)
			if err != nil {
				return err
			}
			pm, ok := e.Object.(*mesh.ProfileMesh)
			if !ok {
				return fmt.Errorf("account %q is bound to a %s, which has no account encryption key here", to, e.Type)
			}
			key, err := pm.KeyEncryption.PublicKey()
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
			account = cmp.Or(account, to)
			proof, err := signAccountProof(cmd.Context(), s.c, s.ks, account, portal.TxPublish, entry)
			if err != nil {
				return err
			}
			if _, err := s.c.Publish(cmd.Context(), &portal.PublishRequest{Entry: entry, AccountID: account, Proof: proof}); err != nil {
				return s.c.wrap("publishing the message", err)
			}
			return opts.emit(cmd, messageResult{ID: id.String(), Account: to, Signer: signer.UDF().String()}, func(w io.Writer) {
				fmt.Fprintf(w, "Published message %s to account %s (encrypted to %s, signed by %s)\n", id, to, key.UDF(), signer.UDF())
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the account to encrypt to")
	cmd.Flags().StringVar(&account, "account", "", "the account to publish for (default: --to)")
	return cmd
}

// readKeys are the keystore's X448 private keys and a resolver of the keys a message may be
// signed by: its profiles', its devices' accounts' (from the portal) and its activated devices'.
func (s messageStore) readKeys(ctx context.Context) ([]*mesh.PrivateKey, mesh.KeyResolver, error) {
	decrypt, keys, trusted := []*mesh.PrivateKey{}, map[mesh.UDF]mesh.PublicKey{}, []mesh.SignedProfile{}
	for _, p := range s.profiles {
		if k, err := p.Key(keyEncryption); err == nil {
			decrypt = append(decrypt, k)
		}
		e, err := mesh.VerifyEntry(p.Entry, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("the keystore's profile %s does not verify: %w", p.State.Identifier, err)
		}
		trusted = append(trusted, e.Profile())
	}
	for _, d := range s.devices {
		for _, name := range []string{keyEncryption, keyAccountEncryption} {
			if k, err := loadKey(d.Dir, name); err == nil {
				decrypt = append(decrypt, k)
			}
		}
		if d.State.ParentUDF == "" || !d.activated() {
			continue
		}
		parent, err := verifiedProfile(ctx, s.c, d.State.ParentUDF)
		if err != nil {
			return nil, nil, err
		}
		trusted = append(trusted, parent)
		var conn mesh.Envelope
		if err := keyfile.ReadJSON(filepath.Join(d.Dir, fileConnection), &conn); err == nil {
			if k, _, err := mesh.DeviceKey(&conn, parent); err == nil {
				keys[k.UDF()] = k
			}
		}
	}
	for _, p := range trusted {
		ak, err := mesh.AuthorityKeys(p)
		if err != nil {
			return nil, nil, err
		}
		maps.Copy(keys, ak)
	}
	return decrypt, portal.KeyResolverOf(keys), nil
}

// message verifies message id as the portal gave it: its result (stated signer) and envelope.
func message(id string, item portal.DataItem) (messageResult, *mesh.Envelope, error) {
	e, err := mesh.VerifyEntry(item.Entry, 0)
	if err != nil {
		return messageResult{}, nil, fmt.Errorf("message %s does not verify: %w", id, err)
	}
	pub, ok := e.Object.(*mesh.CatalogedPublication)
	if !ok {
		return messageResult{}, nil, fmt.Errorf("%s is a %s, not a message", id, e.Type)
	}
	return messageResult{ID: e.Identifier.String(), Time: item.Time, Signer: pub.EnvelopedData.Trailer.Signatures[0].Kid}, pub.EnvelopedData, nil
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
			s, err := opts.messageStore()
			if err != nil {
				return err
			}
			resp, err := s.c.Get(cmd.Context(), &portal.GetRequest{Identifier: args[0]})
			if err != nil {
				return s.c.wrap("getting message "+args[0], err)
			}
			if len(resp.DataItems) == 0 {
				return fmt.Errorf("the portal has no message %s", args[0])
			}
			m, env, err := message(args[0], resp.DataItems[0])
			if err != nil {
				return err
			}
			keys, resolve, err := s.readKeys(cmd.Context())
			if err != nil {
				return err
			}
			text, signer, err := env.Decrypt(keys, resolve)
			if err != nil {
				return fmt.Errorf("message %s does not decrypt with this keystore's keys: %w", args[0], err)
			}
			m.Signer, m.Text = signer.String(), string(text)
			return opts.emit(cmd, m, func(w io.Writer) {
				fmt.Fprintf(w, "Message %s, signed by %s:\n%s\n", m.ID, m.Signer, m.Text)
			})
		},
	}
}

func newMessageListCommand(opts *globalOptions) *cobra.Command {
	var account string
	cmd := &cobra.Command{
		Use:     "list [--account NAME@DOMAIN]",
		Short:   "List the ID, time and stated signer of an account's messages, oldest first (with its administration key)",
		Args:    exactArgs(0, "no arguments"),
		PreRunE: accountFlags("account"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := opts.messageStore()
			if err == nil {
				account, err = defaultAccount(cmd, s.ks, account)
			}
			if err != nil {
				return err
			}
			proof, err := signAccountProof(cmd.Context(), s.c, s.ks, account, portal.TxListMessages, nil)
			if err != nil {
				return err
			}
			items, err := s.c.ListAllMessages(cmd.Context(), &portal.ListMessagesRequest{AccountID: account, Proof: proof})
			if err != nil {
				return s.c.wrap("listing the messages of account "+account, err)
			}
			list := make([]messageResult, len(items))
			for i, item := range items {
				if list[i], _, err = message(item.Identifier, item); err != nil {
					return err
				}
			}
			return opts.emit(cmd, list, func(w io.Writer) {
				fmt.Fprintf(w, "Account %s has %d message(s), oldest first ('meshctl message read ID' decrypts one):\n", account, len(list))
				for _, m := range list {
					fmt.Fprintf(w, "%s  %s  signed by %s\n", m.ID, m.Time.UTC().Format(time.RFC3339), m.Signer)
				}
			})
		},
	}
	cmd.Flags().StringVar(&account, "account", "", "the account (default: the keystore's only account)")
	return cmd
}

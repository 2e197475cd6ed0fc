package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/intermesh/intermesh/internal/keyfile"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// The device connection flow (seed 003 §8.3):
//
//	new device:   meshctl device connect --account alice@example.com   → ConnectStart, prints the device ID
//	admin device: meshctl device pending                               → ConnectPending
//	admin device: meshctl device accept MDEV-…                         → ConnectComplete (signed by the admin key)
//	new device:   meshctl device status                                → ConnectStatus

// newDeviceCommand is 'meshctl device'.
func newDeviceCommand(opts *globalOptions) *cobra.Command {
	return newGroup("device", "Connect a device to an account, and accept or reject devices from an admin device",
		newDeviceConnectCommand(opts),
		newDevicePendingCommand(opts),
		newDeviceDecideCommand(opts, "accept", mesh.ResultAccepted),
		newDeviceDecideCommand(opts, "reject", mesh.ResultRefused),
		newDeviceStatusCommand(opts),
		newDeviceListCommand(opts),
	)
}

// deviceKeys are the private keys of a new device profile.
type deviceKeys struct {
	offline, encryption, authentication *mesh.PrivateKey
}

// newProfileDevice makes the keys of a device and its self-signed
// ProfileDevice (as an envelope, and as a type-tagged entry).
func newProfileDevice(rnd io.Reader, description string, now time.Time) (*deviceKeys, *mesh.Envelope, []byte, error) {
	var k deviceKeys
	var err error
	if k.offline, err = mesh.GenerateKey(rnd, mesh.CurveEd448); err != nil {
		return nil, nil, nil, fmt.Errorf("generating the device signature key: %w", err)
	}
	if k.encryption, err = mesh.GenerateKey(rnd, mesh.CurveX448); err != nil {
		return nil, nil, nil, fmt.Errorf("generating the device encryption key: %w", err)
	}
	if k.authentication, err = mesh.GenerateKey(rnd, mesh.CurveX448); err != nil {
		return nil, nil, nil, fmt.Errorf("generating the device authentication key: %w", err)
	}
	p := &mesh.ProfileDevice{
		Profile: mesh.Profile{
			Assertion:           mesh.Assertion{Updated: &now},
			KeyOfflineSignature: mesh.NewKeyData(k.offline.Public()),
		},
		Description:       description,
		KeyEncryption:     mesh.NewKeyData(k.encryption.Public()),
		KeyAuthentication: mesh.NewKeyData(k.authentication.Public()),
	}
	env, err := mesh.SignObject(p, k.offline)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("signing the ProfileDevice: %w", err)
	}
	entry, err := mesh.MarshalEntry(p.TypeName(), env)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("encoding the ProfileDevice: %w", err)
	}
	return &k, env, entry, nil
}

// accountProfile gets the profile an account is bound to and verifies it.
func accountProfile(ctx context.Context, c *portalClient, account string) (*mesh.Entry, error) {
	resp, err := c.Get(ctx, &portal.GetRequest{Account: account})
	if err != nil {
		return nil, c.wrap(fmt.Sprintf("getting the profile of account %q", account), err)
	}
	if len(resp.DataItems) == 0 {
		return nil, fmt.Errorf("the portal returned no profile for account %q", account)
	}
	e, err := mesh.VerifyEntry(resp.DataItems[0].Entry, 0)
	if err != nil {
		return nil, fmt.Errorf("the profile of account %q does not verify: %w", account, err)
	}
	return e, nil
}

// deviceResult is the JSON output of device connect, list and status.
type deviceResult struct {
	Identifier  string
	Description string `json:",omitempty"`
	Account     string
	ParentUDF   string `json:",omitempty"`
	Status      string
	Dir         string `json:",omitempty"`
	// AccountEncryptionKey and DeviceSignatureKey are the keys an
	// activation handed over (on the status run that stored them).
	AccountEncryptionKey string `json:",omitempty"`
	DeviceSignatureKey   string `json:",omitempty"`
}

func newDeviceConnectCommand(opts *globalOptions) *cobra.Command {
	var account, description string
	cmd := &cobra.Command{
		Use:   "connect --account NAME@DOMAIN [--description TEXT]",
		Short: "On a new device: create device keys and ask to join an account (ConnectStart)",
		Long: `Create this device's keys and signed ProfileDevice in the keystore, and post a
connection request to the account (ConnectStart). It prints the device ID: an
administration device accepts it with 'meshctl device accept ID', and this
device then sees the result with 'meshctl device status'.`,
		Args:    exactArgs(0, "no arguments"),
		PreRunE: accountFlags("account"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if account == "" {
				return usagef(cmd, "device connect needs --account NAME")
			}
			if description == "" {
				description, _ = os.Hostname()
			}
			ks, err := opts.keystore()
			if err != nil {
				return err
			}
			c, err := opts.client()
			if err != nil {
				return err
			}
			parent, err := accountProfile(cmd.Context(), c, account)
			if err != nil {
				return err
			}
			now := time.Now().UTC().Truncate(time.Second)
			keys, devEnv, devEntry, err := newProfileDevice(opts.rand, description, now)
			if err != nil {
				return err
			}
			req := &mesh.ConnectionRequest{ParentUDF: parent.Identifier.String(), Device: devEnv}
			signed, err := signEntry(req, keys.offline)
			if err != nil {
				return err
			}
			id := keys.offline.UDF().String()
			d := &localDevice{Entry: devEntry, State: deviceState{Identifier: id, Description: description, Created: now,
				Account: account, Portal: opts.portal, ParentUDF: parent.Identifier.String(), Status: devicePending}}
			if d.Dir, err = ks.create(kindDevices, id); err != nil {
				return err
			}
			if err := saveDevice(d, keys); err != nil {
				_ = os.RemoveAll(d.Dir)
				return err
			}
			if _, err := c.ConnectStart(cmd.Context(), &portal.ConnectStartRequest{SignedRequest: signed, AccountID: account}); err != nil {
				_ = os.RemoveAll(d.Dir)
				return c.wrap(fmt.Sprintf("asking to connect to account %q", account), err)
			}
			return opts.emit(cmd, describeDevice(d), func(w io.Writer) {
				fmt.Fprintf(w, "Asked to connect this device to account %s (profile %s).\n", account, d.State.ParentUDF)
				fmt.Fprintf(w, "Device ID: %s\n", id)
				fmt.Fprintf(w, "On an administration device run:  meshctl device accept %s --account %s\n", id, account)
				fmt.Fprintf(w, "Then here:                        meshctl device status\n")
			})
		},
	}
	cmd.Flags().StringVar(&account, "account", "", "the account to join")
	cmd.Flags().StringVar(&description, "description", "", "a description of this device (default: the host name)")
	return cmd
}

// saveDevice writes a new device's entry, state and keys.
func saveDevice(d *localDevice, k *deviceKeys) error {
	if err := keyfile.WriteNew(filepath.Join(d.Dir, fileDevice), append(append([]byte(nil), d.Entry...), '\n')); err != nil {
		return err
	}
	for _, kk := range []struct {
		name string
		key  *mesh.PrivateKey
	}{{keyOffline, k.offline}, {keyEncryption, k.encryption}, {keyAuthentication, k.authentication}} {
		if err := saveKey(d.Dir, kk.name, kk.key); err != nil {
			return err
		}
	}
	return keyfile.WriteJSON(filepath.Join(d.Dir, fileState), &d.State, false)
}

func describeDevice(d *localDevice) deviceResult {
	return deviceResult{Identifier: d.State.Identifier, Description: d.State.Description, Account: d.State.Account,
		ParentUDF: d.State.ParentUDF, Status: d.State.Status, Dir: d.Dir}
}

// pendingRequest is a verified pending connection request.
type pendingRequest struct {
	// Identifier is the device's UDF (the ID to accept or reject).
	Identifier  string
	Description string `json:",omitempty"`
	ParentUDF   string
	// Entry is the signed request as the portal returned it.
	Entry   portal.Entry `json:",omitempty"`
	request *mesh.ConnectionRequest
}

// defaultAccount is the account an admin command works on: --account, or
// the only account bound to a profile of the keystore.
func defaultAccount(cmd *cobra.Command, ks *Keystore, account string) (string, error) {
	if account != "" {
		return account, nil
	}
	all, err := ks.Profiles()
	if err != nil {
		return "", err
	}
	var accounts []string
	for _, p := range all {
		accounts = append(accounts, p.State.Accounts...)
	}
	if len(accounts) == 1 {
		return accounts[0], nil
	}
	return "", usagef(cmd, "%s needs --account NAME (the keystore's profiles are bound to %d accounts)", commandName(cmd), len(accounts))
}

// pendingRequests lists every pending request of an account, verified;
// proof is the AccountProof that every page needs.
func pendingRequests(ctx context.Context, c *portalClient, account string, proof portal.Entry) ([]pendingRequest, error) {
	req := &portal.ConnectPendingRequest{AccountID: account, Proof: proof}
	var out []pendingRequest
	for {
		resp, err := c.ConnectPending(ctx, req)
		if err != nil {
			return nil, c.wrap(fmt.Sprintf("listing the pending requests of account %q", account), err)
		}
		for _, raw := range resp.Pending {
			e, err := mesh.VerifyEntry(raw, 0)
			if err != nil {
				return nil, fmt.Errorf("a pending request of account %q does not verify: %w", account, err)
			}
			r, ok := e.Object.(*mesh.ConnectionRequest)
			if !ok {
				return nil, fmt.Errorf("a pending request of account %q is a %s, not a ConnectionRequest", account, e.Type)
			}
			pr := pendingRequest{Identifier: e.Identifier.String(), ParentUDF: r.ParentUDF, Entry: raw, request: r}
			var dev mesh.ProfileDevice
			if r.Device != nil && mesh.DecodePayload(r.Device.Payload, &dev) == nil {
				pr.Description = dev.Description
			}
			out = append(out, pr)
		}
		if resp.PageKey == "" {
			return out, nil
		}
		req.SearchConstraints = &portal.SearchConstraints{PageKey: resp.PageKey}
	}
}

func newDevicePendingCommand(opts *globalOptions) *cobra.Command {
	var account string
	cmd := &cobra.Command{
		Use:   "pending [--account NAME@DOMAIN]",
		Short: "On an admin device: list the account's pending connection requests (ConnectPending)",
		Long: `List the account's pending connection requests. They are the account's private
state: the request carries an AccountProof, a signed timestamp for this portal, the account
and ConnectPending, signed with the administration key of the account's profile,
which must be in the keystore.`,
		Args:    exactArgs(0, "no arguments"),
		PreRunE: accountFlags("account"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := opts.pendingOf(cmd, account)
			if err != nil {
				return err
			}
			account, pending := q.account, q.pending
			if pending == nil {
				pending = []pendingRequest{}
			}
			return opts.emit(cmd, pending, func(w io.Writer) {
				if len(pending) == 0 {
					fmt.Fprintf(w, "No pending connection requests for account %s.\n", account)
					return
				}
				for _, p := range pending {
					fmt.Fprintf(w, "%s  %s\n", p.Identifier, orDash(p.Description))
				}
				fmt.Fprintf(w, "Accept one with 'meshctl device accept ID', or refuse it with 'meshctl device reject ID'.\n")
			})
		},
	}
	cmd.Flags().StringVar(&account, "account", "", "the account (default: the keystore's only account)")
	return cmd
}

// pendingQuery is what an admin device's commands start from: the keystore,
// the account, a client and the account's pending connection requests.
type pendingQuery struct {
	ks      *Keystore
	account string
	client  *portalClient
	pending []pendingRequest
}

// pendingOf opens the keystore, settles the account (the flag's, or the
// keystore's only one) and fetches its pending requests.
func (o *globalOptions) pendingOf(cmd *cobra.Command, account string) (pendingQuery, error) {
	var q pendingQuery
	var err error
	if q.ks, err = o.keystore(); err != nil {
		return q, err
	}
	if q.account, err = defaultAccount(cmd, q.ks, account); err != nil {
		return q, err
	}
	if q.client, err = o.client(); err != nil {
		return q, err
	}
	proof, err := signAccountProof(cmd.Context(), q.client, q.ks, q.account, portal.TxConnectPending, nil)
	if err != nil {
		return q, err
	}
	q.pending, err = pendingRequests(cmd.Context(), q.client, q.account, proof)
	return q, err
}

// decisionResult is the JSON output of device accept and reject.
type decisionResult struct {
	Identifier  string
	Description string `json:",omitempty"`
	Account     string
	Result      string
}

func newDeviceDecideCommand(opts *globalOptions, verb, result string) *cobra.Command {
	var account string
	cmd := &cobra.Command{
		Use:   verb + " ID [--account NAME@DOMAIN]",
		Short: fmt.Sprintf("On an admin device: %s a pending connection request (ConnectComplete, %s)", verb, result),
		Long: fmt.Sprintf(`Answer a pending connection request with %s: the result is signed with the
administration key of the account's profile, which must be in the keystore. ID is
the device ID that 'meshctl device pending' lists (a unique prefix will do).`, result),
		Args:    exactArgs(1, "one device ID"),
		PreRunE: accountFlags("account"),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := opts.pendingOf(cmd, account)
			if err != nil {
				return err
			}
			ks, account, c, pending := q.ks, q.account, q.client, q.pending
			var match []pendingRequest
			for _, p := range pending {
				if mesh.UDFEqual(p.Identifier, args[0]) || udfHasPrefix(p.Identifier, args[0]) {
					match = append(match, p)
				}
			}
			switch {
			case len(match) == 0:
				return fmt.Errorf("account %q has no pending request from device %s (see 'meshctl device pending')", account, args[0])
			case len(match) > 1:
				return fmt.Errorf("device ID %s is ambiguous: %d pending requests match", args[0], len(match))
			}
			p := match[0]
			prof, err := ks.Profile(p.ParentUDF)
			if err != nil {
				return fmt.Errorf("answering for profile %s needs its administration key: %w", p.ParentUDF, err)
			}
			key, err := prof.Key(keyAdmin)
			if err != nil {
				return fmt.Errorf("answering for profile %s: %w", p.ParentUDF, err)
			}
			res := &mesh.ConnectionResult{ConnectionRequest: *p.request, Result: result}
			if result == mesh.ResultAccepted {
				if res.EnvelopedActivationAccount, err = activationFor(opts.rand, prof, key, p.request, account); err != nil {
					return err
				}
			}
			signed, err := signEntry(res, key)
			if err != nil {
				return err
			}
			if _, err := c.ConnectComplete(cmd.Context(), &portal.ConnectCompleteRequest{Result: signed, AccountID: account}); err != nil {
				return c.wrap(fmt.Sprintf("answering the request of device %s", p.Identifier), err)
			}
			r := decisionResult{Identifier: p.Identifier, Description: p.Description, Account: account, Result: result}
			return opts.emit(cmd, r, func(w io.Writer) {
				fmt.Fprintf(w, "%s device %s (%s) for account %s\n", result, p.Identifier, orDash(p.Description), account)
			})
		},
	}
	cmd.Flags().StringVar(&account, "account", "", "the account (default: the keystore's only account)")
	return cmd
}

func newDeviceStatusCommand(opts *globalOptions) *cobra.Command {
	var account string
	cmd := &cobra.Command{
		Use:   "status [ID] [--account NAME@DOMAIN]",
		Short: "Ask for the result of a device's connection request (ConnectStatus)",
		Long: `Ask the portal for the result of a connection request. Without ID it is this
device's request (the keystore's only device). The result is verified against
the account's profile; a device of the keystore records it.`,
		Args:    maxArgs(1, "one device ID"),
		PreRunE: accountFlags("account"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ks, err := opts.keystore()
			if err != nil {
				return err
			}
			id := firstArg(args)
			d, err := ks.FindDevice(id)
			switch {
			case err == nil:
				id = d.State.Identifier
				if account == "" {
					account = d.State.Account
				}
			case id == "", !errors.Is(err, ErrNotInKeystore):
				return err
			}
			if account == "" {
				return usagef(cmd, "device %s is not in the keystore: name its account with --account", id)
			}
			return reportDeviceStatus(cmd, opts, d, id, account)
		},
	}
	cmd.Flags().StringVar(&account, "account", "", "the account (default: the one the device asked to join)")
	return cmd
}

// reportDeviceStatus asks for and verifies the result of device id's request to join account, prints it,
// and with d (a device of the keystore) records it and, once accepted, opens and stores the activation.
func reportDeviceStatus(cmd *cobra.Command, opts *globalOptions, d *localDevice, id, account string) error {
	c, err := opts.client()
	if err != nil {
		return err
	}
	resp, err := c.ConnectStatus(cmd.Context(), &portal.ConnectStatusRequest{AccountID: account, DeviceID: id})
	if err != nil {
		return c.wrap(fmt.Sprintf("asking for the status of device %s", id), err)
	}
	r := deviceResult{Identifier: id, Account: account, Status: devicePending}
	var activation *mesh.Activation
	if len(resp.Result) > 0 {
		res, err := verifyResult(cmd.Context(), c, resp.Result)
		if err != nil {
			return err
		}
		r.Status, r.ParentUDF = res.Result, res.ParentUDF
		if d != nil && res.EnvelopedActivationAccount != nil && !d.activated() {
			if activation, err = d.activate(cmd.Context(), c, res); err != nil {
				return err
			}
			r.AccountEncryptionKey, r.DeviceSignatureKey = activation.AccountEncryption.UDF().String(), activation.DeviceSignature.UDF().String()
		}
	}
	if d != nil {
		r.Description, r.ParentUDF, r.Dir = d.State.Description, d.State.ParentUDF, d.Dir
		if d.State.Status != r.Status {
			d.State.Status = r.Status
			if err := d.SaveState(); err != nil {
				return err
			}
		}
	}
	return opts.emit(cmd, r, func(w io.Writer) {
		switch r.Status {
		case devicePending:
			fmt.Fprintf(w, "Device %s: the request to join account %s is pending.\n", id, account)
		case mesh.ResultAccepted:
			fmt.Fprintf(w, "Device %s: Accepted into account %s (profile %s).\n", id, account, r.ParentUDF)
			if activation != nil {
				fmt.Fprintf(w, "Activated: the account's encryption key %s and this device's signature key %s are in the keystore.\n", r.AccountEncryptionKey, r.DeviceSignatureKey)
			}
		default:
			fmt.Fprintf(w, "Device %s: %s by account %s.\n", id, r.Status, account)
		}
	})
}

// verifyResult verifies a signed ConnectionResult against the profile it
// answers for, which it gets from the portal.
func verifyResult(ctx context.Context, c *portalClient, raw []byte) (*mesh.ConnectionResult, error) {
	var res mesh.ConnectionResult
	_, env, err := mesh.ParseEntry(raw)
	if err == nil {
		err = mesh.DecodePayload(env.Payload, &res)
	}
	if err != nil {
		return nil, fmt.Errorf("the connection result is malformed: %w", err)
	}
	v := mesh.Verifier{Lookup: func(id mesh.UDF) (*mesh.Entry, error) {
		resp, err := c.Get(ctx, &portal.GetRequest{Identifier: id.String()})
		if err != nil {
			return nil, c.wrap("getting profile "+id.String(), err)
		}
		if len(resp.DataItems) == 0 {
			return nil, nil
		}
		return mesh.VerifyEntry(resp.DataItems[0].Entry, 0)
	}}
	if _, err := v.Verify(raw); err != nil {
		return nil, fmt.Errorf("the connection result does not verify: %w", err)
	}
	return &res, nil
}

func newDeviceListCommand(opts *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the devices of the keystore and their last known connection status",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ks, err := opts.keystore()
			if err != nil {
				return err
			}
			all, err := ks.Devices()
			if err != nil {
				return err
			}
			out := make([]deviceResult, len(all))
			for i, d := range all {
				out[i] = describeDevice(d)
			}
			return opts.emit(cmd, out, func(w io.Writer) {
				if len(out) == 0 {
					fmt.Fprintf(w, "No devices in %s. 'meshctl device connect --account NAME' makes one.\n", ks.Dir())
				}
				for _, d := range out {
					fmt.Fprintf(w, "%s  %-8s  account %s  %s\n", d.Identifier, d.Status, d.Account, orDash(d.Description))
				}
			})
		},
	}
}

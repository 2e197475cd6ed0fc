package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/intermesh/intermesh/internal/keyfile"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// Device activation in the keystore (portal/mesh/activation.go): the admin
// device's 'device accept' puts an activation, encrypted to the new
// device, into the ConnectionResult; the new device's 'device status'
// opens it and keeps, in its directory,
//
//	account-encryption.key   the account's encryption key (KeyAccountEncryption)
//	account-signature.key    the device's signature key for the account
//	connection.json          the ConnectionAccount that lists it, signed by the account's admin key

// Keystore files of an activated device.
const (
	keyAccountEncryption = "account-encryption"
	keyAccountSignature  = "account-signature"
	fileConnection       = "connection.json"
)

// activationFor makes the activation of the device that req carries, by
// the profile prof (the account's), with its administration key admin.
func activationFor(rnd io.Reader, prof *localProfile, admin *mesh.PrivateKey, req *mesh.ConnectionRequest, account string) (*mesh.Envelope, error) {
	enc, err := prof.Key(keyEncryption)
	if err != nil {
		return nil, fmt.Errorf("activating the device needs the account's encryption key: %w", err)
	}
	authority, err := mesh.VerifyEntry(prof.Entry, 0)
	if err != nil {
		return nil, fmt.Errorf("the keystore's profile %s does not verify: %w", prof.State.Identifier, err)
	}
	var dev mesh.ProfileDevice
	if req.Device == nil {
		return nil, errors.New("the connection request carries no device profile")
	}
	if err := mesh.DecodePayload(req.Device.Payload, &dev); err != nil {
		return nil, fmt.Errorf("the device profile of the request: %w", err)
	}
	act, err := mesh.Activate(rnd, &dev, authority.Profile(), admin, enc, account)
	if err != nil {
		return nil, fmt.Errorf("activating the device: %w", err)
	}
	return act, nil
}

// verifiedProfile gets a profile by identifier from the portal and
// verifies it.
func verifiedProfile(ctx context.Context, c *portalClient, id string) (mesh.SignedProfile, error) {
	resp, err := c.Get(ctx, &portal.GetRequest{Identifier: id})
	if err != nil {
		return nil, c.wrap("getting profile "+id, err)
	}
	if len(resp.DataItems) == 0 {
		return nil, fmt.Errorf("the portal has no profile %s", id)
	}
	e, err := mesh.VerifyEntry(resp.DataItems[0].Entry, 0)
	if err != nil || e.Profile() == nil || !mesh.UDFEqual(e.Identifier.String(), id) {
		return nil, fmt.Errorf("profile %s from the portal does not verify: %v", id, err)
	}
	return e.Profile(), nil
}

// activated reports whether the device holds its activation.
func (d *localDevice) activated() bool {
	_, err := loadKey(d.Dir, keyAccountEncryption)
	return err == nil
}

// activate opens the activation of an accepted result with the device's
// encryption key, checks it against the account's profile (from the
// portal) and stores the keys.
func (d *localDevice) activate(ctx context.Context, c *portalClient, res *mesh.ConnectionResult) (*mesh.Activation, error) {
	authority, err := verifiedProfile(ctx, c, res.ParentUDF)
	if err != nil {
		return nil, err
	}
	devEntry, err := mesh.VerifyEntry(d.Entry, 0)
	if err != nil {
		return nil, fmt.Errorf("the keystore's device profile does not verify: %w", err)
	}
	dev, ok := devEntry.Object.(*mesh.ProfileDevice)
	if !ok {
		return nil, fmt.Errorf("the keystore's device entry is a %s, not a ProfileDevice", devEntry.Type)
	}
	enc, err := loadKey(d.Dir, keyEncryption)
	if err != nil {
		return nil, err
	}
	a, err := mesh.OpenActivation(res.EnvelopedActivationAccount, enc, dev, authority)
	if err != nil {
		return nil, fmt.Errorf("the device's activation does not open: %w", err)
	}
	for _, k := range []struct {
		name string
		key  *mesh.PrivateKey
	}{{keyAccountEncryption, a.AccountEncryption}, {keyAccountSignature, a.DeviceSignature}} {
		if _, err := restoreKey(d.Dir, k.name, k.key); err != nil {
			return nil, err
		}
	}
	if err := keyfile.WriteJSON(filepath.Join(d.Dir, fileConnection), a.Connection, true); err != nil {
		return nil, err
	}
	return a, nil
}

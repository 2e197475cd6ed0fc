package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/intermesh/intermesh/internal/keyfile"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// The keystore is a directory (--home, default ~/.meshctl) that holds the
// private keys of the user's profiles and devices. Nothing in it is ever sent
// to a portal. Layout (directories 0700, files 0600):
//
//	<home>/profiles/<profile UDF>/profile.json    the signed ProfileMesh entry, as published
//	<home>/profiles/<profile UDF>/state.json      local name, accounts, escrow identifiers
//	<home>/profiles/<profile UDF>/offline.key     KeyOfflineSignature (Ed448)
//	<home>/profiles/<profile UDF>/admin.key       the administration key, KeysOnlineSignature[0] (Ed448)
//	<home>/profiles/<profile UDF>/encryption.key  KeyEncryption (X448)
//	<home>/devices/<device UDF>/device.json       the signed ProfileDevice entry
//	<home>/devices/<device UDF>/state.json        account, parent profile, connection status
//	<home>/devices/<device UDF>/offline.key       the device's KeyOfflineSignature (Ed448)
//	<home>/devices/<device UDF>/encryption.key    KeyEncryption (X448)
//	<home>/devices/<device UDF>/authentication.key KeyAuthentication (X448)
//
// A key file is the Mesh KeyData of the key pair, private part included
// (portal/mesh's PrivateKey.KeyData). Key files are written once and never
// overwritten; state files are replaced atomically (write, then rename).

// Keystore kinds (subdirectories) and file names.
const (
	kindProfiles = "profiles"
	kindDevices  = "devices"

	fileProfile = "profile.json"
	fileDevice  = "device.json"
	fileState   = "state.json"

	keyOffline        = "offline"
	keyAdmin          = "admin"
	keyEncryption     = "encryption"
	keyAuthentication = "authentication"
)

// Keystore errors, matched with errors.Is.
var (
	// ErrExists: the keystore refuses to overwrite a key, profile or device.
	ErrExists = keyfile.ErrExists
	// ErrNotInKeystore: the profile, device or key is not in the keystore.
	ErrNotInKeystore = keyfile.ErrNotExist
	// ErrInsecure: a keystore file is readable or writable by others.
	ErrInsecure = keyfile.ErrInsecure
)

// Keystore is the local store of private keys, profiles and devices.
type Keystore struct {
	root string
}

// OpenKeystore opens the keystore in dir, creating it (mode 0700) if needed.
func OpenKeystore(dir string) (*Keystore, error) {
	if dir == "" {
		return nil, errors.New("keystore: no directory given (--home or MESHCTL_HOME)")
	}
	if err := os.MkdirAll(dir, keyfile.DirMode); err != nil {
		return nil, fmt.Errorf("keystore: creating %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("keystore: %s is not a directory", dir)
	}
	return &Keystore{root: dir}, nil
}

// Dir is the keystore's directory.
func (ks *Keystore) Dir() string { return ks.root }

// entryDir is the directory of one profile or device.
func (ks *Keystore) entryDir(kind, id string) string {
	return filepath.Join(ks.root, kind, id)
}

// create makes the directory of a new profile or device; it fails with
// ErrExists if there is one already.
func (ks *Keystore) create(kind, id string) (string, error) {
	if err := os.MkdirAll(filepath.Join(ks.root, kind), keyfile.DirMode); err != nil {
		return "", fmt.Errorf("keystore: %w", err)
	}
	dir := ks.entryDir(kind, id)
	if err := os.Mkdir(dir, keyfile.DirMode); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("keystore: %s %s: %w", strings.TrimSuffix(kind, "s"), id, ErrExists)
		}
		return "", fmt.Errorf("keystore: %w", err)
	}
	return dir, nil
}

// list returns the identifiers of the profiles or devices, sorted.
func (ks *Keystore) list(kind string) ([]string, error) {
	des, err := os.ReadDir(filepath.Join(ks.root, kind))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	var ids []string
	for _, de := range des {
		if de.IsDir() && !strings.HasPrefix(de.Name(), ".") {
			ids = append(ids, de.Name())
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// keyPath is the file of a named key in a profile or device directory.
func keyPath(dir, name string) string { return filepath.Join(dir, name+".key") }

// saveKey writes a private key as a new key file.
func saveKey(dir, name string, k *mesh.PrivateKey) error {
	return keyfile.WriteJSON(keyPath(dir, name), k.KeyData(), false)
}

// restoreKey writes a private key unless the same key is already there; a
// different key in its place is an ErrExists error.
func restoreKey(dir, name string, k *mesh.PrivateKey) (bool, error) {
	old, err := loadKey(dir, name)
	switch {
	case err == nil && old.Curve() == k.Curve() && bytes.Equal(old.Bytes(), k.Bytes()):
		return false, nil
	case err == nil:
		return false, fmt.Errorf("keystore: %s holds a different key: %w", keyPath(dir, name), ErrExists)
	case !errors.Is(err, ErrNotInKeystore):
		return false, err
	}
	return true, saveKey(dir, name, k)
}

// loadKey reads a key file.
func loadKey(dir, name string) (*mesh.PrivateKey, error) {
	path := keyPath(dir, name)
	var kd mesh.KeyData
	if err := keyfile.ReadJSON(path, &kd); err != nil {
		return nil, err
	}
	k, err := kd.PrivateKey()
	if err != nil {
		return nil, fmt.Errorf("keystore: %s: %w", path, err)
	}
	return k, nil
}

// profileState is the local, unpublished state of a profile.
type profileState struct {
	// Identifier is the profile's UDF.
	Identifier string
	// Name is a local label (never published).
	Name string `json:",omitempty"`
	// Created is when the profile was created (or recovered) here.
	Created time.Time
	// Accounts are the portal accounts bound to the profile.
	Accounts []string `json:",omitempty"`
	// Escrows are the identifiers of escrow entries of the profile's keys.
	Escrows []string `json:",omitempty"`
	// Writes are the records portals acknowledged for the profile that
	// the certified map has not been seen to reach yet (meshctl monitor).
	Writes []profileWrite `json:",omitempty"`
}

// profileWrite is a write a portal acknowledged: the record it appended,
// and when.
type profileWrite struct {
	Origin string
	Index  uint64
	At     time.Time
}

// RememberWrite records a write the portal acknowledged (w nil: the portal
// named no record) and saves the state.
func (p *localProfile) RememberWrite(w *portal.WrittenRecord, at time.Time) error {
	if w == nil {
		return nil
	}
	p.State.Writes = append(p.State.Writes, profileWrite{Origin: w.Origin, Index: w.Index, At: at.UTC()})
	return p.SaveState()
}

// localProfile is a profile in the keystore.
type localProfile struct {
	Dir   string
	State profileState
	// Entry is the signed ProfileMesh entry as published.
	Entry []byte
}

// Key loads one of the profile's private keys.
func (p *localProfile) Key(name string) (*mesh.PrivateKey, error) { return loadKey(p.Dir, name) }

// SaveState replaces the profile's state file.
func (p *localProfile) SaveState() error {
	return keyfile.WriteJSON(filepath.Join(p.Dir, fileState), &p.State, true)
}

// BindAccount records that the profile is bound to account (once, whatever
// its case) and saves the state if that changed it.
func (p *localProfile) BindAccount(account string) error {
	if slices.ContainsFunc(p.State.Accounts, func(a string) bool { return strings.EqualFold(a, account) }) {
		return nil
	}
	p.State.Accounts = append(p.State.Accounts, account)
	return p.SaveState()
}

// Profile loads the profile with identifier id.
func (ks *Keystore) Profile(id string) (*localProfile, error) {
	p := &localProfile{Dir: ks.entryDir(kindProfiles, id)}
	var err error
	if p.Entry, err = loadEntry(p.Dir, "profile "+id, fileProfile, &p.State); err != nil {
		return nil, err
	}
	return p, nil
}

// Profiles loads every profile in the keystore.
func (ks *Keystore) Profiles() ([]*localProfile, error) { return loadAll(ks, kindProfiles, ks.Profile) }

// FindProfile resolves what the user typed (a profile UDF, a unique prefix
// of one, or a local name) to a profile; "" means the only profile there is.
func (ks *Keystore) FindProfile(ref string) (*localProfile, error) {
	all, err := ks.Profiles()
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("there is no profile in the keystore %s: create one with 'meshctl profile create': %w", ks.root, ErrNotInKeystore)
	}
	if ref == "" {
		if len(all) == 1 {
			return all[0], nil
		}
		return nil, fmt.Errorf("the keystore holds %d profiles (%s): name one (its local name, its UDF or a prefix of it)", len(all), profileNames(all))
	}
	var found []*localProfile
	for _, p := range all {
		if p.State.Name == ref || udfHasPrefix(p.State.Identifier, ref) {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("profile %q: %w (have %s)", ref, ErrNotInKeystore, profileNames(all))
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("profile %q is ambiguous: it matches %s", ref, profileNames(found))
}

// ProfileOfAccount finds the local profile bound to an account, if any.
func (ks *Keystore) ProfileOfAccount(account string) (*localProfile, error) {
	all, err := ks.Profiles()
	if err != nil {
		return nil, err
	}
	for _, p := range all {
		if slices.ContainsFunc(p.State.Accounts, func(a string) bool { return strings.EqualFold(a, account) }) {
			return p, nil
		}
	}
	return nil, fmt.Errorf("no profile in the keystore is bound to account %q: %w", account, ErrNotInKeystore)
}

func profileNames(ps []*localProfile) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.State.Identifier
		if p.State.Name != "" {
			names[i] += " (" + p.State.Name + ")"
		}
	}
	return strings.Join(names, ", ")
}

// udfHasPrefix reports whether the UDF id starts with prefix, ignoring case
// and dashes; the prefix must be at least 4 characters.
func udfHasPrefix(id, prefix string) bool {
	norm := func(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "")) }
	p := norm(prefix)
	return len(p) >= 4 && strings.HasPrefix(norm(id), p)
}

// Device connection states (deviceState.Status).
const (
	devicePending = "Pending"
)

// deviceState is the local state of a device profile made by 'device connect'.
type deviceState struct {
	// Identifier is the device profile's UDF (the DeviceID of ConnectStatus).
	Identifier  string
	Description string `json:",omitempty"`
	Created     time.Time
	// Account is the account the device asked to join, at Portal.
	Account string
	Portal  string `json:",omitempty"`
	// ParentUDF is the profile the account is bound to.
	ParentUDF string
	// Status is Pending, or the result: Accepted, Refused or Query.
	Status string
}

// localDevice is a device in the keystore.
type localDevice struct {
	Dir   string
	State deviceState
	Entry []byte
}

// SaveState replaces the device's state file.
func (d *localDevice) SaveState() error {
	return keyfile.WriteJSON(filepath.Join(d.Dir, fileState), &d.State, true)
}

// Device loads the device with identifier id.
func (ks *Keystore) Device(id string) (*localDevice, error) {
	d := &localDevice{Dir: ks.entryDir(kindDevices, id)}
	var err error
	if d.Entry, err = loadEntry(d.Dir, "device "+id, fileDevice, &d.State); err != nil {
		return nil, err
	}
	return d, nil
}

// Devices loads every device in the keystore.
func (ks *Keystore) Devices() ([]*localDevice, error) { return loadAll(ks, kindDevices, ks.Device) }

// loadEntry reads the state file of the keystore entry in dir (what names
// it in errors) into state, and returns its entry file, trimmed.
func loadEntry(dir, what, entryFile string, state any) ([]byte, error) {
	if err := keyfile.ReadJSON(filepath.Join(dir, fileState), state); err != nil {
		if errors.Is(err, ErrNotInKeystore) {
			return nil, fmt.Errorf("keystore: %s: %w", what, ErrNotInKeystore)
		}
		return nil, err
	}
	b, err := keyfile.Read(filepath.Join(dir, entryFile))
	if err != nil {
		return nil, err
	}
	return bytes.TrimSpace(b), nil
}

// loadAll loads every entry of a kind with load.
func loadAll[T any](ks *Keystore, kind string, load func(id string) (T, error)) ([]T, error) {
	ids, err := ks.list(kind)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(ids))
	for _, id := range ids {
		v, err := load(id)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// FindDevice resolves a device UDF (or unique prefix); "" means the only
// device in the keystore.
func (ks *Keystore) FindDevice(ref string) (*localDevice, error) {
	all, err := ks.Devices()
	if err != nil {
		return nil, err
	}
	var found []*localDevice
	for _, d := range all {
		if ref == "" || udfHasPrefix(d.State.Identifier, ref) {
			found = append(found, d)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0 && ref == "":
		return nil, fmt.Errorf("there is no device in the keystore %s: %w", ks.root, ErrNotInKeystore)
	case len(found) == 0:
		return nil, fmt.Errorf("device %q: %w", ref, ErrNotInKeystore)
	case ref == "":
		return nil, fmt.Errorf("the keystore holds %d devices: name one", len(found))
	}
	return nil, fmt.Errorf("device %q is ambiguous: it matches %d devices", ref, len(found))
}

package main

import (
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/intermesh/intermesh/internal/keyfile"
	"github.com/intermesh/intermesh/portal/mesh"
)

// newTestProfile creates a profile in ks as 'profile create' does.
func newTestProfile(t *testing.T, ks *Keystore, name string) (*localProfile, *profileKeys) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	keys, entry, err := newProfileMesh(rand.Reader, now)
	if err != nil {
		t.Fatal(err)
	}
	id := keys.offline.UDF().String()
	dir, err := ks.create(kindProfiles, id)
	if err != nil {
		t.Fatal(err)
	}
	p := &localProfile{Dir: dir, Entry: entry, State: profileState{Identifier: id, Name: name, Created: now}}
	if err := saveProfile(p, keys); err != nil {
		t.Fatal(err)
	}
	return p, keys
}

func openTestKeystore(t *testing.T) *Keystore {
	t.Helper()
	ks, err := OpenKeystore(filepath.Join(t.TempDir(), "home"))
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// Every directory of the keystore is 0700 and every file 0600, whatever
// the umask.
func TestKeystoreFilesAre0600AndDirectories0700(t *testing.T) {
	ks := openTestKeystore(t)
	p, _ := newTestProfile(t, ks, "alice")
	p.State.Accounts = []string{"alice@example.com"}
	if err := p.SaveState(); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := filepath.WalkDir(ks.Dir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := keyfile.FileMode
		if d.IsDir() {
			want = keyfile.DirMode
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %04o, want %04o", path, fi.Mode().Perm(), want)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 8 { // home, profiles, the profile, profile.json, state.json, three keys
		t.Errorf("walked %d entries, want 8", n)
	}
}

// A key read back is the key written; so is the profile's state and entry.
func TestKeystoreRoundTrip(t *testing.T) {
	ks := openTestKeystore(t)
	p, keys := newTestProfile(t, ks, "alice")
	for name, want := range map[string]*mesh.PrivateKey{keyOffline: keys.offline, keyAdmin: keys.admin, keyEncryption: keys.encryption} {
		got, err := p.Key(name)
		if err != nil {
			t.Fatal(err)
		}
		if got.Curve() != want.Curve() || string(got.Bytes()) != string(want.Bytes()) || !got.Public().Equal(want.Public()) {
			t.Errorf("%s key does not round-trip", name)
		}
	}
	back, err := ks.Profile(p.State.Identifier)
	if err != nil {
		t.Fatal(err)
	}
	if string(back.Entry) != string(p.Entry) || back.State.Name != "alice" || !back.State.Created.Equal(p.State.Created) {
		t.Errorf("profile does not round-trip: %+v", back.State)
	}
	e, err := mesh.VerifyEntry(back.Entry, 0)
	if err != nil {
		t.Fatalf("the stored profile does not verify: %v", err)
	}
	if e.Identifier.String() != p.State.Identifier || !e.SignedOffline {
		t.Errorf("stored profile is %s, signed offline %v", e.Identifier, e.SignedOffline)
	}
}

// Keys, profiles and devices are never overwritten.
func TestKeystoreRefusesToOverwrite(t *testing.T) {
	ks := openTestKeystore(t)
	p, keys := newTestProfile(t, ks, "alice")
	other, err := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
	if err != nil {
		t.Fatal(err)
	}
	if err := saveKey(p.Dir, keyOffline, other); !errors.Is(err, ErrExists) {
		t.Errorf("saveKey over an existing key: %v, want ErrExists", err)
	}
	if _, err := ks.create(kindProfiles, p.State.Identifier); !errors.Is(err, ErrExists) {
		t.Errorf("creating an existing profile: %v, want ErrExists", err)
	}
	if got, _ := p.Key(keyOffline); string(got.Bytes()) != string(keys.offline.Bytes()) {
		t.Error("the offline key changed")
	}
	// Restoring the same key is a no-op; a different one is refused.
	if wrote, err := restoreKey(p.Dir, keyOffline, keys.offline); err != nil || wrote {
		t.Errorf("restoring the same key: wrote %v, %v", wrote, err)
	}
	if _, err := restoreKey(p.Dir, keyOffline, other); !errors.Is(err, ErrExists) {
		t.Errorf("restoring a different key: %v, want ErrExists", err)
	}
	if wrote, err := restoreKey(p.Dir, "spare", other); err != nil || !wrote {
		t.Errorf("restoring a missing key: wrote %v, %v", wrote, err)
	}
}

// A key file that others can read is refused, as ssh does.
func TestKeystoreRefusesKeysReadableByOthers(t *testing.T) {
	ks := openTestKeystore(t)
	p, _ := newTestProfile(t, ks, "alice")
	if err := os.Chmod(keyPath(p.Dir, keyAdmin), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Key(keyAdmin); !errors.Is(err, ErrInsecure) {
		t.Fatalf("loading a 0644 key: %v, want ErrInsecure", err)
	}
}

// Profiles are found by identifier, prefix or local name; "" is the only
// one; an ambiguous or unknown reference is an error.
func TestKeystoreFindProfile(t *testing.T) {
	ks := openTestKeystore(t)
	if _, err := ks.FindProfile(""); !errors.Is(err, ErrNotInKeystore) {
		t.Fatalf("empty keystore: %v", err)
	}
	a, _ := newTestProfile(t, ks, "alice")
	if got, err := ks.FindProfile(""); err != nil || got.State.Identifier != a.State.Identifier {
		t.Fatalf("the only profile: %v", err)
	}
	b, _ := newTestProfile(t, ks, "bob")
	for _, c := range []struct {
		ref, want string
	}{
		{"alice", a.State.Identifier},
		{"bob", b.State.Identifier},
		{b.State.Identifier, b.State.Identifier},
		{b.State.Identifier[:9], b.State.Identifier},
	} {
		got, err := ks.FindProfile(c.ref)
		if err != nil || got.State.Identifier != c.want {
			t.Errorf("FindProfile(%q): %v", c.ref, err)
		}
	}
	if _, err := ks.FindProfile(""); err == nil {
		t.Error("two profiles and no reference: no error")
	}
	if _, err := ks.FindProfile("carol"); !errors.Is(err, ErrNotInKeystore) {
		t.Errorf("unknown profile: %v", err)
	}
}

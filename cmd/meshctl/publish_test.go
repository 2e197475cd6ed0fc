package main

import (
	"crypto/rand"
	"strings"
	"testing"

	"github.com/intermesh/intermesh/portal/mesh"
)

// meshctl publish sends an entry that is not the account's own profile
// with an AccountProof signed by the account's admin key; without the key
// (another keystore) it cannot. A new version of the profile is taken, its
// replay is not.
func TestPublishForAnAccount(t *testing.T) {
	p := newTestPortal(t)
	alice, bob := newUser(t, p), newUser(t, p)
	alice.createProfile("alice")
	alice.ok("account", "create", "alice@example.com")
	bob.createProfile("bob")
	bob.ok("account", "create", "bob@example.com")

	off, err := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
	if err != nil {
		t.Fatal(err)
	}
	x := func() *mesh.KeyData {
		k, err := mesh.GenerateKey(rand.Reader, mesh.CurveX448)
		if err != nil {
			t.Fatal(err)
		}
		return mesh.NewKeyData(k.Public())
	}
	dev := &mesh.ProfileDevice{Profile: mesh.Profile{KeyOfflineSignature: mesh.NewKeyData(off.Public())},
		Description: "Alice's watch", KeyEncryption: x(), KeyAuthentication: x()}
	raw, err := signEntry(dev, off)
	if err != nil {
		t.Fatal(err)
	}
	// Bob's keystore holds no key of Alice's profile.
	if r := bob.runStdin(string(raw), "publish", "-", "--account", "alice@example.com"); r.code != exitFailure || !strings.Contains(r.stderr, "needs the administration key") {
		t.Fatalf("publish for alice from bob's keystore: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := alice.runStdin(string(raw), "publish", "-"); r.code != 0 || !strings.Contains(r.stdout, "Published ProfileDevice "+off.UDF().String()) {
		t.Fatalf("publish of a device profile for alice: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Bob, with a proof of his own, cannot take it over.
	if r := bob.runStdin(string(raw), "publish", "-"); r.code != exitFailure || !strings.Contains(r.stderr, "another account") {
		t.Fatalf("publish of alice's device profile for bob: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	old := alice.ok("get", "--account", "alice@example.com", "--raw")
	alice.ok("profile", "publish")
	if r := alice.runStdin(old, "publish", "-"); r.code != exitFailure || !strings.Contains(r.stderr, "409") {
		t.Fatalf("publish of the replaced version: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

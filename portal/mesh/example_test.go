package mesh_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log"

	"github.com/intermesh/intermesh/portal/mesh"
)

// Fingerprint data and compare fingerprints the way users type them.
func ExampleNewUDF() {
	u, err := mesh.NewUDF(mesh.UDFTypeSHA2, "text/plain", []byte("UDF Data Value"), mesh.DefaultUDFBits)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u)
	fmt.Println(mesh.UDFEqual("mddk7n6a727ajznostrxxks7djaf", u.String()))
	// Output:
	// MDDK-7N6A-727A-JZNO-STRX-XKS7-DJAF
	// true
}

// Create a ProfileMesh, sign it with its offline key, publish it as a
// type-tagged entry, and verify it the way a portal does.
func Example_profile() {
	offline, _ := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
	admin, _ := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
	enc, _ := mesh.GenerateKey(rand.Reader, mesh.CurveX448)
	profile := &mesh.ProfileMesh{
		Profile: mesh.Profile{
			KeyOfflineSignature: mesh.NewKeyData(offline.Public()),
			KeysOnlineSignature: []mesh.KeyData{*mesh.NewKeyData(admin.Public())},
		},
		KeyEncryption: mesh.NewKeyData(enc.Public()),
	}

	// Client: sign and wrap as {"ProfileMesh":[header, payload, trailer]}.
	env, err := mesh.SignObject(profile, offline)
	if err != nil {
		log.Fatal(err)
	}
	entry, _ := mesh.MarshalEntry(profile.TypeName(), env)

	// Portal: verify completely, then decide against the registered version.
	e, err := mesh.VerifyEntry(entry, mesh.MaxEnvelopeSize)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(e.Type, e.Identifier.Equal(offline.UDF()), e.SignedOffline)
	fmt.Println("first version accepted:", mesh.MayReplace(nil, e) == nil)

	// An update signed by the administration key the registered version lists.
	profile.Names = []string{"updated"}
	env2, _ := mesh.SignObject(profile, admin)
	entry2, _ := mesh.MarshalEntry(profile.TypeName(), env2)
	e2, err := mesh.VerifyEntry(entry2, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("update accepted:", mesh.MayReplace(e, e2) == nil)

	// Any change to the entry is caught.
	entry[len(entry)/2] ^= 1
	_, err = mesh.VerifyEntry(entry, 0)
	fmt.Println("tampered rejected:", err != nil)
	// Output:
	// ProfileMesh true true
	// first version accepted: true
	// update accepted: true
	// tampered rejected: true
}

// Verify an envelope against a known key.
func ExampleEnvelope_Verify() {
	key, _ := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
	env, _ := mesh.Sign([]byte(`{"Hello":{}}`), key)
	raw, _ := env.MarshalJSON()

	parsed, err := mesh.ParseEnvelope(raw)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(parsed.Verify(key.Public()))
	stranger, _ := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
	fmt.Println(errors.Is(parsed.Verify(stranger.Public()), mesh.ErrBadSignature))
	// Output:
	// <nil>
	// true
}

// Escrow a private key in 3-of-5 shares and recover it from three of them.
func ExampleEscrow() {
	secret, _ := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
	keystore, _ := secret.MarshalJSON()

	entry, shares, err := mesh.Escrow(rand.Reader, keystore, 3, 5)
	if err != nil {
		log.Fatal(err)
	}
	// The entry goes to the portal (as an unsigned envelope); the shares go
	// on paper to five trustees.
	published := map[string]*mesh.OfflineEscrowEntry{entry.Identifier: entry}

	recovered, err := mesh.Recover([]string{shares[4], shares[0], shares[2]}, func(id mesh.UDF) (*mesh.OfflineEscrowEntry, error) {
		return published[id.String()], nil
	})
	if err != nil {
		log.Fatal(err)
	}
	var key mesh.PrivateKey
	if err := key.UnmarshalJSON(recovered); err != nil {
		log.Fatal(err)
	}
	fmt.Println(key.UDF() == secret.UDF())

	_, err = mesh.Recover(shares[:2], nil)
	fmt.Println(errors.Is(err, mesh.ErrThreshold))
	// Output:
	// true
	// true
}

package testnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/portal/mesh"
)

// An entry encrypted to an account travels through the federation as
// ciphertext: published at node 0, replicated to node 1 over the
// InterMesh, fetched there and decrypted by a device that the account's
// administrator activated. No node's log holds the plaintext.
func TestAnEncryptedEntryCrossesTheFederationAndOnlyTheAccountsDeviceReadsIt(t *testing.T) {
	tn := startTestnet(t, 2)
	ctx := t.Context()

	// Alice's profile and a device activated for her account (what
	// 'meshctl device accept' and 'device status' do).
	key := func(c mesh.Curve) *mesh.PrivateKey {
		k, err := mesh.GenerateKey(rand.Reader, c)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	offline, admin, enc := key(mesh.CurveEd448), key(mesh.CurveEd448), key(mesh.CurveX448)
	alice := &mesh.ProfileMesh{
		Profile: mesh.Profile{
			KeyOfflineSignature: mesh.NewKeyData(offline.Public()),
			KeysOnlineSignature: []mesh.KeyData{*mesh.NewKeyData(admin.Public())},
		},
		KeyEncryption: mesh.NewKeyData(enc.Public()),
	}
	devOffline, devEnc := key(mesh.CurveEd448), key(mesh.CurveX448)
	phone := &mesh.ProfileDevice{
		Profile:           mesh.Profile{KeyOfflineSignature: mesh.NewKeyData(devOffline.Public())},
		KeyEncryption:     mesh.NewKeyData(devEnc.Public()),
		KeyAuthentication: mesh.NewKeyData(key(mesh.CurveX448).Public()),
	}
	act, err := mesh.Activate(rand.Reader, phone, alice, admin, enc, "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	activation, err := mesh.OpenActivation(act, devEnc, phone, alice)
	if err != nil {
		t.Fatal(err)
	}

	// The laptop encrypts to the account and publishes at node 0.
	const secret = "the door code is 4711"
	env, err := mesh.Encrypt(rand.Reader, []byte(secret), []mesh.PublicKey{enc.Public()}, admin)
	if err != nil {
		t.Fatal(err)
	}
	entry, id, err := mesh.NewPublication(env)
	if err != nil {
		t.Fatal(err)
	}
	c0, err := client.New(tn.PortalURL(0))
	if err != nil {
		t.Fatal(err)
	}
	aliceEnv, err := mesh.SignObject(alice, offline)
	if err != nil {
		t.Fatal(err)
	}
	aliceEntry, err := mesh.MarshalEntry(alice.TypeName(), aliceEnv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CreateAccountWith(ctx, c0, "alice@example.com", aliceEntry, offline); err != nil {
		t.Fatal(err)
	}
	hello, err := c0.Hello(ctx)
	if err != nil {
		t.Fatal(err)
	}
	proof, err := portal.SignAccountProof(hello.Service, "alice@example.com", portal.TxPublish, entry, time.Now(), admin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c0.Publish(ctx, &portal.PublishRequest{Entry: entry, AccountID: "alice@example.com", Proof: proof}); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{tn.opts.Origin(0): tn.Node(0).Log().Size()}
	if err := waitForReplicas(t, tn, want, "node 1's replica of node 0 verified past the publication"); err != nil {
		t.Fatal(err)
	}

	// Node 1 serves it, replicated from node 0; the phone decrypts it.
	c1, err := client.New(tn.PortalURL(1))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c1.Get(ctx, &portal.GetRequest{Identifier: id.String()})
	if err != nil {
		t.Fatalf("Get at node 1 of the publication made at node 0: %v", err)
	}
	if len(resp.DataItems) != 1 || !resp.DataItems[0].Replicated || resp.DataItems[0].Origin != tn.opts.Origin(0) {
		t.Fatalf("Get at node 1: %+v", resp.DataItems)
	}
	e, err := mesh.VerifyEntry(resp.DataItems[0].Entry, 0)
	if err != nil {
		t.Fatal(err)
	}
	pub := e.Object.(*mesh.CatalogedPublication)
	keys, _ := mesh.AuthorityKeys(alice)
	resolve := func(kid mesh.UDF) (mesh.PublicKey, error) {
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return mesh.PublicKey{}, mesh.ErrUnknownKey
	}
	pt, signer, err := pub.EnvelopedData.Decrypt([]*mesh.PrivateKey{activation.AccountEncryption}, resolve)
	if err != nil || string(pt) != secret || !signer.Equal(admin.UDF()) {
		t.Fatalf("the phone reads %q signed by %s (%v)", pt, signer, err)
	}
	if _, _, err := pub.EnvelopedData.Decrypt([]*mesh.PrivateKey{devEnc}, resolve); err == nil {
		t.Fatal("the phone's own key (not a recipient) decrypted the account's entry")
	}

	// Neither node's log, nor node 1's replica of node 0, holds the
	// plaintext. Node 0's log and node 1's replica hold the publication;
	// node 1's own log may not hold a record yet (its first round's
	// MasterHash record may still be on its way).
	checkNoPlaintext(t, ctx, tn.Node(0).Log().Range, secret, true)
	checkNoPlaintext(t, ctx, tn.Node(1).Log().Range, secret, false)
	r, err := tn.Node(1).Log().Replica(tn.opts.Origin(0))
	if err != nil {
		t.Fatal(err)
	}
	checkNoPlaintext(t, ctx, r.Range, secret, true)
}

// checkNoPlaintext pages through a log and fails if any record holds text.
func checkNoPlaintext(t *testing.T, ctx context.Context, rangeOf func(context.Context, log.Constraints) (log.Page, error), text string, mustHold bool) {
	t.Helper()
	c := log.Constraints{MaxEntries: 100}
	seen := 0
	for {
		page, err := rangeOf(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range page.Records {
			seen++
			if bytes.Contains(rec.Payload, []byte(text)) || bytes.Contains(rec.MarshalLeaf(), []byte(text)) {
				t.Fatalf("record %d (%s) holds the plaintext", rec.Seq, rec.Kind)
			}
		}
		if page.PageKey == "" {
			break
		}
		c.PageKey = page.PageKey
	}
	if mustHold && seen == 0 {
		t.Fatal("no records to check")
	}
}

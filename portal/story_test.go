package portal_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// The story of seed 003 §8, told through the Go client against a real portal:
// Alice validates and creates her account, publishes her profiles, connects
// her ring, adds an application (service) profile, escrows her key and
// recovers it, and finally deletes her account.
func TestSeed003StoryThroughTheClient(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{})
	c := p.client
	alice := newUser(t, "alice@example.com")

	hello, err := c.Hello(ctx)
	mustStatus(t, err, portal.SuccessOK)
	if hello.Version == nil || hello.Version.Major != 3 {
		t.Fatalf("Hello version %+v", hello.Version)
	}

	// §8.1.1 Checking the account identifier.
	v, err := c.ValidateAccount(ctx, &portal.ValidateRequest{Account: "alice@example.com", Language: []string{"en-uk"}})
	mustStatus(t, err, portal.SuccessOK)
	if !v.Valid || v.Minimum != 1 || v.Maximum != 64 || v.InvalidCharacters == "" || v.Reason != "" {
		t.Fatalf("ValidateAccount(alice@example.com) = %+v", v)
	}
	v, err = c.ValidateAccount(ctx, &portal.ValidateRequest{Account: "alice smith{}"})
	mustStatus(t, err, portal.SuccessOK)
	if v.Valid || v.Reason == "" || !bytes.ContainsAny([]byte(v.InvalidCharacters), " {}") {
		t.Fatalf("ValidateAccount(alice smith{}) = %+v", v)
	}

	// §8.2.1 Creating the account bound to her ProfileAccount, then
	// publishing her ProfileMesh.
	_, err = c.CreateAccount(ctx, consented(t, "alice@example.com", entryOf(t, alice.profileAccount, alice.acctOffline), alice.acctOffline))
	mustStatus(t, err, portal.SuccessOK)
	v, err = c.ValidateAccount(ctx, &portal.ValidateRequest{Account: "ALICE@example.COM"})
	mustStatus(t, err, portal.SuccessOK)
	if v.Valid {
		t.Fatal("account names are case-insensitive: ALICE@example.COM should be taken")
	}
	meshEntry := entryOf(t, alice.profileMesh, alice.meshOffline)
	_, err = c.Publish(ctx, &portal.PublishRequest{Entry: meshEntry, AccountID: "alice@example.com"})
	mustStatus(t, err, portal.SuccessOK)

	// §8.3.1 The ring's user looks the profile up by account.
	got, err := c.Get(ctx, &portal.GetRequest{Account: "Alice@Example.com"})
	mustStatus(t, err, portal.SuccessOK)
	if len(got.DataItems) != 1 || got.DataItems[0].Identifier != alice.accountUDF() {
		t.Fatalf("Get by account: %+v", got)
	}
	got, err = c.Get(ctx, &portal.GetRequest{Identifier: alice.meshOffline.UDF().String()})
	mustStatus(t, err, portal.SuccessOK)
	if !jsonEqual(got.DataItems[0].Entry, meshEntry) {
		t.Fatalf("Get by identifier returned %s, want the published entry", got.DataItems[0].Entry)
	}

	// §8.3.2 The ring asks to connect.
	devEnv, devKey := newDevice(t, "Alice Ring")
	request := &mesh.ConnectionRequest{ParentUDF: alice.accountUDF(), Device: devEnv}
	requestEntry := entryOf(t, request, devKey)
	_, err = c.ConnectStart(ctx, &portal.ConnectStartRequest{SignedRequest: requestEntry, AccountID: "alice@example.com"})
	mustStatus(t, err, portal.SuccessOK)
	deviceID := devKey.UDF().String()
	st, err := c.ConnectStatus(ctx, &portal.ConnectStatusRequest{AccountID: "alice@example.com", DeviceID: deviceID})
	mustStatus(t, err, portal.SuccessOK)
	if st.Result != nil {
		t.Fatalf("ConnectStatus before completion has a result: %s", st.Result)
	}

	// §8.3.3 The administration device polls.
	pending, err := c.ConnectPending(ctx, &portal.ConnectPendingRequest{AccountID: "alice@example.com",
		Proof: accountProof(t, "alice@example.com", portal.TxConnectPending, nil, alice.acctOnline)})
	mustStatus(t, err, portal.SuccessOK)
	if len(pending.Pending) != 1 || !jsonEqual(pending.Pending[0], requestEntry) {
		t.Fatalf("ConnectPending: %+v", pending)
	}

	// §8.3.4 It updates the account profile, signed with the online key.
	alice.profileAccount.Names = []string{"Alice Ring"}
	_, err = c.Publish(ctx, &portal.PublishRequest{Entry: entryOf(t, alice.profileAccount, alice.acctOnline), AccountID: "alice@example.com"})
	mustStatus(t, err, portal.SuccessOK)

	// §8.3.5 It posts the result, signed by the administration key.
	result := &mesh.ConnectionResult{ConnectionRequest: *request, Result: mesh.ResultAccepted}
	resultEntry := entryOf(t, result, alice.acctOnline)
	_, err = c.ConnectComplete(ctx, &portal.ConnectCompleteRequest{Result: resultEntry, AccountID: "alice@example.com"})
	mustStatus(t, err, portal.SuccessOK)

	// §8.3.6 The ring polls and finds the result.
	st, err = c.ConnectStatus(ctx, &portal.ConnectStatusRequest{AccountID: "alice@example.com", DeviceID: deviceID})
	mustStatus(t, err, portal.SuccessOK)
	if !jsonEqual(st.Result, resultEntry) {
		t.Fatalf("ConnectStatus result %s, want the posted result", st.Result)
	}
	pending, err = c.ConnectPending(ctx, &portal.ConnectPendingRequest{AccountID: "alice@example.com",
		Proof: accountProof(t, "alice@example.com", portal.TxConnectPending, nil, alice.acctOnline)})
	mustStatus(t, err, portal.SuccessOK)
	if len(pending.Pending) != 0 {
		t.Fatalf("ConnectPending after completion: %d pending", len(pending.Pending))
	}

	// §8.4 An application profile, published, then linked from the account
	// profile, which is published again.
	svcKey := newKey(t, mesh.CurveEd448)
	svc := &mesh.ProfileService{Profile: mesh.Profile{KeyOfflineSignature: mesh.NewKeyData(svcKey.Public())},
		KeyEncryption: mesh.NewKeyData(newKey(t, mesh.CurveX448).Public())}
	svcEnv := envelopeOf(t, svc, svcKey)
	err = publishFor(t, c, "alice@example.com", entryOf(t, svc, svcKey), alice.acctOnline)
	mustStatus(t, err, portal.SuccessOK)
	alice.profileAccount.EnvelopedProfileService = svcEnv
	_, err = c.Publish(ctx, &portal.PublishRequest{Entry: entryOf(t, alice.profileAccount, alice.acctOnline), AccountID: "alice@example.com"})
	mustStatus(t, err, portal.SuccessOK)
	versions, err := c.Get(ctx, &portal.GetRequest{Identifier: alice.accountUDF(), Multiple: true, Full: true})
	mustStatus(t, err, portal.SuccessOK)
	if len(versions.DataItems) != 3 {
		t.Fatalf("Get Multiple: %d versions of the account profile, want 3", len(versions.DataItems))
	}
	for i, item := range versions.DataItems {
		if item.Index == nil || item.Time == nil || len(item.Leaf) == 0 {
			t.Fatalf("Get Full item %d lacks log metadata: %+v", i, item)
		}
	}

	// §8.5 Escrow of the offline key, §8.6 recovery from two of three shares.
	secret := alice.meshOffline.Bytes()
	escrow, shares, err := mesh.Escrow(rand.Reader, secret, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	err = publishFor(t, c, "alice@example.com", escrowEntry(t, escrow), alice.acctOnline)
	mustStatus(t, err, portal.SuccessOK)
	recovered, err := mesh.Recover([]string{shares[2], shares[0]}, func(id mesh.UDF) (*mesh.OfflineEscrowEntry, error) {
		resp, err := c.Get(ctx, &portal.GetRequest{Identifier: id.String()})
		if err != nil {
			return nil, err
		}
		_, env, err := mesh.ParseEntry(resp.DataItems[0].Entry)
		if err != nil {
			return nil, err
		}
		var o mesh.OfflineEscrowEntry
		return &o, mesh.DecodePayload(env.Payload, &o)
	})
	if err != nil || !bytes.Equal(recovered, secret) {
		t.Fatalf("recovering the escrowed key: %v", err)
	}

	status, err := c.Status(ctx)
	mustStatus(t, err, portal.SuccessOK)
	if status.LastWriteTime == nil || status.NextCheckpointTime == nil {
		t.Fatalf("Status: %+v", status)
	}

	// Deleting the account needs a proof signed by a key of its profile.
	proof := entryOf(t, &portal.DeleteProof{Account: "alice@example.com", Signed: time.Now()}, alice.acctOnline)
	_, err = c.DeleteAccount(ctx, &portal.DeleteRequest{Account: "alice@example.com", Proof: proof})
	mustStatus(t, err, portal.SuccessOK)
	_, err = c.Get(ctx, &portal.GetRequest{Account: "alice@example.com"})
	mustStatus(t, err, portal.NotFound)
	// The profile stays published.
	_, err = c.Get(ctx, &portal.GetRequest{Identifier: alice.accountUDF()})
	mustStatus(t, err, portal.SuccessOK)
}

// seedProfiles are the signed profiles of seed 002, as the reference
// implementation wrote them (extracted by package mesh into its testdata),
// in the order they are published.
var seedProfiles = []struct{ file, typ string }{
	{"EnvelopedProfileAccount.json", mesh.TypeProfileAccount},
	{"EnvelopedProfileMesh.json", mesh.TypeProfileMesh},
	{"EnvelopedProfileDevice.json", mesh.TypeProfileDevice},
	{"EnvelopedProfileService.json", mesh.TypeProfileService},
}

func seedEntry(t *testing.T, file, typ string) []byte {
	env, err := os.ReadFile(filepath.Join("mesh", "testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := json.Marshal(typ)
	return append(append(append([]byte("{"), tag...), ':'), append(bytes.TrimSpace(env), '}')...)
}

// The seed's profiles are accepted and found by Get, published for an
// account whose administration key vouches for them. No account can be
// bound to the seed's ProfileAccount: it lists no account name and nobody
// here holds its keys to consent. A copy with any one byte of the payload,
// signature or digest changed is refused and changes nothing.
func TestSeed002ProfilesArePublishedAndTamperedCopiesRefused(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{})
	holder := newUser(t, "holder@example.com")
	_, err := p.client.CreateAccount(ctx, consented(t, "holder", entryOf(t, holder.profileAccount, holder.acctOffline), holder.acctOffline))
	mustStatus(t, err, portal.SuccessOK)
	publish := func(typ string, raw []byte) error {
		if typ == mesh.TypeProfileAccount {
			_, err := p.client.CreateAccount(ctx, &portal.CreateRequest{Account: "seed", Profile: raw})
			mustStatus(t, err, portal.ClientUnauthorized)
		}
		return publishFor(t, p.client, "holder", raw, holder.acctOnline)
	}
	for _, s := range seedProfiles {
		t.Run(s.typ, func(t *testing.T) {
			raw := seedEntry(t, s.file, s.typ)
			_, env, err := mesh.ParseEntry(raw)
			if err != nil {
				t.Fatal(err)
			}
			// Tampered copies first: each changes one byte of the decoded
			// payload, the signature or the digest.
			for _, tamper := range []func(e *mesh.Envelope){
				func(e *mesh.Envelope) { e.Payload[len(e.Payload)/2] ^= 1 },
				func(e *mesh.Envelope) { e.Trailer.Signatures[0].Value[10] ^= 1 },
				func(e *mesh.Envelope) { e.Trailer.PayloadDigest[0] ^= 1 },
			} {
				_, e2, _ := mesh.ParseEntry(raw)
				tamper(e2)
				tampered, err := mesh.MarshalEntry(s.typ, e2)
				if err != nil {
					t.Fatal(err)
				}
				before := p.log.Size()
				if pe := mustStatus(t, publish(s.typ, tampered), portal.ClientUnauthorized); pe.Description == "" {
					t.Fatal("no StatusDescription")
				}
				if p.log.Size() != before {
					t.Fatal("a refused publish changed the log")
				}
			}
			mustStatus(t, publish(s.typ, raw), portal.SuccessOK)
			id := env.Trailer.Signatures[0].Kid
			got, err := p.client.Get(ctx, &portal.GetRequest{Identifier: id})
			mustStatus(t, err, portal.SuccessOK)
			if !jsonEqual(got.DataItems[0].Entry, raw) {
				t.Fatalf("Get returned %s", got.DataItems[0].Entry)
			}
		})
	}
}

// jsonEqual compares two JSON texts ignoring insignificant whitespace.
func jsonEqual(a, b []byte) bool {
	var x, y bytes.Buffer
	if json.Compact(&x, a) != nil || json.Compact(&y, b) != nil {
		return false
	}
	return bytes.Equal(x.Bytes(), y.Bytes())
}

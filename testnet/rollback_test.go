package testnet

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/portal/mesh"
)

// A profile version replayed at another member of a running federation,
// which received the newer version over the InterMesh, gets 409 there too,
// and every member serves the newer version.
func TestAReplayedProfileVersionIsRefusedAtEveryMember(t *testing.T) {
	tn := startTestnet(t, 3)
	keys := make([]*mesh.PrivateKey, 3) // offline, admin A, admin B
	for i := range keys {
		k, err := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	enc, err := mesh.GenerateKey(rand.Reader, mesh.CurveX448)
	if err != nil {
		t.Fatal(err)
	}
	offline, a, b := keys[0], keys[1], keys[2]
	version := func(updated time.Time, admin, signer *mesh.PrivateKey) portal.Entry {
		p := &mesh.ProfileMesh{
			Profile: mesh.Profile{
				Assertion:           mesh.Assertion{Updated: &updated},
				KeyOfflineSignature: mesh.NewKeyData(offline.Public()),
				KeysOnlineSignature: []mesh.KeyData{*mesh.NewKeyData(admin.Public())},
			},
			KeyEncryption: mesh.NewKeyData(enc.Public()),
		}
		env, err := mesh.SignObject(p, signer)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := mesh.MarshalEntry(p.TypeName(), env)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	now := time.Now().UTC().Truncate(time.Second)
	v1 := version(now.Add(-time.Minute), a, offline)
	v2 := version(now, b, a) // A rotates itself out
	id := offline.UDF().String()

	clients := make([]*client.Client, tn.Size())
	for i := range clients {
		if clients[i], err = client.New(tn.PortalURL(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := CreateAccountWith(t.Context(), clients[0], tn.Account(0, "alice"), v1, offline); err != nil {
		t.Fatal(err)
	}
	resp, err := clients[0].Publish(t.Context(), &portal.PublishRequest{Entry: v2, AccountID: tn.Account(0, "alice")})
	if err != nil || resp.Status != portal.SuccessUpdated {
		t.Fatalf("Publish of v2: %+v, %v", resp, err)
	}
	for i, c := range clients {
		err := WaitFor(t.Context(), 30*time.Second, "v2 served", func() bool {
			got, err := c.Get(t.Context(), &portal.GetRequest{Identifier: id})
			return err == nil && len(got.DataItems) == 1 && sameJSON(got.DataItems[0].Entry, v2)
		})
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		size := tn.Node(i).Log().Size()
		_, err = CreateAccountWith(t.Context(), c, tn.Account(i, "mallory"), v1, a) // consented by A, an online key of v1
		var pe *portal.Error
		if !errors.As(err, &pe) || pe.Status != portal.AlreadyExists || !strings.Contains(pe.Description, "not newer than the registered version") {
			t.Fatalf("node %d: CreateAccount with the replayed v1: %v, want 409", i, err)
		}
		if tn.Node(i).Log().Size() != size {
			t.Fatalf("node %d wrote the replay", i)
		}
	}
}

// sameJSON compares two JSON texts ignoring insignificant whitespace.
func sameJSON(a, b []byte) bool {
	var x, y bytes.Buffer
	return json.Compact(&x, a) == nil && json.Compact(&y, b) == nil && bytes.Equal(x.Bytes(), y.Bytes())
}

package portal_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// An AccountProof opens an account at the one portal it names: alice holds
// the name "alice" at portals A and B with the same profile, and a proof she
// made for A neither reads her pending requests at B nor publishes there,
// while one she made for B (the name B's Hello gives) does both.
func TestAnAccountProofIsValidOnlyAtThePortalItNames(t *testing.T) {
	ctx := context.Background()
	a := newPortalAt(t, "a.example/log", portal.Config{Service: "a.example"})
	b := newPortalAt(t, "b.example/log", portal.Config{Service: "b.example"})
	alice := newUser(t, "alice")
	for _, p := range []*testPortal{a, b} {
		_, err := p.client.CreateAccount(ctx, &portal.CreateRequest{Account: "alice", Profile: entryOf(t, alice.profileAccount, alice.acctOffline)})
		mustStatus(t, err, portal.SuccessOK)
		dev, devKey := newDevice(t, "phone")
		request := &mesh.ConnectionRequest{ParentUDF: alice.accountUDF(), Device: dev}
		_, err = p.client.ConnectStart(ctx, &portal.ConnectStartRequest{AccountID: "alice", SignedRequest: entryOf(t, request, devKey)})
		mustStatus(t, err, portal.SuccessOK)
	}
	hello, err := b.client.Hello(ctx)
	mustStatus(t, err, portal.SuccessOK)
	if hello.Service != "b.example" {
		t.Fatalf("B's Hello names the service %q, want b.example", hello.Service)
	}
	dev, _ := newDevice(t, "laptop")
	device, err := mesh.MarshalEntry(mesh.TypeProfileDevice, dev)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(service, tx string, entry portal.Entry) portal.Entry {
		proof, err := portal.SignAccountProof(service, "alice", tx, entry, time.Now(), alice.acctOnline)
		if err != nil {
			t.Fatal(err)
		}
		return proof
	}
	pending := func(proof portal.Entry) error {
		_, err := b.client.ConnectPending(ctx, &portal.ConnectPendingRequest{AccountID: "alice", Proof: proof})
		return err
	}
	publish := func(proof portal.Entry) error {
		_, err := b.client.Publish(ctx, &portal.PublishRequest{Entry: device, AccountID: "alice", Proof: proof})
		return err
	}
	const says = `is for portal "a.example", not this portal "b.example"`
	size := b.log.Size()
	if pe := mustStatus(t, pending(sign("a.example", portal.TxConnectPending, nil)), portal.ClientUnauthorized); !strings.Contains(pe.Description, says) {
		t.Errorf("ConnectPending at B with a proof for A: %q does not say %q", pe.Description, says)
	}
	if pe := mustStatus(t, publish(sign("a.example", portal.TxPublish, device)), portal.ClientUnauthorized); !strings.Contains(pe.Description, says) {
		t.Errorf("Publish at B with a proof for A: %q does not say %q", pe.Description, says)
	}
	if b.log.Size() != size {
		t.Error("B wrote a publication vouched for by a proof for A")
	}

	resp, err := b.client.ConnectPending(ctx, &portal.ConnectPendingRequest{AccountID: "alice", Proof: sign(hello.Service, portal.TxConnectPending, nil)})
	mustStatus(t, err, portal.SuccessOK)
	if len(resp.Pending) != 1 {
		t.Errorf("ConnectPending at B with a proof for B: %d pending, want 1", len(resp.Pending))
	}
	mustStatus(t, publish(sign(hello.Service, portal.TxPublish, device)), portal.SuccessOK)
}

// A proof must name a portal: SignAccountProof refuses to make one that
// does not.
func TestSignAccountProofNeedsThePortalsName(t *testing.T) {
	_, err := portal.SignAccountProof("", "alice", portal.TxConnectPending, nil, time.Now(), newKey(t, mesh.CurveEd448))
	if !errors.Is(err, portal.ErrNoPortalName) {
		t.Fatalf("SignAccountProof without a portal: %v, want ErrNoPortalName", err)
	}
}

// proofWithoutPortal is an AccountProof as it was before proofs named
// their portal: the same payload without the Portal field.
type proofWithoutPortal struct {
	Account     string
	Transaction string
	Signed      time.Time
}

// TypeName implements mesh.Object.
func (*proofWithoutPortal) TypeName() string { return "AccountProof" }

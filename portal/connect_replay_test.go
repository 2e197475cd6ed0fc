package portal_test

import (
	"context"
	"testing"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// TestAnOldConnectionResultDoesNotAnswerANewRequest: Alice's administration
// device refused her ring's connection request. The ring asks again, the
// same request. Anyone can read the refusal (ConnectStatus needs only the
// account and the device's UDF) and post it again with ConnectComplete:
// the portal refuses it, as a result it already recorded, and the new
// request stays pending for Alice to decide; her own answer to it is
// taken. (Before, the old refusal closed the new request, which never
// reached her.)
func TestAnOldConnectionResultDoesNotAnswerANewRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{})
	c := p.client
	const account = "alice@example.com"
	alice := newUser(t, account)
	_, err := c.CreateAccount(ctx, consented(t, account, entryOf(t, alice.profileAccount, alice.acctOffline), alice.acctOffline))
	mustStatus(t, err, portal.SuccessOK)

	devEnv, devKey := newDevice(t, "Alice Ring")
	device := devKey.UDF().String()
	request := &mesh.ConnectionRequest{ParentUDF: alice.accountUDF(), Device: devEnv}
	requestEntry := entryOf(t, request, devKey)
	_, err = c.ConnectStart(ctx, &portal.ConnectStartRequest{SignedRequest: requestEntry, AccountID: account})
	mustStatus(t, err, portal.SuccessOK)
	refusal := entryOf(t, &mesh.ConnectionResult{ConnectionRequest: *request, Result: mesh.ResultRefused}, alice.acctOnline)
	_, err = c.ConnectComplete(ctx, &portal.ConnectCompleteRequest{Result: refusal, AccountID: account})
	mustStatus(t, err, portal.SuccessOK)

	_, err = c.ConnectStart(ctx, &portal.ConnectStartRequest{SignedRequest: requestEntry, AccountID: account})
	mustStatus(t, err, portal.SuccessOK)
	st, err := c.ConnectStatus(ctx, &portal.ConnectStatusRequest{AccountID: account, DeviceID: device})
	mustStatus(t, err, portal.SuccessOK)
	if st.Result != nil {
		t.Fatalf("ConnectStatus of the new request answers %s", st.Result)
	}
	_, err = c.ConnectComplete(ctx, &portal.ConnectCompleteRequest{Result: refusal, AccountID: account})
	mustStatus(t, err, portal.AlreadyExists)
	pending, err := c.ConnectPending(ctx, &portal.ConnectPendingRequest{AccountID: account,
		Proof: accountProof(t, account, portal.TxConnectPending, nil, alice.acctOnline)})
	mustStatus(t, err, portal.SuccessOK)
	if len(pending.Pending) != 1 || !jsonEqual(pending.Pending[0], requestEntry) {
		t.Fatalf("after the old refusal was posted again, %d requests pending, want the ring's", len(pending.Pending))
	}

	accepted := entryOf(t, &mesh.ConnectionResult{ConnectionRequest: *request, Result: mesh.ResultAccepted}, alice.acctOnline)
	_, err = c.ConnectComplete(ctx, &portal.ConnectCompleteRequest{Result: accepted, AccountID: account})
	mustStatus(t, err, portal.SuccessOK)
	st, err = c.ConnectStatus(ctx, &portal.ConnectStatusRequest{AccountID: account, DeviceID: device})
	mustStatus(t, err, portal.SuccessOK)
	if !jsonEqual(st.Result, accepted) {
		t.Fatalf("ConnectStatus answers %s, want Alice's acceptance", st.Result)
	}
}

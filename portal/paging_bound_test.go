package portal_test

import (
	"context"
	"sync"
	"testing"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// A page examines at most MaxPageExamined records, those it skips outside
// the time window included: alice's queue holds MaxPageExamined+1 requests
// before the window and one inside it, after them. The first page answers
// with no request and a key to continue, and following the keys reaches
// the one inside the window.
func TestAPageExaminesAtMostMaxPageExaminedRecords(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{})
	alice := newUser(t, "alice@example.com")
	_, err := p.client.CreateAccount(ctx, consented(t, "alice", entryOf(t, alice.profileAccount, alice.acctOffline), alice.acctOffline))
	mustStatus(t, err, portal.SuccessOK)
	connectStarts(t, p, alice, portal.MaxPageExamined+1)
	connectStarts(t, p, alice, 1)
	inside, err := p.log.Get(p.log.Size() - 1)
	if err != nil {
		t.Fatal(err)
	}
	proof := accountProof(t, "alice", portal.TxConnectPending, nil, alice.acctOnline)
	req := &portal.ConnectPendingRequest{AccountID: "alice", Proof: proof, SearchConstraints: &portal.SearchConstraints{NotBefore: &inside.Time}}
	first, err := p.client.ConnectPending(ctx, req)
	mustStatus(t, err, portal.SuccessOK)
	if len(first.Pending) != 0 || first.PageKey == "" {
		t.Fatalf("the first page, after %d records outside the window: %d pending, page key %q; want none and a key to continue",
			portal.MaxPageExamined, len(first.Pending), first.PageKey)
	}
	var found []portal.Entry
	pages := 1
	for resp := first; resp.PageKey != ""; pages++ {
		req.SearchConstraints = &portal.SearchConstraints{PageKey: resp.PageKey}
		if resp, err = p.client.ConnectPending(ctx, req); err != nil {
			t.Fatal(err)
		}
		found = append(found, resp.Pending...)
	}
	if pages != 2 || len(found) != 1 {
		t.Fatalf("%d pages and %d pending, want 2 pages and the one request inside the window", pages, len(found))
	}
	pe, err := portal.UnmarshalPortalEntry(inside.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if !jsonEqual(found[0], pe.Entry) {
		t.Error("the request found is not the one inside the window")
	}
}

// connectStarts sends n connection requests of new devices to alice's
// account, from 8 clients at once.
func connectStarts(t *testing.T, p *testPortal, alice *user, n int) {
	t.Helper()
	reqs := make(chan *portal.ConnectStartRequest, n)
	for range n {
		dev, devKey := newDevice(t, "device")
		request := &mesh.ConnectionRequest{ParentUDF: alice.accountUDF(), Device: dev}
		reqs <- &portal.ConnectStartRequest{AccountID: "alice", SignedRequest: entryOf(t, request, devKey)}
	}
	close(reqs)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for req := range reqs {
				_, err := p.client.ConnectStart(context.Background(), req)
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		mustStatus(t, err, portal.SuccessOK)
	}
}

// A Get without Multiple whose window excludes the latest version searches
// the history at most MaxPageExamined versions per request: alice's profile
// has one version inside the window and MaxPageExamined+1 after it. The
// first answer holds no version and a key to continue; following it finds
// the version inside the window.
func TestAGetOfTheLatestVersionExaminesAtMostMaxPageExaminedVersions(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{})
	alice := newUser(t, "alice@example.com")
	_, err := p.client.CreateAccount(ctx, consented(t, "alice", entryOf(t, alice.profileAccount, alice.acctOffline), alice.acctOffline))
	mustStatus(t, err, portal.SuccessOK)
	publish := func() portal.Entry {
		entry := entryOf(t, alice.profileAccount, alice.acctOffline)
		_, err := p.client.Publish(ctx, &portal.PublishRequest{Entry: entry, AccountID: "alice"})
		mustStatus(t, err, portal.SuccessOK)
		return entry
	}
	inside := publish()
	publish()
	after, err := p.log.Get(p.log.Size() - 1)
	if err != nil {
		t.Fatal(err)
	}
	for range portal.MaxPageExamined {
		publish()
	}
	req := &portal.GetRequest{Identifier: alice.accountUDF(), SearchConstraints: &portal.SearchConstraints{Before: &after.Time}}
	first, err := p.client.Get(ctx, req)
	mustStatus(t, err, portal.SuccessOK)
	if len(first.DataItems) != 0 || first.PageKey == "" {
		t.Fatalf("the first answer, after %d versions: %d versions, page key %q; want none and a key to continue",
			portal.MaxPageExamined, len(first.DataItems), first.PageKey)
	}
	req.SearchConstraints = &portal.SearchConstraints{PageKey: first.PageKey}
	second, err := p.client.Get(ctx, req)
	mustStatus(t, err, portal.SuccessOK)
	if second.PageKey != "" || len(second.DataItems) != 1 || !jsonEqual(second.DataItems[0].Entry, inside) {
		t.Fatalf("the second answer: %d versions, page key %q; want the version inside the window and no key", len(second.DataItems), second.PageKey)
	}
}

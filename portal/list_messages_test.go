package portal_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// newMessage returns a CatalogedPublication of text encrypted to a new
// X448 key and signed by signer, and its ID.
func newMessage(t testing.TB, text string, signer *mesh.PrivateKey) (portal.Entry, string) {
	t.Helper()
	env, err := mesh.Encrypt(rand.Reader, []byte(text), []mesh.PublicKey{newKey(t, mesh.CurveX448).Public()}, signer)
	if err != nil {
		t.Fatal(err)
	}
	entry, id, err := mesh.NewPublication(env)
	if err != nil {
		t.Fatal(err)
	}
	return entry, id.String()
}

// sendMessages publishes n messages for account (a proof signed by key),
// from 8 clients at once, and returns their IDs.
func sendMessages(t testing.TB, p *testPortal, account string, key *mesh.PrivateKey, n int) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	entries := make(chan portal.Entry, n)
	signer := newKey(t, mesh.CurveEd448)
	for range n {
		entry, id := newMessage(t, "hello", signer)
		ids[id] = true
		entries <- entry
	}
	close(entries)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for entry := range entries {
				errs <- publishFor(t, p.client, account, entry, key)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		mustStatus(t, err, portal.SuccessOK)
	}
	return ids
}

// listAll follows ListMessages' page keys to the end and returns the IDs
// in the order listed and the number of pages.
func listAll(t testing.TB, p *testPortal, req *portal.ListMessagesRequest) ([]string, int) {
	t.Helper()
	var ids []string
	for pages := 1; ; pages++ {
		resp, err := p.client.ListMessages(context.Background(), req)
		mustStatus(t, err, portal.SuccessOK)
		for _, item := range resp.DataItems {
			ids = append(ids, item.Identifier)
		}
		if resp.PageKey == "" {
			return ids, pages
		}
		sc := *req.SearchConstraints
		sc.PageKey = resp.PageKey
		req.SearchConstraints = &sc
	}
}

// newAccounts creates an account for each user, named by the map's key.
func newAccounts(t testing.TB, p *testPortal, users map[string]*user) {
	t.Helper()
	for name, u := range users {
		_, err := p.client.CreateAccount(context.Background(), consented(t, name, entryOf(t, u.profileAccount, u.acctOffline), u.acctOffline))
		mustStatus(t, err, portal.SuccessOK)
	}
}

// ListMessages lists the messages published for an account, oldest first,
// in pages that MaxEntries (and the server's MaxPageEntries, whatever the
// client asks) bound, each continuing the last; other entries of the
// account and other accounts' messages are not listed.
func TestListMessagesPagesThroughAnAccountsMessagesOldestFirst(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{MaxPageEntries: 3})
	alice, bob := newUser(t, "alice@example.com"), newUser(t, "bob@example.com")
	newAccounts(t, p, map[string]*user{"alice": alice, "bob": bob})
	mustStatus(t, publishFor(t, p.client, "alice", entryOf(t, alice.profileMesh, alice.meshOffline), alice.acctOnline), portal.SuccessOK)
	sendMessages(t, p, "bob", bob.acctOnline, 2)

	signer := newKey(t, mesh.CurveEd448)
	var want []string
	for i := range 7 {
		entry, id := newMessage(t, strings.Repeat("x", i), signer)
		mustStatus(t, publishFor(t, p.client, "alice", entry, alice.acctOnline), portal.SuccessOK)
		want = append(want, id)
	}
	proof := accountProof(t, "alice", portal.TxListMessages, nil, alice.acctOnline)
	for _, tc := range []struct {
		name       string
		maxEntries int
		pages      int
	}{
		{"two a page", 2, 4},
		{"the server's limit", 0, 3},
		{"a huge page size", 1 << 40, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, pages := listAll(t, p, &portal.ListMessagesRequest{AccountID: "Alice", Proof: proof,
				SearchConstraints: &portal.SearchConstraints{MaxEntries: tc.maxEntries}})
			if strings.Join(got, " ") != strings.Join(want, " ") || pages != tc.pages {
				t.Fatalf("%d pages listing\n%v\nwant %d pages listing\n%v", pages, got, tc.pages, want)
			}
		})
	}

	all, err := p.client.ListAllMessages(ctx, &portal.ListMessagesRequest{AccountID: "alice", Proof: proof,
		SearchConstraints: &portal.SearchConstraints{MaxEntries: 2}})
	mustStatus(t, err, portal.SuccessOK)
	if len(all) != len(want) || all[0].Identifier != want[0] || all[len(all)-1].Identifier != want[len(want)-1] {
		t.Fatalf("ListAllMessages: %d items, want the %d messages in order", len(all), len(want))
	}

	first, err := p.client.ListMessages(ctx, &portal.ListMessagesRequest{AccountID: "alice", Proof: proof})
	mustStatus(t, err, portal.SuccessOK)
	item := first.DataItems[0]
	if item.Index == nil || item.Time == nil || mesh.TypeCatalogedPublication != portal.Entry(item.Entry).Type() {
		t.Fatalf("an item lacks its index, time or publication: %+v", item)
	}
	// A time window: what was published on or after the third message
	// (and any earlier one the log sequenced at the same instant).
	notBefore := *first.DataItems[2].Time
	got, _ := listAll(t, p, &portal.ListMessagesRequest{AccountID: "alice", Proof: proof,
		SearchConstraints: &portal.SearchConstraints{NotBefore: &notBefore}})
	if len(got) < len(want)-2 || !strings.HasSuffix(strings.Join(want, " "), strings.Join(got, " ")) {
		t.Fatalf("NotBefore the third message: %v, want a suffix of %v from the third on", got, want)
	}
}

// A page of ListMessages examines at most MaxPageExamined messages, those
// outside the time window included: the first page over MaxPageExamined+1
// messages before the window answers none and a key that continues, and
// following the keys finds the one inside it.
func TestListMessagesExaminesAtMostMaxPageExaminedRecords(t *testing.T) {
	p := newTestPortal(t, portal.Config{})
	alice := newUser(t, "alice@example.com")
	newAccounts(t, p, map[string]*user{"alice": alice})
	sendMessages(t, p, "alice", alice.acctOnline, portal.MaxPageExamined+1)
	time.Sleep(2 * time.Millisecond)
	inside := sendMessages(t, p, "alice", alice.acctOnline, 1)
	last, err := p.log.Get(p.log.Size() - 1)
	if err != nil {
		t.Fatal(err)
	}
	req := &portal.ListMessagesRequest{AccountID: "alice", Proof: accountProof(t, "alice", portal.TxListMessages, nil, alice.acctOnline),
		SearchConstraints: &portal.SearchConstraints{NotBefore: &last.Time}}
	first, err := p.client.ListMessages(context.Background(), req)
	mustStatus(t, err, portal.SuccessOK)
	if len(first.DataItems) != 0 || first.PageKey == "" {
		t.Fatalf("the first page: %d messages, page key %q; want none and a key to continue", len(first.DataItems), first.PageKey)
	}
	got, pages := listAll(t, p, req)
	if pages != 2 || len(got) != 1 || !inside[got[0]] {
		t.Fatalf("%d pages listing %v; want 2 pages and the message inside the window", pages, got)
	}
}

// ListMessages shows an account's messages only with a proof of the
// account's key for this portal and this transaction, and refuses
// malformed, oversized and hostile requests, page keys included.
func TestListMessagesRefusesWhatIsNotTheAccountHoldersRequest(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{})
	alice, bob := newUser(t, "alice@example.com"), newUser(t, "bob@example.com")
	newAccounts(t, p, map[string]*user{"alice": alice, "bob": bob})
	sendMessages(t, p, "alice", alice.acctOnline, 3)
	now := time.Now()
	proof := func(service, account, tx string, key *mesh.PrivateKey) portal.Entry {
		e, err := portal.SignAccountProof(service, account, tx, nil, now, key)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	valid := proof(testService, "alice", portal.TxListMessages, alice.acctOnline)
	bobs := proof(testService, "bob", portal.TxListMessages, bob.acctOnline)
	first, err := p.client.ListMessages(ctx, &portal.ListMessagesRequest{AccountID: "alice", Proof: valid,
		SearchConstraints: &portal.SearchConstraints{MaxEntries: 1}})
	mustStatus(t, err, portal.SuccessOK)
	pendingKey := connectPendingKey(t, p, alice)
	raw, _ := base64.RawURLEncoding.DecodeString(first.PageKey)
	edited := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(raw), `"n":"alice"`, `"n":"bob"`, 1)))
	page := func(key string) *portal.SearchConstraints { return &portal.SearchConstraints{PageKey: key} }
	cases := []struct {
		name    string
		account string
		proof   portal.Entry
		sc      *portal.SearchConstraints
		status  int
		says    string
	}{
		{"no proof", "alice", nil, nil, 401, "Proof is missing"},
		{"bob's proof for alice's account", "alice", bobs, nil, 401, `is for account "bob"`},
		{"alice's proof signed by bob's key", "alice", proof(testService, "alice", portal.TxListMessages, bob.acctOnline), nil, 401, "unknown key"},
		{"a proof for another portal", "alice", proof("other.example", "alice", portal.TxListMessages, alice.acctOnline), nil, 401, `is for portal "other.example"`},
		{"a ConnectPending proof", "alice", proof(testService, "alice", portal.TxConnectPending, alice.acctOnline), nil, 401, "is for transaction"},
		{"an account that does not exist", "carol", proof(testService, "carol", portal.TxListMessages, alice.acctOnline), nil, 404, "does not exist"},
		{"no account", "", valid, nil, 400, "AccountID"},
		{"an oversized account name", strings.Repeat("a", 100_000), valid, nil, 400, "AccountID"},
		{"a negative page size", "alice", valid, &portal.SearchConstraints{MaxEntries: -1}, 400, "must not be negative"},
		{"an empty window", "alice", valid, &portal.SearchConstraints{NotBefore: &now, Before: &now}, 400, "NotBefore must be earlier"},
		{"alice's page key for bob", "bob", bobs, page(first.PageKey), 400, "another account's messages"},
		{"alice's page key edited for bob", "bob", bobs, page(edited), 400, "not a page key this portal issued"},
		{"a ConnectPending page key", "alice", valid, page(pendingKey), 400, "not a page key this portal issued for ListMessages"},
		{"a page key that is not base64", "alice", valid, page("%%%not-a-key"), 400, "not a page key"},
		{"a forged page key", "alice", valid, page(base64.RawURLEncoding.EncodeToString([]byte(`{"t":"ListMessages","n":"alice","s":0}`))), 400, "not a page key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := p.client.ListMessages(ctx, &portal.ListMessagesRequest{AccountID: tc.account, Proof: tc.proof, SearchConstraints: tc.sc})
			if pe := mustStatus(t, err, tc.status); !strings.Contains(pe.Description, tc.says) {
				t.Errorf("%q does not say %q", pe.Description, tc.says)
			}
			if resp != nil && len(resp.DataItems) > 0 {
				t.Errorf("a refused request listed %d messages", len(resp.DataItems))
			}
		})
	}
	// Malformed on the wire.
	for _, body := range []string{
		`{"ListMessagesRequest":{"AccountID":7}}`,
		`{"ListMessagesRequest":{"AccountID":"alice","Proof":"not an entry"}}`,
		`{"ListMessagesRequest":{"AccountID":"alice","SearchConstraints":{"MaxEntries":"many"}}}`,
		`{"ListMessagesRequest":[]}`,
	} {
		if _, resp := p.post(t, []byte(body), nil); resp.Status != portal.ClientBadRequest {
			t.Errorf("%s: %d %s, want 400", body, resp.Status, resp.StatusDescription)
		}
	}
}

// connectPendingKey returns a page key the portal issued for ConnectPending
// of alice's account (two pending requests, a page of one).
func connectPendingKey(t *testing.T, p *testPortal, alice *user) string {
	t.Helper()
	connectStarts(t, p, alice, 2)
	resp, err := p.client.ConnectPending(context.Background(), &portal.ConnectPendingRequest{AccountID: "alice",
		Proof: accountProof(t, "alice", portal.TxConnectPending, nil, alice.acctOnline), SearchConstraints: &portal.SearchConstraints{MaxEntries: 1}})
	mustStatus(t, err, portal.SuccessOK)
	if resp.PageKey == "" {
		t.Fatal("ConnectPending issued no page key")
	}
	return resp.PageKey
}

// A deleted account's messages are not listed to the account created
// later under the same name, nor continued with a page key issued before.
func TestListMessagesOfARecreatedAccountStartAtItsCreation(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{})
	alice, mallory := newUser(t, "alice@example.com"), newUser(t, "alice@example.com")
	newAccounts(t, p, map[string]*user{"alice": alice})
	sendMessages(t, p, "alice", alice.acctOnline, 2)
	old, err := p.client.ListMessages(ctx, &portal.ListMessagesRequest{AccountID: "alice",
		Proof: accountProof(t, "alice", portal.TxListMessages, nil, alice.acctOnline), SearchConstraints: &portal.SearchConstraints{MaxEntries: 1}})
	mustStatus(t, err, portal.SuccessOK)
	del := entryOf(t, &portal.DeleteProof{Account: "alice", Signed: time.Now()}, alice.acctOnline)
	_, err = p.client.DeleteAccount(ctx, &portal.DeleteRequest{Account: "alice", Proof: del})
	mustStatus(t, err, portal.SuccessOK)
	time.Sleep(2 * time.Millisecond) // a proof signed before the account was created is refused
	newAccounts(t, p, map[string]*user{"alice": mallory})
	ids := sendMessages(t, p, "alice", mallory.acctOnline, 1)
	proof := accountProof(t, "alice", portal.TxListMessages, nil, mallory.acctOnline)
	got, _ := listAll(t, p, &portal.ListMessagesRequest{AccountID: "alice", Proof: proof, SearchConstraints: &portal.SearchConstraints{}})
	if len(got) != 1 || !ids[got[0]] {
		t.Fatalf("the new account lists %v, want only its own message", got)
	}
	got, _ = listAll(t, p, &portal.ListMessagesRequest{AccountID: "alice", Proof: proof, SearchConstraints: &portal.SearchConstraints{PageKey: old.PageKey}})
	if len(got) != 1 || !ids[got[0]] {
		t.Fatalf("the old page key lists %v, want only the new account's message", got)
	}
}

// Messages a portal stored before it kept the index of an account's
// messages are not listed; State.Rebuild, which replays the log, lists
// them again.
func TestListMessagesOfDataWithoutTheIndexAfterRebuild(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{})
	alice := newUser(t, "alice@example.com")
	newAccounts(t, p, map[string]*user{"alice": alice})
	ids := sendMessages(t, p, "alice", alice.acctOnline, 3)
	if err := p.log.DB().DropPrefix([]byte{portal.StatePrefix, 'm'}); err != nil { // as stored before the upgrade
		t.Fatal(err)
	}
	req := func() *portal.ListMessagesRequest {
		return &portal.ListMessagesRequest{AccountID: "alice", Proof: accountProof(t, "alice", portal.TxListMessages, nil, alice.acctOnline),
			SearchConstraints: &portal.SearchConstraints{}}
	}
	if got, _ := listAll(t, p, req()); len(got) != 0 {
		t.Fatalf("without the index: %v, want none", got)
	}
	if err := portal.NewState().Rebuild(ctx, p.log.DB(), p.log); err != nil {
		t.Fatal(err)
	}
	got, _ := listAll(t, p, req())
	if len(got) != len(ids) {
		t.Fatalf("after Rebuild: %v, want the %d messages", got, len(ids))
	}
	for _, id := range got {
		if !ids[id] {
			t.Fatalf("after Rebuild: %s is not a message of alice", id)
		}
	}
}

// A message published at portal A replicates to B as any escrow entry
// does: B finds it by ID (Get, flagged Replicated) and B's replicated state
// is not touched by the index of A's messages; A lists it, and B, where the
// account does not exist, lists nothing for it.
func TestListedMessagesReplicateAsEntries(t *testing.T) {
	ctx := context.Background()
	a := newPortalAt(t, originA, portal.Config{})
	b := newPortalAt(t, originB, portal.Config{})
	alice := newUser(t, "alice@a.example")
	newAccounts(t, a, map[string]*user{"alice": alice})
	ids := sendMessages(t, a, "alice", alice.acctOnline, 2)
	replicate(t, a, b)
	proof := accountProof(t, "alice", portal.TxListMessages, nil, alice.acctOnline)
	got, _ := listAll(t, a, &portal.ListMessagesRequest{AccountID: "alice", Proof: proof, SearchConstraints: &portal.SearchConstraints{}})
	if len(got) != 2 {
		t.Fatalf("A lists %v, want the 2 messages", got)
	}
	for id := range ids {
		resp, err := b.client.Get(ctx, &portal.GetRequest{Identifier: id})
		mustStatus(t, err, portal.SuccessOK)
		if len(resp.DataItems) != 1 || !resp.DataItems[0].Replicated || resp.DataItems[0].Origin != originA {
			t.Fatalf("B's Get of %s: %+v", id, resp.DataItems)
		}
	}
	_, err := b.client.ListMessages(ctx, &portal.ListMessagesRequest{AccountID: "alice", Proof: proof})
	mustStatus(t, err, portal.NotFound)
}

package portal_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/portal/mesh"
)

// fill writes accounts, profiles, updates and connection requests.
func fill(t testing.TB, p *testPortal, from, users int) {
	ctx := context.Background()
	for i := from; i < from+users; i++ {
		u := newUser(t, fmt.Sprintf("user%d", i))
		_, err := p.client.CreateAccount(ctx, &portal.CreateRequest{Account: fmt.Sprintf("user%d", i), Profile: entryOf(t, u.profileAccount, u.acctOffline)})
		mustStatus(t, err, portal.SuccessOK)
		_, err = p.client.Publish(ctx, &portal.PublishRequest{Entry: entryOf(t, u.profileMesh, u.meshOffline), AccountID: fmt.Sprintf("user%d", i)})
		mustStatus(t, err, portal.SuccessOK)
		u.profileAccount.Names = []string{"updated"}
		_, err = p.client.Publish(ctx, &portal.PublishRequest{Entry: entryOf(t, u.profileAccount, u.acctOnline), AccountID: fmt.Sprintf("user%d", i)})
		mustStatus(t, err, portal.SuccessOK)
		dev, devKey := newDevice(t, "phone")
		_, err = p.client.ConnectStart(ctx, &portal.ConnectStartRequest{AccountID: fmt.Sprintf("user%d", i),
			SignedRequest: entryOf(t, &mesh.ConnectionRequest{ParentUDF: u.accountUDF(), Device: dev}, devKey)})
		mustStatus(t, err, portal.SuccessOK)
	}
}

// An auditor fetches the checkpoint, pulls every record with Transfer,
// recomputes the RFC 6962 root from the Leaf bytes and finds the
// checkpoint's root.
func TestAuditorRecomputesTheCheckpointRootFromTransfer(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{TransferToken: "auditor"})
	fill(t, p, 0, 6)
	p.closeEpoch(t, 1)
	fill(t, p, 6, 2) // records after the checkpoint are not covered by it

	auditor, err := client.New(p.url, client.WithToken("auditor"))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := auditor.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, _, err := merkle.OpenCheckpoint(signed, note.VerifierList(p.verifier))
	if err != nil {
		t.Fatal(err)
	}
	hasher := rfc6962.DefaultHasher
	rng := (&compact.RangeFactory{Hash: hasher.HashChildren}).NewEmptyRange(0)
	next := uint64(0)
	err = auditor.TransferAll(ctx, 0, 5, func(item portal.DataItem) error {
		if item.Index == nil || *item.Index != next {
			return fmt.Errorf("item index %v, want %d", item.Index, next)
		}
		rec, err := log.UnmarshalLeaf(item.Leaf)
		if err != nil || rec.Seq != next || string(rec.Kind) != item.Kind || rec.Identifier != item.Identifier {
			return fmt.Errorf("item %d: leaf does not match its decoded fields: %v", next, err)
		}
		if !bytes.Equal(rec.Payload, item.Entry) {
			return fmt.Errorf("item %d: Entry is not the leaf's payload", next)
		}
		if next < cp.Size {
			if err := rng.Append(hasher.HashLeaf(item.Leaf), nil); err != nil {
				return err
			}
		}
		next++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if next != p.log.Size() || cp.Size >= next {
		t.Fatalf("transferred %d records, log has %d, checkpoint covers %d", next, p.log.Size(), cp.Size)
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root, cp.Root) {
		t.Fatalf("recomputed root %x, checkpoint says %x", root, cp.Root)
	}

	// Get with Full gives the same leaf, so a client can check one entry.
	got, err := auditor.Get(ctx, &portal.GetRequest{Account: "user0", Full: true})
	mustStatus(t, err, portal.SuccessOK)
	item := got.DataItems[0]
	want, err := p.log.Get(*item.Index)
	if err != nil || !bytes.Equal(item.Leaf, want.MarshalLeaf()) {
		t.Fatalf("Get Full leaf differs from the log's: %v", err)
	}
}

// Transfer pages follow MaxEntries and the PageKey, and Get Multiple pages
// the versions of a profile.
func TestPagingFollowsSearchConstraints(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{TransferPublic: true})
	u := newUser(t, "pager@example.com")
	_, err := p.client.CreateAccount(ctx, consented(t, "pager", entryOf(t, u.profileAccount, u.acctOffline), u.acctOffline))
	mustStatus(t, err, portal.SuccessOK)
	for i := range 6 {
		u.profileAccount.Names = []string{fmt.Sprint(i)}
		_, err := p.client.Publish(ctx, &portal.PublishRequest{Entry: entryOf(t, u.profileAccount, u.acctOnline), AccountID: "pager"})
		mustStatus(t, err, portal.SuccessOK)
	}
	var seqs []uint64
	req := &portal.GetRequest{Identifier: u.accountUDF(), Multiple: true, Full: true, SearchConstraints: &portal.SearchConstraints{MaxEntries: 3}}
	for pages := 0; ; pages++ {
		resp, err := p.client.Get(ctx, req)
		mustStatus(t, err, portal.SuccessOK)
		if len(resp.DataItems) > 3 {
			t.Fatalf("page of %d items, MaxEntries 3", len(resp.DataItems))
		}
		for _, it := range resp.DataItems {
			seqs = append(seqs, *it.Index)
		}
		if resp.PageKey == "" {
			break
		}
		req = &portal.GetRequest{Multiple: true, Full: true, SearchConstraints: &portal.SearchConstraints{MaxEntries: 3, PageKey: resp.PageKey}}
	}
	if len(seqs) != 7 {
		t.Fatalf("versions %v, want 7", seqs)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("versions out of order: %v", seqs)
		}
	}
	// A window that excludes everything finds nothing.
	last, _ := p.log.Get(p.log.Size() - 1)
	after := last.Time.Add(1)
	_, err = p.client.Get(ctx, &portal.GetRequest{Identifier: u.accountUDF(), SearchConstraints: &portal.SearchConstraints{NotBefore: &after}})
	mustStatus(t, err, portal.NotFound)
	// The latest version before a time is an earlier one.
	first, _ := p.log.Get(1)
	before := first.Time.Add(1)
	got, err := p.client.Get(ctx, &portal.GetRequest{Identifier: u.accountUDF(), Full: true, SearchConstraints: &portal.SearchConstraints{Before: &before}})
	mustStatus(t, err, portal.SuccessOK)
	if *got.DataItems[0].Index != 1 {
		t.Fatalf("latest before record 1's time is %d", *got.DataItems[0].Index)
	}
}

// snapshot reads every key of the portal state.
func snapshot(t *testing.T, db *badger.DB) map[string]string {
	m := map[string]string{}
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{portal.StatePrefix}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			m[string(it.Item().KeyCopy(nil))] = string(v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The state rebuilt from the log alone is the state the indexer kept.
func TestRebuildReproducesTheState(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{})
	fill(t, p, 0, 4)
	u := newUser(t, "gone@example.com")
	_, err := p.client.CreateAccount(ctx, consented(t, "gone", entryOf(t, u.profileAccount, u.acctOffline), u.acctOffline))
	mustStatus(t, err, portal.SuccessOK)
	_, err = p.client.DeleteAccount(ctx, &portal.DeleteRequest{Account: "gone", Proof: entryOf(t, &portal.DeleteProof{Account: "gone", Signed: time.Now()}, u.acctOffline)})
	mustStatus(t, err, portal.SuccessOK)

	before := snapshot(t, p.log.DB())
	if len(before) == 0 {
		t.Fatal("no state")
	}
	if err := portal.NewState().Rebuild(ctx, p.log.DB(), p.log); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, p.log.DB())
	if !maps.Equal(before, after) {
		t.Fatalf("rebuilt state differs: %d keys before, %d after", len(before), len(after))
	}
	// The portal still works on the rebuilt state.
	_, err = p.client.Get(ctx, &portal.GetRequest{Account: "user3"})
	mustStatus(t, err, portal.SuccessOK)
	_, err = p.client.Get(ctx, &portal.GetRequest{Account: "gone"})
	mustStatus(t, err, portal.NotFound)
}

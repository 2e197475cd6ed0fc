package portal_test

import (
	"bytes"
	"context"
	"maps"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/portal/mesh"
)

const (
	originA = "a.example/log"
	originB = "b.example/log"
)

// replicate copies every record of from's log into to's replica of it, in
// pages, as the InterMesh would.
func replicate(t *testing.T, from, to *testPortal) *log.Replica {
	t.Helper()
	ctx := context.Background()
	r, err := to.log.Replica(from.origin)
	if err != nil {
		t.Fatal(err)
	}
	c := log.Constraints{MaxEntries: 7, From: r.Size()}
	for {
		page, err := from.log.Range(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Append(ctx, page.Records); err != nil {
			t.Fatal(err)
		}
		if page.PageKey == "" {
			return r
		}
		c.PageKey = page.PageKey
	}
}

// A profile published at portal A is found at portal B once B replicates
// A's log: flagged as replicated, with A as its origin, its index and leaf
// those of A's log.
func TestGetFindsProfilesPublishedAtAPeer(t *testing.T) {
	ctx := context.Background()
	a := newPortalAt(t, originA, portal.Config{})
	b := newPortalAt(t, originB, portal.Config{})
	fill(t, a, 0, 2)
	u := newUser(t, "carol@a.example")
	_, err := a.client.CreateAccount(ctx, consented(t, "carol", entryOf(t, u.profileMesh, u.meshOffline), u.meshOffline))
	mustStatus(t, err, portal.SuccessOK)
	id := u.meshOffline.UDF().String()

	// Before replication B knows nothing of it.
	_, err = b.client.Get(ctx, &portal.GetRequest{Identifier: id})
	mustStatus(t, err, portal.NotFound)

	replicate(t, a, b)
	atA, err := a.client.Get(ctx, &portal.GetRequest{Identifier: id, Full: true})
	mustStatus(t, err, portal.SuccessOK)
	atB, err := b.client.Get(ctx, &portal.GetRequest{Identifier: id, Full: true})
	mustStatus(t, err, portal.SuccessOK)
	got, want := atB.DataItems[0], atA.DataItems[0]
	if !got.Replicated || got.Origin != originA || want.Replicated {
		t.Fatalf("item at B: Replicated %v Origin %q; at A: Replicated %v", got.Replicated, got.Origin, want.Replicated)
	}
	if !bytes.Equal(got.Entry, want.Entry) || !bytes.Equal(got.Leaf, want.Leaf) || *got.Index != *want.Index {
		t.Fatalf("replicated item differs from the origin's: index %d vs %d", *got.Index, *want.Index)
	}
	// Without Full the origin is still said.
	brief, err := b.client.Get(ctx, &portal.GetRequest{Identifier: id})
	mustStatus(t, err, portal.SuccessOK)
	if it := brief.DataItems[0]; !it.Replicated || it.Origin != originA || it.Leaf != nil {
		t.Fatalf("brief replicated item = %+v", it)
	}

	// An update at A reaches B after the next replication, and Multiple
	// pages through the versions of the replica.
	u.profileMesh.KeysOnlineSignature = append(u.profileMesh.KeysOnlineSignature, *newKeyData(t))
	_, err = a.client.Publish(ctx, &portal.PublishRequest{Entry: entryOf(t, u.profileMesh, u.meshOnline), AccountID: "carol"})
	mustStatus(t, err, portal.SuccessOK)
	replicate(t, a, b)
	var versions []uint64
	req := &portal.GetRequest{Identifier: id, Multiple: true, Full: true, SearchConstraints: &portal.SearchConstraints{MaxEntries: 1}}
	for {
		resp, err := b.client.Get(ctx, req)
		mustStatus(t, err, portal.SuccessOK)
		for _, it := range resp.DataItems {
			if !it.Replicated || it.Origin != originA {
				t.Fatalf("version %d not flagged as replicated from A", *it.Index)
			}
			versions = append(versions, *it.Index)
		}
		if resp.PageKey == "" {
			break
		}
		req = &portal.GetRequest{Multiple: true, Full: true, SearchConstraints: &portal.SearchConstraints{MaxEntries: 1, PageKey: resp.PageKey}}
	}
	if len(versions) != 2 || versions[0] >= versions[1] {
		t.Fatalf("replicated versions %v, want 2 in log order", versions)
	}
	latest, err := b.client.Get(ctx, &portal.GetRequest{Identifier: id, Full: true})
	mustStatus(t, err, portal.SuccessOK)
	if *latest.DataItems[0].Index != versions[1] {
		t.Fatalf("latest replicated version is %d, want %d", *latest.DataItems[0].Index, versions[1])
	}

	// Accounts are local to the portal that holds them.
	_, err = b.client.Get(ctx, &portal.GetRequest{Account: "user0"})
	mustStatus(t, err, portal.NotFound)

	// A profile registered locally wins over the replicated one, and the
	// local rules ignore the replica: B registers it afresh (offline key).
	_, err = b.client.CreateAccount(ctx, consented(t, "carol", entryOf(t, u.profileMesh, u.meshOffline), u.meshOffline))
	mustStatus(t, err, portal.SuccessOK)
	local, err := b.client.Get(ctx, &portal.GetRequest{Identifier: id, Full: true})
	mustStatus(t, err, portal.SuccessOK)
	if it := local.DataItems[0]; it.Replicated || it.Origin != originB {
		t.Fatalf("after a local publish Get gives Replicated %v Origin %q", it.Replicated, it.Origin)
	}
}

func newKeyData(t *testing.T) *mesh.KeyData {
	return mesh.NewKeyData(newKey(t, mesh.CurveEd448).Public())
}

// Transfer with an Origin pages through the replica of that origin; the
// leaves rebuild the origin's checkpoint root, and the replica's own tree
// verifies the checkpoint.
func TestTransferServesAReplicaByOrigin(t *testing.T) {
	ctx := context.Background()
	a := newPortalAt(t, originA, portal.Config{})
	b := newPortalAt(t, originB, portal.Config{TransferToken: "peer"})
	fill(t, a, 0, 5)
	signed := a.closeEpoch(t, 1)
	fill(t, a, 5, 1) // beyond the checkpoint
	replicate(t, a, b)
	fill(t, b, 10, 1) // B's own log differs

	cp, _, err := merkle.OpenCheckpoint(signed, note.VerifierList(a.verifier))
	if err != nil {
		t.Fatal(err)
	}
	if err := merkle.NewTree(b.log.DB(), merkle.ReplicaPrefix(originA)).VerifyCheckpoint(cp); err != nil {
		t.Fatalf("B's replica tree does not verify A's checkpoint: %v", err)
	}

	hasher := rfc6962.DefaultHasher
	rng := (&compact.RangeFactory{Hash: hasher.HashChildren}).NewEmptyRange(0)
	next := uint64(0)
	req := &portal.TransferRequest{Origin: originA, SearchConstraints: &portal.SearchConstraints{MaxEntries: 4}}
	for {
		resp, err := b.client.Transfer(ctx, req)
		mustStatus(t, err, portal.SuccessOK)
		for _, it := range resp.DataItems {
			if it.Index == nil || *it.Index != next || !it.Replicated || it.Origin != originA {
				t.Fatalf("item %d: index %v replicated %v origin %q", next, it.Index, it.Replicated, it.Origin)
			}
			if next < cp.Size {
				if err := rng.Append(hasher.HashLeaf(it.Leaf), nil); err != nil {
					t.Fatal(err)
				}
			}
			next++
		}
		if resp.PageKey == "" {
			break
		}
		req.SearchConstraints.PageKey = resp.PageKey
	}
	if next != a.log.Size() {
		t.Fatalf("transferred %d records of A's %d", next, a.log.Size())
	}
	root, err := rng.GetRootHash(nil)
	if err != nil || !bytes.Equal(root, cp.Root) {
		t.Fatalf("root of the transferred leaves %x, A's checkpoint says %x (%v)", root, cp.Root, err)
	}

	// No replica of an origin: NotFound, saying so.
	_, err = b.client.Transfer(ctx, &portal.TransferRequest{Origin: "nobody.example/log"})
	if pe := mustStatus(t, err, portal.NotFound); !bytes.Contains([]byte(pe.Description), []byte("no replica")) {
		t.Errorf("description %q does not say why", pe.Description)
	}
	// Naming the node's own origin transfers its own log.
	own, err := b.client.Transfer(ctx, &portal.TransferRequest{Origin: originB})
	mustStatus(t, err, portal.SuccessOK)
	if len(own.DataItems) != int(b.log.Size()) || own.DataItems[0].Replicated || own.DataItems[0].Origin != originB {
		t.Fatalf("Transfer of the own origin gave %d items of %d", len(own.DataItems), b.log.Size())
	}
	// Transfer still needs authorization for a replica.
	anon, err := client.New(b.url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = anon.Transfer(ctx, &portal.TransferRequest{Origin: originA})
	mustStatus(t, err, portal.ClientUnauthorized)
}

// The replica indexer takes whatever the origin admitted: records the local
// rules would refuse, and payloads it cannot read, are mirrored; the
// replicated state only keeps the profiles and escrow entries.
func TestReplicaIndexerNeverRejects(t *testing.T) {
	ctx := context.Background()
	b := newPortalAt(t, originB, portal.Config{})
	r, err := b.log.Replica(originA)
	if err != nil {
		t.Fatal(err)
	}
	u := newUser(t, "dave@a.example")
	id := u.meshOffline.UDF().String()
	garbled := newKey(t, mesh.CurveEd448).UDF().String()
	signedByOnline, err := portal.MarshalPortalEntry(&portal.PortalEntry{Transaction: portal.TxPublish, Type: "ProfileMesh",
		Signer: u.meshOnline.UDF().String(), OfflineKey: id, Entry: entryOf(t, u.profileMesh, u.meshOnline)})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := []log.Record{
		{Kind: portal.KindProfile, Identifier: garbled, Payload: []byte("not json")},
		{Kind: portal.KindProfile, Identifier: id, Payload: signedByOnline}, // a new profile not signed by its offline key
		{Kind: portal.KindConnectionRequest, Identifier: "MDEV", Account: "nobody", Payload: []byte(`{}`)},
		{Kind: portal.KindEscrow, Identifier: id, Payload: signedByOnline}, // an escrow entry "replacing" a profile
		{Kind: "MasterHash", Payload: []byte("certificate")},               // a kind the portal does not own (the InterMesh's)
		{Kind: portal.KindProfile, Payload: signedByOnline},                // no identifier
	}
	for i := range recs {
		recs[i].Seq, recs[i].Time, recs[i].Origin = uint64(i), base.Add(time.Duration(i)), originA
	}
	if added, err := r.Append(ctx, recs); err != nil || added != len(recs) {
		t.Fatalf("replica Append = %d, %v; want every record", added, err)
	}
	got, err := b.client.Get(ctx, &portal.GetRequest{Identifier: id, Multiple: true, Full: true})
	mustStatus(t, err, portal.SuccessOK)
	if len(got.DataItems) != 2 || *got.DataItems[0].Index != 1 || *got.DataItems[1].Index != 3 || !got.DataItems[1].Replicated {
		t.Fatalf("replicated versions of %s: %+v, want records 1 and 3", id, got.DataItems)
	}
	_, err = b.client.Get(ctx, &portal.GetRequest{Identifier: garbled})
	mustStatus(t, err, portal.NotFound)
	if b.log.Size() != 0 {
		t.Fatal("the replica's records went into B's own log")
	}
	// The local rules are untouched: B still takes the profile as new,
	// signed by its offline key, and refuses it signed by the online key.
	_, err = b.client.CreateAccount(ctx, consented(t, "u", entryOf(t, u.profileMesh, u.meshOnline), u.meshOnline))
	mustStatus(t, err, portal.ClientUnauthorized)
	_, err = b.client.CreateAccount(ctx, consented(t, "u", entryOf(t, u.profileMesh, u.meshOffline), u.meshOffline))
	mustStatus(t, err, portal.SuccessOK)
}

// Rebuild of the local state keeps the replicated state; RebuildReplica
// reproduces it from the replica log.
func TestRebuildCoversReplicas(t *testing.T) {
	ctx := context.Background()
	a := newPortalAt(t, originA, portal.Config{})
	b := newPortalAt(t, originB, portal.Config{})
	fill(t, a, 0, 3)
	fill(t, b, 3, 2)
	r := replicate(t, a, b)
	before := snapshot(t, b.log.DB())
	if err := portal.NewState().Rebuild(ctx, b.log.DB(), b.log); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, b.log.DB()); !maps.Equal(before, after) {
		t.Fatalf("Rebuild changed the state: %d keys before, %d after", len(before), len(after))
	}
	if err := b.state.RebuildReplica(ctx, b.log.DB(), originA, r); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, b.log.DB()); !maps.Equal(before, after) {
		t.Fatalf("RebuildReplica changed the state: %d keys before, %d after", len(before), len(after))
	}
	replicated := 0
	for k := range before {
		if k[1] == 'R' {
			replicated++
		}
	}
	if replicated == 0 {
		t.Fatal("no replicated state to rebuild")
	}
}

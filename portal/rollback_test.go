package portal_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// A version replayed at another member, which holds the newer versions
// only as a replica, is refused there too, through CreateAccount and
// Publish; that member serves the newest version; a genuine newer version
// is still taken.
func TestAReplayThroughAnotherMemberIsRefused(t *testing.T) {
	ctx := context.Background()
	a := newPortalAt(t, originA, portal.Config{})
	b := newPortalAt(t, originB, portal.Config{})
	r := rotate(t, a, "alice")
	replicate(t, a, b)
	carol := newUser(t, "carol@b.example")
	_, err := b.client.CreateAccount(ctx, consented(t, "carol", entryOf(t, carol.profileAccount, carol.acctOffline), carol.acctOffline))
	mustStatus(t, err, portal.SuccessOK)

	size := b.log.Size()
	want := fmt.Sprintf("registered version (record %d of %s", r.v2Seq, originA)
	_, err = b.client.CreateAccount(ctx, &portal.CreateRequest{Account: "mallory", Profile: r.v1})
	if pe := mustStatus(t, err, portal.AlreadyExists); !strings.Contains(pe.Description, want) {
		t.Errorf("CreateAccount with v1 at B: %q does not say %q", pe.Description, want)
	}
	err = publishFor(t, b.client, "carol", r.v1, carol.acctOnline)
	if pe := mustStatus(t, err, portal.AlreadyExists); !strings.Contains(pe.Description, want) {
		t.Errorf("Publish of v1 at B: %q does not say %q", pe.Description, want)
	}
	if b.log.Size() != size {
		t.Fatal("a replay was written at B")
	}
	got, err := b.client.Get(ctx, &portal.GetRequest{Identifier: r.u.meshOffline.UDF().String()})
	mustStatus(t, err, portal.SuccessOK)
	if !jsonEqual(got.DataItems[0].Entry, r.v2) || got.DataItems[0].Origin != originA {
		t.Fatal("B does not serve A's v2")
	}
	// A version newer than v2, signed by the offline key, is the owner's.
	_, err = b.client.CreateAccount(ctx, consented(t, "alice", entryOf(t, r.u.profileMesh, r.u.meshOffline), r.u.meshOffline))
	mustStatus(t, err, portal.SuccessOK)
}

// Publish checks the replicated versions that the replica indexers remember
// without reading them, and what they remember follows the replica: once
// B's replica of A is cut back before v2 (as a repair does) and rebuilt, v2
// no longer refuses v1 at B; once the replica is filled again, it does, and
// B serves v2.
func TestAReplicaCutBackNoLongerRefusesWhatItHeld(t *testing.T) {
	ctx := context.Background()
	a := newPortalAt(t, originA, portal.Config{})
	b := newPortalAt(t, originB, portal.Config{})
	r := rotate(t, a, "alice")
	rep := replicate(t, a, b)
	carol := newUser(t, "carol@b.example")
	_, err := b.client.CreateAccount(ctx, consented(t, "carol", entryOf(t, carol.profileAccount, carol.acctOffline), carol.acctOffline))
	mustStatus(t, err, portal.SuccessOK)
	err = publishFor(t, b.client, "carol", r.v1, carol.acctOnline)
	mustStatus(t, err, portal.AlreadyExists)

	tree := merkle.NewTree(nil, merkle.ReplicaPrefix(originA))
	if err := rep.Truncate(ctx, r.v2Seq, func(txn *badger.Txn) error { return tree.TruncateTxn(txn, r.v2Seq) }); err != nil {
		t.Fatal(err)
	}
	if err := b.state.RebuildReplica(ctx, b.log.DB(), originA, rep); err != nil {
		t.Fatal(err)
	}
	err = publishFor(t, b.client, "carol", r.v1, carol.acctOnline)
	mustStatus(t, err, portal.SuccessOK)

	replicate(t, a, b)
	want := fmt.Sprintf("record %d of %s", r.v2Seq, originA)
	err = publishFor(t, b.client, "carol", r.v1, carol.acctOnline)
	if pe := mustStatus(t, err, portal.AlreadyExists); !strings.Contains(pe.Description, want) {
		t.Errorf("Publish of v1 at B: %q does not say %q", pe.Description, want)
	}
	got, err := b.client.Get(ctx, &portal.GetRequest{Identifier: r.u.meshOffline.UDF().String(), Full: true})
	mustStatus(t, err, portal.SuccessOK)
	if item := got.DataItems[0]; item.Origin != originA || *item.Index != r.v2Seq {
		t.Fatalf("B serves record %d of %q, want record %d of A (v2)", *item.Index, item.Origin, r.v2Seq)
	}
}

// The replicated latest version never goes back: an older version that an
// origin logged again after a newer one stays in the history only. And a
// member cannot supersede a version with one it made up.
func TestAReplicaNeverRegresses(t *testing.T) {
	ctx := context.Background()
	b := newPortalAt(t, originB, portal.Config{})
	replica, err := b.log.Replica(originA)
	if err != nil {
		t.Fatal(err)
	}
	u := newUser(t, "dave@a.example")
	id := u.meshOffline.UDF().String()
	version := func(signer *mesh.PrivateKey) []byte {
		entry := entryOf(t, u.profileMesh, signer)
		pe := &portal.PortalEntry{Transaction: portal.TxPublish, Type: mesh.TypeProfileMesh, Signer: signer.UDF().String(),
			OfflineKey: id, Updated: u.profileMesh.Updated, Entry: entry}
		payload, err := portal.MarshalPortalEntry(pe)
		if err != nil {
			t.Fatal(err)
		}
		return payload
	}
	v1 := version(u.meshOffline)
	v2 := version(u.meshOnline)
	base := time.Now().UTC()
	recs := []log.Record{
		{Kind: portal.KindProfile, Identifier: id, Payload: v1},
		{Kind: portal.KindProfile, Identifier: id, Payload: v2},
		{Kind: portal.KindProfile, Identifier: id, Payload: v1}, // v1 again, after v2
	}
	for i := range recs {
		recs[i].Seq, recs[i].Time, recs[i].Origin = uint64(i), base.Add(time.Duration(i)), originA
	}
	if _, err := replica.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	got, err := b.client.Get(ctx, &portal.GetRequest{Identifier: id, Full: true})
	mustStatus(t, err, portal.SuccessOK)
	if *got.DataItems[0].Index != 1 {
		t.Fatalf("B serves record %d of A as the latest version, want 1 (v2)", *got.DataItems[0].Index)
	}
	all, err := b.client.Get(ctx, &portal.GetRequest{Identifier: id, Multiple: true})
	mustStatus(t, err, portal.SuccessOK)
	if len(all.DataItems) != 3 {
		t.Fatalf("history of %s: %d versions, want 3", id, len(all.DataItems))
	}

	// A member's made-up version, far in the future and signed by a key of
	// its own, supersedes nothing: B registers a genuine version and
	// serves it.
	mallory := newKey(t, mesh.CurveEd448)
	forged := *u.profileMesh
	future := time.Now().Add(24 * time.Hour).UTC()
	forged.Updated = &future
	forged.KeysOnlineSignature = []mesh.KeyData{*mesh.NewKeyData(mallory.Public())}
	env, err := mesh.SignObject(&forged, mallory)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := mesh.MarshalEntry(mesh.TypeProfileMesh, env)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := portal.MarshalPortalEntry(&portal.PortalEntry{Transaction: portal.TxPublish, Type: mesh.TypeProfileMesh,
		Signer: mallory.UDF().String(), OfflineKey: id, Updated: &future, Entry: raw})
	if err != nil {
		t.Fatal(err)
	}
	rec := log.Record{Seq: 3, Time: base.Add(time.Second), Origin: originA, Kind: portal.KindProfile, Identifier: id, Payload: payload}
	if _, err := replica.Append(ctx, []log.Record{rec}); err != nil {
		t.Fatal(err)
	}
	genuine := entryOf(t, u.profileMesh, u.meshOffline)
	_, err = b.client.CreateAccount(ctx, consented(t, "dave", genuine, u.meshOffline))
	mustStatus(t, err, portal.SuccessOK)
	got, err = b.client.Get(ctx, &portal.GetRequest{Identifier: id})
	mustStatus(t, err, portal.SuccessOK)
	if !jsonEqual(got.DataItems[0].Entry, genuine) || got.DataItems[0].Replicated {
		t.Fatal("B serves the made-up replicated version over its genuine registered one")
	}
}

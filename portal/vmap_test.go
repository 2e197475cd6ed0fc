package portal_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
	"github.com/intermesh/intermesh/vmap"
)

// TestTheMapOfAPortalLogHoldsEachNamesLatestRecord: the verifiable map of
// a real portal's log, after creates, profile updates, an escrow entry, an
// account deletion and refused replays, holds for each name exactly the
// records this test expects from the rule "which records set which keys",
// applied here with the portal's own kind constants: the map's copy of the
// kind names must be the portal's, or nothing would be found.
func TestTheMapOfAPortalLogHoldsEachNamesLatestRecord(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{})
	fill(t, p, 0, 3)
	bob := newUser(t, "bob@example.com")
	create := consented(t, "bob", entryOf(t, bob.profileAccount, bob.acctOffline), bob.acctOffline)
	_, err := p.client.CreateAccount(ctx, create)
	mustStatus(t, err, portal.SuccessOK)
	escrow, _, err := mesh.Escrow(rand.Reader, []byte("secret key bytes"), 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	mustStatus(t, publishFor(t, p.client, "bob", escrowEntry(t, escrow), bob.acctOnline), portal.SuccessOK)
	del := &portal.DeleteRequest{Account: "bob", Proof: entryOf(t, &portal.DeleteProof{Account: "bob", Signed: time.Now()}, bob.acctOffline)}
	_, err = p.client.DeleteAccount(ctx, del)
	mustStatus(t, err, portal.SuccessOK)
	size := p.log.Size()
	_, err = p.client.DeleteAccount(ctx, del) // replayed: refused, nothing logged
	if err == nil {
		t.Fatal("a replayed delete succeeded")
	}
	if p.log.Size() != size {
		t.Fatal("a refused replay was logged")
	}

	lm, want := vmap.NewLogMap(), map[vmap.Name][]uint64{}
	for i := range p.log.Size() {
		rec, err := p.log.Get(i)
		if err != nil {
			t.Fatal(err)
		}
		if err := lm.Append(rec.MarshalLeaf()); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		for _, n := range expectedNames(rec) {
			want[n] = append(want[n], i)
		}
	}
	checkMapHolds(t, p, lm, want)
}

// expectedNames is the rule of which records set which keys, written from
// the portal's kinds.
func expectedNames(rec log.Record) []vmap.Name {
	var names []vmap.Name
	if (rec.Kind == portal.KindProfile || rec.Kind == portal.KindAccount) && rec.Identifier != "" {
		names = append(names, vmap.Name{Namespace: vmap.Profile, Name: rec.Identifier})
	}
	if rec.Kind == portal.KindAccount && rec.Account != "" {
		names = append(names, vmap.Name{Namespace: vmap.Account, Name: rec.Account})
	}
	if rec.Kind == portal.KindEscrow && rec.Identifier != "" {
		names = append(names, vmap.Name{Namespace: vmap.Escrow, Name: rec.Identifier})
	}
	return names
}

// checkMapHolds checks that lm holds exactly the names of want, each with
// its latest record, count and history chain.
func checkMapHolds(t *testing.T, p *testPortal, lm *vmap.LogMap, want map[vmap.Name][]uint64) {
	t.Helper()
	kinds := map[vmap.Namespace]int{}
	for n, idx := range want {
		kinds[n.Namespace]++
		key, err := n.Key()
		if err != nil {
			t.Fatal(err)
		}
		v, ok := lm.Tree().Get(key)
		if !ok {
			t.Errorf("%s %q is not in the map", n.Namespace, n.Name)
			continue
		}
		var chain vmap.Value
		for _, i := range idx {
			rec, _ := p.log.Get(i)
			leaf := rec.MarshalLeaf()
			chain = chain.Append(i, sha256.Sum256(append([]byte{0}, leaf...)))
		}
		if v != chain {
			t.Errorf("%s %q: the map holds %+v, want the chain of records %v: %+v", n.Namespace, n.Name, v, idx, chain)
		}
	}
	if lm.Tree().Len() != len(want) {
		t.Errorf("the map holds %d keys, the records name %d", lm.Tree().Len(), len(want))
	}
	for _, ns := range []vmap.Namespace{vmap.Profile, vmap.Account, vmap.Escrow} {
		if kinds[ns] == 0 {
			t.Errorf("no %s name in the log: the test does not exercise that namespace (%s)", ns, fmt.Sprint(kinds))
		}
	}
	if lm.Size() != p.log.Size() {
		t.Errorf("the map covers %d records of %d", lm.Size(), p.log.Size())
	}
}

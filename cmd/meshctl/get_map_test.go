package main

import (
	"bytes"
	"errors"
	"testing"

	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/testnet"
	"github.com/intermesh/intermesh/vmap"
)

// mapLookup verifies the lookup proof of name in resp's map proofs under
// the map line of resp's checkpoint, and returns the value and whether the
// name is present.
func mapLookup(t *testing.T, resp *portal.GetResponse, ns vmap.Namespace, name string) (vmap.Value, bool) {
	t.Helper()
	if resp.Proof == nil {
		t.Fatal("no proof in the answer")
	}
	n := []byte(resp.Proof.Checkpoint)
	cp, err := merkle.ParseCheckpoint(n[:bytes.LastIndex(n, []byte("\n\n"))+1])
	if err != nil {
		t.Fatal(err)
	}
	if len(cp.Map) != len(vmap.Hash{}) {
		t.Fatalf("the checkpoint has no map line:\n%s", n)
	}
	for _, mp := range resp.Proof.Map {
		if mp.Namespace != string(ns) || mp.Name != name {
			continue
		}
		p, err := vmap.ParseProof(mp.Proof)
		if err != nil {
			t.Fatal(err)
		}
		key, err := vmap.KeyOf(ns, name)
		if err != nil {
			t.Fatal(err)
		}
		v, ok, err := vmap.Verify(vmap.Hash(cp.Map), key, p)
		if err != nil {
			t.Fatalf("the proof of %s %s does not verify under the checkpoint's map line: %v", ns, name, err)
		}
		return v, ok
	}
	t.Fatalf("no map proof of %s %s in the answer: %+v", ns, name, resp.Proof.Map)
	return vmap.Value{}, false
}

// TestGetAnswersCarryMapProofs: a Full Get proves, under the map line of
// the checkpoint its inclusion proofs end in, what the log holds of the
// names it is about: at the home member and at a member that replicated
// the profile, the profile's latest record is the one served and the
// identifier is no escrow; by account, the account and its profile; and
// an account that does not exist is answered NotFound with the proof that
// the log never set it.
func TestGetAnswersCarryMapProofs(t *testing.T) {
	net := startAuditNet(t)
	keys, err := newGetVerifier(net.fedPath)
	if err != nil {
		t.Fatal(err)
	}
	entry, id, key, err := testnet.NewProfile()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(net.PortalURL(0))
	if err != nil {
		t.Fatal(err)
	}
	account := net.Account(0, id)
	canonical := portal.CanonicalAccount(account) // the map keys the name the log holds
	if _, err := testnet.CreateAccountWith(t.Context(), c, account, entry, key); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1} {
		resp := provenGet(t, net, keys, i, id)
		v, ok := mapLookup(t, resp, vmap.Profile, id)
		if !ok || v.Count != 1 || v.LatestIndex != *resp.DataItems[0].Index {
			t.Errorf("node %d: the map proves %+v (present %v) for the profile, want its one version at %d", i, v, ok, *resp.DataItems[0].Index)
		}
		if _, ok := mapLookup(t, resp, vmap.Escrow, id); ok {
			t.Errorf("node %d: the profile's identifier is proved an escrow identifier", i)
		}
		checkUnderRound(t, net.PortalURL(i), id, resp)
	}
	byAccount, err := c.Get(t.Context(), &portal.GetRequest{Account: account, Full: true})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := mapLookup(t, byAccount, vmap.Account, canonical); !ok || v.Count != 1 {
		t.Errorf("the account is proved %+v (present %v), want one record", v, ok)
	}
	if _, ok := mapLookup(t, byAccount, vmap.Profile, id); !ok {
		t.Error("the account's profile is not proved present")
	}
	missing := net.Account(0, "nobody-here")
	resp, err := c.Get(t.Context(), &portal.GetRequest{Account: missing, Full: true})
	var pe *portal.Error
	if !errors.As(err, &pe) || pe.Status != portal.NotFound || resp == nil {
		t.Fatalf("a Get of an account that does not exist: %v, %+v; want NotFound with proofs", err, resp)
	}
	if _, ok := mapLookup(t, resp, vmap.Account, portal.CanonicalAccount(missing)); ok {
		t.Error("an account that does not exist is proved present")
	}
	// An identifier nobody published: NotFound, proved absent.
	nobody := newVersionedProfile(t).key.Public().UDF().String()
	resp, err = c.Get(t.Context(), &portal.GetRequest{Identifier: nobody, Full: true})
	if !errors.As(err, &pe) || pe.Status != portal.NotFound || resp == nil {
		t.Fatalf("a Get of an identifier nobody published: %v, %+v; want NotFound with proofs", err, resp)
	}
	for _, ns := range []vmap.Namespace{vmap.Profile, vmap.Escrow} {
		if _, ok := mapLookup(t, resp, ns, nobody); ok {
			t.Errorf("an identifier nobody published is proved present as %s", ns)
		}
	}
	// ValidateAccount proves a free name free, and a taken one taken.
	for name, taken := range map[string]bool{missing: false, account: true} {
		v, err := c.ValidateAccount(t.Context(), &portal.ValidateRequest{Account: name, Full: true})
		if err != nil || v.Valid == taken || v.Proof == nil {
			t.Fatalf("ValidateAccount %s: %+v, %v", name, v, err)
		}
		_, ok := mapLookup(t, &portal.GetResponse{Proof: v.Proof}, vmap.Account, portal.CanonicalAccount(name))
		if ok != taken {
			t.Errorf("ValidateAccount %s: the name is proved present %v, want %v", name, ok, taken)
		}
	}
}

// checkUnderRound asks the portal again for id under the round of the
// checkpoint of latest's proof, and under a round long gone: the first
// answer's proofs are under exactly that checkpoint, the second is a
// NotFound.
func checkUnderRound(t *testing.T, url, id string, latest *portal.GetResponse) {
	t.Helper()
	c, err := client.New(url)
	if err != nil {
		t.Fatal(err)
	}
	n := []byte(latest.Proof.Checkpoint)
	cp, err := merkle.ParseCheckpoint(n[:bytes.LastIndex(n, []byte("\n\n"))+1])
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(t.Context(), &portal.GetRequest{Identifier: id, Full: true, Round: cp.Round})
	if err != nil {
		t.Fatalf("Get under round %d: %v", cp.Round, err)
	}
	if resp.Proof.Checkpoint != latest.Proof.Checkpoint {
		t.Errorf("Get under round %d answered under another checkpoint:\n%s", cp.Round, resp.Proof.Checkpoint)
	}
	if _, ok := mapLookup(t, resp, vmap.Profile, id); !ok {
		t.Errorf("Get under round %d does not prove the profile", cp.Round)
	}
	_, err = c.Get(t.Context(), &portal.GetRequest{Identifier: id, Full: true, Round: 1})
	var pe *portal.Error
	if !errors.As(err, &pe) || pe.Status != portal.NotFound {
		t.Errorf("Get under round 1: %v, want NotFound", err)
	}
}

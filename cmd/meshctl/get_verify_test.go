package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/testnet"
)

// provenGet asks node i for identifier with Full until meshctl's verifier
// proves the answer (the entry must be under a checkpoint that extends a
// certified one), and returns that answer.
func provenGet(t *testing.T, net *auditNet, keys *getVerifier, i int, identifier string) *portal.GetResponse {
	t.Helper()
	c, err := client.New(net.PortalURL(i))
	if err != nil {
		t.Fatal(err)
	}
	var resp *portal.GetResponse
	var last getVerification
	err = testnet.WaitFor(t.Context(), 40*time.Second, "a Get answer that proves its entry", func() bool {
		resp, err = c.Get(t.Context(), &portal.GetRequest{Identifier: identifier, Full: true})
		if err != nil {
			return false
		}
		last = verifyGet(keys, resp)
		return last.Failed == ""
	})
	if err != nil {
		t.Fatalf("node %d: %v; last verification: %+v", i, err, last)
	}
	return resp
}

func TestGetVerifyProvesAnEntryAgainstTheFederationsCertificate(t *testing.T) {
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
	// CreateAccount registers the account's profile (Publish needs an account first).
	if _, err := testnet.CreateAccountWith(t.Context(), c, net.Account(0, id), entry, key); err != nil {
		t.Fatal(err)
	}

	// At the node that sequenced it, and at a node that replicated it.
	own := provenGet(t, net, keys, 0, id)
	replicated := provenGet(t, net, keys, 1, id)
	if !replicated.DataItems[0].Replicated || replicated.Proof.Certificate == nil {
		t.Fatalf("node 1's answer is not a proven replicated entry: %+v", replicated.DataItems[0])
	}

	// The command says what it proved, and exits 0.
	u := &user{t: t, home: t.TempDir(), portal: net.PortalURL(0)}
	out := u.ok("get", "--id", id, "--verify", "--federation", net.fedPath)
	for _, want := range []string{"is signed by testnet/node0's key", "is in testnet/node0's log", "master-hash certificate of round",
		"members signed (quorum 3)", "the one the certificate covers, byte for byte", "the latest version of " + id, "Verified:"} {
		if !strings.Contains(out, want) {
			t.Errorf("get --verify does not say %q:\n%s", want, out)
		}
	}
	u.fails(2, []string{"--verify needs --federation"}, "get", "--id", id, "--verify")

	// Any change to what the node sent is caught.
	flip := func(b []byte) { b[len(b)/2] ^= 1 }
	for name, tamper := range map[string]func(r *portal.GetResponse){
		"an inclusion proof hash": func(r *portal.GetResponse) { flip(r.DataItems[0].Inclusion[0]) },
		"a shortened inclusion proof": func(r *portal.GetResponse) {
			r.DataItems[0].Inclusion = r.DataItems[0].Inclusion[1:]
		},
		"the leaf":              func(r *portal.GetResponse) { flip(r.DataItems[0].Leaf) },
		"the entry":             func(r *portal.GetResponse) { r.DataItems[0].Entry = json.RawMessage(`{"ProfileMesh":[]}`) },
		"the index":             func(r *portal.GetResponse) { *r.DataItems[0].Index++ },
		"the checkpoint":        func(r *portal.GetResponse) { r.Proof.Checkpoint += "x" },
		"the certificate leaf":  func(r *portal.GetResponse) { flip(r.Proof.Certificate.RecordLeaf) },
		"the record inclusion":  func(r *portal.GetResponse) { flip(r.Proof.Certificate.RecordInclusion[0]) },
		"the node's checkpoint": func(r *portal.GetResponse) { r.Proof.Certificate.Checkpoint = own.Proof.Checkpoint + "x" },
		"no certificate":        func(r *portal.GetResponse) { r.Proof.Certificate = nil },
		"no proof":              func(r *portal.GetResponse) { r.Proof = nil },
		"the record index":      func(r *portal.GetResponse) { r.Proof.Certificate.RecordIndex++ },
	} {
		var r portal.GetResponse
		b, _ := json.Marshal(own)
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		tamper(&r)
		if v := verifyGet(keys, &r); v.Failed == "" {
			t.Errorf("a Get answer with a changed %s was proved: %v", name, v.Proved)
		}
	}
	// A consistency proof, where there is one, is checked too.
	for _, r := range []*portal.GetResponse{own, replicated} {
		if len(r.Proof.Certificate.Consistency) == 0 {
			continue
		}
		var changed portal.GetResponse
		b, _ := json.Marshal(r)
		if err := json.Unmarshal(b, &changed); err != nil {
			t.Fatal(err)
		}
		flip(changed.Proof.Certificate.Consistency[0])
		if v := verifyGet(keys, &changed); v.Failed == "" {
			t.Errorf("a Get answer with a changed consistency proof was proved")
		}
	}
}

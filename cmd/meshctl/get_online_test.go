package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/portal/mesh"
	"github.com/intermesh/intermesh/testnet"
)

// TestGetVerifyChecksTheSignerOfAnOnlineSignedVersion: a version signed
// by the administration key that the version before lists is proved the
// latest, with its predecessor; an answer that leaves the predecessor
// out, or whose history value before it is wrong, is refused; a version
// signed by an administration key it rotates out is proved; and a
// version that adds a key of its own and is signed by it, which the
// portal refuses to publish but a lying origin logs anyway (its portal
// entry claiming the administration key signed it), is refused by the
// client although the federation certifies it as the latest.
func TestGetVerifyChecksTheSignerOfAnOnlineSignedVersion(t *testing.T) {
	net := startAuditNet(t)
	keys, err := newGetVerifier(net.fedPath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(net.PortalURL(0))
	if err != nil {
		t.Fatal(err)
	}
	alice := newVersionedProfile(t)
	id := alice.key.Public().UDF().String()
	account := net.Account(0, "alice")
	t0 := time.Now().UTC().Truncate(time.Second)
	if _, err := testnet.CreateAccountWith(t.Context(), c, account, alice.version(t, t0), alice.key); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(t.Context(), &portal.PublishRequest{Entry: alice.versionSignedBy(t, t0.Add(time.Second), alice.admin), AccountID: account}); err != nil {
		t.Fatalf("publishing a version signed by the administration key: %v", err)
	}
	q := latestQuery{account: portal.CanonicalAccount(account)}
	second, cert := provedLatest(t, net, keys, 0, q, "is an online key of the version before it")
	if n := len(second.Proof.Predecessors); n != 1 {
		t.Fatalf("the answer carries %d predecessors, want 1 (the offline-signed first version)", n)
	}
	refused := func(name string, resp *portal.GetResponse, words string) {
		t.Helper()
		if v := verifyLatest(keys, cert, q, resp, time.Now()); v.Failed == "" {
			t.Errorf("%s was proved: %v", name, v.Proved)
		} else if !strings.Contains(v.Failed, words) {
			t.Errorf("%s: refused saying %q, want it to say %q", name, v.Failed, words)
		}
	}
	noPred := copyAnswer(t, second)
	noPred.Proof.Predecessors, noPred.Proof.HistoryBefore = nil, nil
	refused("the admin-signed version without its predecessor", noPred, "sent no earlier version that lists that key")
	badHistory := copyAnswer(t, second)
	badHistory.Proof.HistoryBefore[0] ^= 1
	refused("the predecessor with a wrong history value before it", badHistory, "history links do not end in the certified map value")
	tooMany := copyAnswer(t, second)
	for len(tooMany.Proof.Predecessors) <= portal.MaxPredecessors {
		tooMany.Proof.Predecessors = append(tooMany.Proof.Predecessors, tooMany.Proof.Predecessors[0])
	}
	refused("more predecessors than the bound", tooMany, "more than 16")
	badLeaf := copyAnswer(t, second)
	badLeaf.Proof.Predecessors[0].Leaf[len(badLeaf.Proof.Predecessors[0].Leaf)-1] ^= 1
	refused("a predecessor whose leaf is not in the checkpoint", badLeaf, "a predecessor of "+id+"'s latest version")

	u := &user{t: t, home: t.TempDir(), portal: net.PortalURL(0)}
	if out := u.ok("get", "--account", account, "--verify", "--federation", net.fedPath); !strings.Contains(out, "is an online key of the version before it") {
		t.Errorf("get --verify does not prove the admin-signed version by its predecessor:\n%s", out)
	}
	if out := u.ok("get", "--account", account, "--all", "--verify", "--federation", net.fedPath); !strings.Contains(out, "the 2 versions served are every record") {
		t.Errorf("get --all --verify does not prove the history of an admin-signed latest:\n%s", out)
	}
	proveBundleWithPredecessor(t, u, keys, net, account)

	// The administration key rotates itself out: its version verifies only
	// with the keys of the version before, and is proved with both
	// predecessors back to the offline-signed one.
	rotated, err := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
	if err != nil {
		t.Fatal(err)
	}
	alice.p.KeysOnlineSignature = []mesh.KeyData{*mesh.NewKeyData(rotated.Public())}
	if _, err := c.Publish(t.Context(), &portal.PublishRequest{Entry: alice.versionSignedBy(t, t0.Add(2*time.Second), alice.admin), AccountID: account}); err != nil {
		t.Fatalf("publishing a version signed by the administration key it rotates out: %v", err)
	}
	third, _ := provedLatest(t, net, keys, 0, q, "version 3 of 3")
	if n := len(third.Proof.Predecessors); n != 2 {
		t.Errorf("the rotation's answer carries %d predecessors, want 2", n)
	}
	// Another member proves it from its replica of node 0's log.
	replicated, _ := provedLatest(t, net, keys, 1, latestQuery{id: id}, "version 3 of 3")
	if n := len(replicated.Proof.Predecessors); n != 2 || !replicated.Proof.Predecessors[0].Replicated {
		t.Errorf("node 1's answer carries %d predecessors, want 2 from its replica", n)
	}

	// The intruder's version: it lists a key of its own and is signed by it.
	intruder, err := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
	if err != nil {
		t.Fatal(err)
	}
	alice.p.KeysOnlineSignature = append(alice.p.KeysOnlineSignature, *mesh.NewKeyData(intruder.Public()))
	t3 := t0.Add(3 * time.Second)
	forged := alice.versionSignedBy(t, t3, intruder)
	if _, err := c.Publish(t.Context(), &portal.PublishRequest{Entry: forged, AccountID: account}); err == nil {
		t.Fatal("the portal published a version signed by a key only that version lists")
	}
	seq := logAsOrigin(t, net, account, id, forged, rotated.Public().UDF().String(), intruder.Public().UDF().String(), t3)
	var last getVerification
	err = testnet.WaitFor(t.Context(), 40*time.Second, "the forged version certified as the latest, and refused", func() bool {
		resp, cert, ok := certifiedAnswer(t, net, keys, q)
		if !ok || len(resp.DataItems) != 1 || *resp.DataItems[0].Index != seq || seq >= cert.checkpoint.Size {
			return false
		}
		last = verifyLatest(keys, cert, q, resp, time.Now())
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if last.Failed == "" || !strings.Contains(last.Failed, "does not follow the version before it") {
		t.Errorf("the forged version: %+v, want it refused as not following the version before it", last)
	}
	r := u.fails(1, nil, "get", "--account", account, "--verify", "--federation", net.fedPath)
	if !strings.Contains(r.stdout, "NOT PROVED: record") || !strings.Contains(r.stdout, "does not follow the version before it") {
		t.Errorf("get --verify of the forged version does not say why it is not proved:\n%s", r.stdout)
	}
	r = u.fails(1, nil, "get", "--account", account, "--all", "--verify", "--federation", net.fedPath)
	if !strings.Contains(r.stdout, "does not follow the version before it") {
		t.Errorf("get --all --verify of a history ending in the forged version does not say why it is not proved:\n%s", r.stdout)
	}
}

// copyAnswer returns a deep copy of resp.
func copyAnswer(t *testing.T, resp *portal.GetResponse) *portal.GetResponse {
	t.Helper()
	var r portal.GetResponse
	b, _ := json.Marshal(resp)
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// logAsOrigin appends, as a lying origin would, node 0's Publish record of
// entry for account's profile id, whose portal entry claims that the
// online key claimed signed it, and returns the record's index.
func logAsOrigin(t *testing.T, net *auditNet, account, id string, entry []byte, claimed, added string, updated time.Time) uint64 {
	t.Helper()
	pe := &portal.PortalEntry{Transaction: portal.TxPublish, Type: mesh.TypeProfileMesh, Signer: claimed,
		OfflineKey: id, OnlineKeys: []string{claimed, added}, Updated: &updated, Entry: entry}
	payload, err := portal.MarshalPortalEntry(pe)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := net.Node(0).Log().Append(t.Context(), log.Record{Kind: portal.KindProfile, Identifier: id,
		Account: portal.CanonicalAccount(account), Payload: payload})
	if err != nil {
		t.Fatalf("logging the forged version: %v", err)
	}
	return rec.Seq
}

// certifiedAnswer asks node 0 about q, under the round of the certificate
// its answer carries.
func certifiedAnswer(t *testing.T, net *auditNet, keys *getVerifier, q latestQuery) (*portal.GetResponse, certified, bool) {
	t.Helper()
	pc, err := client.New(net.PortalURL(0))
	if err != nil {
		t.Fatal(err)
	}
	c := &portalClient{Client: pc, url: net.PortalURL(0)}
	req := &portal.GetRequest{Identifier: q.id, Account: q.account, Full: true}
	resp, err := getProved(t.Context(), c, req, "get")
	if err != nil {
		return nil, certified{}, false
	}
	cert, err := certifiedOf(keys, resp)
	if err != nil {
		return nil, certified{}, false
	}
	if resp.Proof.Checkpoint != cert.checkpoint.Note {
		req.Round = cert.checkpoint.Round
		if resp, err = getProved(t.Context(), c, req, "get"); err != nil {
			return nil, certified{}, false
		}
	}
	return resp, cert, true
}

// proveBundleWithPredecessor: the proof bundle of an admin-signed latest
// version carries its predecessor, verify-proof proves it from the file,
// and the bundle without the predecessor is refused.
func proveBundleWithPredecessor(t *testing.T, u *user, keys *getVerifier, net *auditNet, account string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "alice.proof")
	u.ok("get", "--account", account, "--verify", "--federation", net.fedPath, "--proof-out", path)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "\npredecessor ") || !strings.Contains(string(data), "\nhistory ") {
		t.Fatalf("the bundle carries no predecessor:\n%s", data)
	}
	if out := u.ok("verify-proof", path, "--federation", net.fedPath); !strings.Contains(out, "is an online key of the version before it") {
		t.Errorf("verify-proof does not prove the admin-signed version by its predecessor:\n%s", out)
	}
	b, err := parseProofBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := b.MarshalText(); err != nil || !bytes.Equal(again, data) {
		t.Errorf("the bundle does not re-encode byte for byte (%v)", err)
	}
	b.predecessors, b.history = nil, nil
	if v := verifyBundle(keys, b, b.at); !strings.Contains(v.Proof.Failed, "sent no earlier version that lists that key") {
		t.Errorf("the bundle without its predecessor: %+v", v.Proof)
	}
}

package main

import (
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/portal/mesh"
	"github.com/intermesh/intermesh/testnet"
)

// versionedProfile is a profile whose versions the test signs.
type versionedProfile struct {
	p   *mesh.ProfileMesh
	key *mesh.PrivateKey
	// admin is the private key of the profile's first online key.
	admin *mesh.PrivateKey
}

func newVersionedProfile(t *testing.T) *versionedProfile {
	t.Helper()
	key, err := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := mesh.GenerateKey(rand.Reader, mesh.CurveX448)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
	if err != nil {
		t.Fatal(err)
	}
	return &versionedProfile{key: key, admin: admin, p: &mesh.ProfileMesh{
		Profile: mesh.Profile{KeyOfflineSignature: mesh.NewKeyData(key.Public()),
			KeysOnlineSignature: []mesh.KeyData{*mesh.NewKeyData(admin.Public())}},
		KeyEncryption: mesh.NewKeyData(enc.Public())}}
}

// version signs the version updated at when with the offline key.
func (vp *versionedProfile) version(t *testing.T, when time.Time) []byte {
	t.Helper()
	return vp.versionSignedBy(t, when, vp.key)
}

// versionSignedBy signs the version updated at when with key.
func (vp *versionedProfile) versionSignedBy(t *testing.T, when time.Time, key *mesh.PrivateKey) []byte {
	t.Helper()
	vp.p.Updated = &when
	env, err := mesh.SignObject(vp.p, key)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := mesh.MarshalEntry(vp.p.TypeName(), env)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// provedLatest asks node i about q until an answer proves it, and returns
// that answer and its certificate.
func provedLatest(t *testing.T, net *auditNet, keys *getVerifier, i int, q latestQuery, want string) (*portal.GetResponse, certified) {
	t.Helper()
	pc, err := client.New(net.PortalURL(i))
	if err != nil {
		t.Fatal(err)
	}
	c := &portalClient{Client: pc, url: net.PortalURL(i)}
	var resp *portal.GetResponse
	var cert certified
	var last getVerification
	err = testnet.WaitFor(t.Context(), 40*time.Second, "an answer that proves "+want, func() bool {
		req := &portal.GetRequest{Identifier: q.id, Account: q.account, Full: true}
		if resp, err = getProved(t.Context(), c, req, "get"); err != nil {
			return false
		}
		if cert, err = certifiedOf(keys, resp); err != nil {
			return false
		}
		if resp.Proof.Checkpoint != cert.checkpoint.Note {
			req.Round = cert.checkpoint.Round
			if resp, err = getProved(t.Context(), c, req, "get"); err != nil {
				return false
			}
		}
		last = verifyLatest(keys, cert, q, resp, time.Now())
		return last.Failed == "" && strings.Contains(strings.Join(last.Proved, "\n"), want)
	})
	if err != nil {
		t.Fatalf("node %d: %v; last: %+v", i, err, last)
	}
	return resp, cert
}

// TestGetVerifyProvesTheLatestAndRefusesWhatIsNot: 'get --verify' proves
// alice's latest version and an absent name, and refuses every answer a
// lying portal could make of real proofs: her first version replayed
// after her update (the whole earlier answer, or her old record with a
// valid inclusion proof under the new checkpoint), "nothing here" for her
// account, an answer under a checkpoint no certificate covers, and a true
// answer under a certificate too old by this machine's clock.
func TestGetVerifyProvesTheLatestAndRefusesWhatIsNot(t *testing.T) {
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
	q := latestQuery{account: portal.CanonicalAccount(account)}
	first, _ := provedLatest(t, net, keys, 0, q, "the latest version of "+id)
	if _, err := c.Publish(t.Context(), &portal.PublishRequest{Entry: alice.version(t, t0.Add(time.Second)), AccountID: account}); err != nil {
		t.Fatal(err)
	}
	second, cert := provedLatest(t, net, keys, 0, q, "version 2 of 2")

	refused := func(name string, resp *portal.GetResponse, c certified, now time.Time, words string) {
		t.Helper()
		var r portal.GetResponse
		b, _ := json.Marshal(resp)
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		v := verifyLatest(keys, c, q, &r, now)
		if v.Failed == "" {
			t.Errorf("%s was proved: %v", name, v.Proved)
		} else if !strings.Contains(v.Failed, words) {
			t.Errorf("%s: refused saying %q, want it to say %q", name, v.Failed, words)
		}
	}
	// The whole earlier answer, replayed once its certificate is old.
	firstCert, err := certifiedOf(keys, first)
	if err != nil {
		t.Fatal(err)
	}
	refused("the earlier answer replayed", first, firstCert, time.Now().Add(4*time.Second), "not proved to be the latest")
	// Her first version, with its inclusion under the certified checkpoint.
	old := *second
	old.DataItems = []portal.DataItem{withInclusion(t, c, account, cert, 0)}
	refused("her first version under the new checkpoint", &old, cert, time.Now(), "did not serve")
	// Nothing here.
	none := *second
	none.DataItems = nil
	refused("no entries for her account", &none, cert, time.Now(), "did not serve")
	// A certificate too old by this machine's clock.
	refused("a certificate too old", second, cert, time.Now().Add(10*time.Second), "more than 2 rounds")
	// Under a checkpoint the certificate does not cover.
	other := *second
	other.Proof = &portal.GetProof{Checkpoint: second.Proof.Certificate.Checkpoint, Map: second.Proof.Map, Account: second.Proof.Account}
	refused("an uncertified checkpoint", &other, cert, time.Now(), "not under")

	// An answer about her account from a member that is not its home.
	c1, err := client.New(net.PortalURL(1))
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, err := c1.Get(t.Context(), &portal.GetRequest{Account: account, Full: true})
	if elsewhere == nil || elsewhere.Proof == nil {
		t.Fatalf("node 1 gave no proved answer about %s: %v", account, err)
	}
	if c1cert, err := certifiedOf(keys, elsewhere); err == nil {
		refused("an answer from a member that is not the home", elsewhere, c1cert, time.Now(), "the account's home")
	}

	// An absent name is proved absent, and the command says so.
	u := &user{t: t, home: t.TempDir(), portal: net.PortalURL(0)}
	out := u.ok("get", "--account", account, "--verify", "--federation", net.fedPath)
	if !strings.Contains(out, "version 2 of 2") {
		t.Errorf("get --verify of alice's account does not prove her second version:\n%s", out)
	}
	out = u.ok("get", "--account", net.Account(0, "nobody"), "--verify", "--federation", net.fedPath)
	if !strings.Contains(out, "has no open account") {
		t.Errorf("get --verify of an account nobody has does not prove it absent:\n%s", out)
	}
	nobody := newVersionedProfile(t).key.Public().UDF().String()
	out = u.ok("get", "--id", nobody, "--verify", "--federation", net.fedPath)
	if !strings.Contains(out, nobody+" is absent from testnet/node0's log") {
		t.Errorf("get --verify of an identifier nobody published does not prove it absent:\n%s", out)
	}
	// --all proves the complete history; a history with a version left
	// out is refused.
	out = u.ok("get", "--account", account, "--all", "--verify", "--federation", net.fedPath)
	if !strings.Contains(out, "the 2 versions served are every record that set the name") {
		t.Errorf("get --all --verify does not prove alice's two versions the whole history:\n%s", out)
	}
	all, err := c.Get(t.Context(), &portal.GetRequest{Account: account, Full: true, Multiple: true, Round: cert.checkpoint.Round})
	if err != nil {
		t.Fatal(err)
	}
	all.DataItems = all.DataItems[1:]
	if v := verifyHistory(keys, cert, q, []*portal.GetResponse{all}, time.Now()); v.Failed == "" || !strings.Contains(v.Failed, "history chain differs") {
		t.Errorf("a history without alice's first version: %+v", v)
	}
}

// withInclusion returns the account's version at index idx among its
// versions (Get Multiple), proved under the certified checkpoint of cert.
func withInclusion(t *testing.T, c *client.Client, account string, cert certified, idx int) portal.DataItem {
	t.Helper()
	resp, err := c.Get(t.Context(), &portal.GetRequest{Account: account, Full: true, Multiple: true, Round: cert.checkpoint.Round})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.DataItems) <= idx || resp.Proof.Checkpoint != cert.checkpoint.Note || resp.DataItems[idx].Inclusion == nil {
		t.Fatalf("no version %d proved under the certified checkpoint: %+v", idx, resp)
	}
	return resp.DataItems[idx]
}

package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/testnet"
)

// everyOriginAnswers asks node i for id in every member's log until all
// answers prove it and the summary says want, and returns the answers,
// their certificate and the origins.
func everyOriginAnswers(t *testing.T, net *auditNet, keys *getVerifier, i int, id, want string) (map[string]*portal.GetResponse, certified, []string) {
	t.Helper()
	return provedEveryOrigin(t, net, keys, i, id, want, false, askEveryOrigin, verifyEveryOrigin)
}

// provedEveryOrigin asks node i, under a certificate it serves, for id in
// every member's log with ask (the latest, or with multiple the history)
// until verify proves every answer and its summary says want, and returns
// the answers, their certificate and the origins.
func provedEveryOrigin[T any](t *testing.T, net *auditNet, keys *getVerifier, i int, id, want string, multiple bool,
	ask func(context.Context, *portalClient, *getVerifier, *portal.GetRequest, *portal.CertificateProof, []string) (map[string]T, map[string]string, bool),
	verify func(*getVerifier, *portal.CertificateProof, []string, latestQuery, map[string]T, map[string]string, time.Time) []getVerification) (map[string]T, certified, []string) {
	t.Helper()
	pc, err := client.New(net.PortalURL(i))
	if err != nil {
		t.Fatal(err)
	}
	c := &portalClient{Client: pc, url: net.PortalURL(i)}
	origins := memberOrigins(keys)
	var answers map[string]T
	var cert *certified
	var last []getVerification
	err = testnet.WaitFor(t.Context(), 40*time.Second, "answers that prove "+want, func() bool {
		req := &portal.GetRequest{Identifier: id, Full: true, Multiple: multiple, Origin: origins[0]}
		if _, cert, err = askCertified(t.Context(), c, keys, req, "get"); err != nil || cert == nil {
			return false
		}
		answers, _, _ = ask(t.Context(), c, keys, &portal.GetRequest{Identifier: id, Full: true}, cert.proof, origins)
		last = verify(keys, cert.proof, origins, latestQuery{id: id}, answers, nil, time.Now())
		for _, v := range last {
			if v.Failed != "" {
				return false
			}
		}
		return strings.Contains(strings.Join(last[len(last)-1].Proved, "\n"), want)
	})
	if err != nil {
		t.Fatalf("node %d: %v; last: %+v", i, err, last)
	}
	return answers, *cert, origins
}

// profileAtNode1 starts an audit net, creates bob's account at node 1
// with a fresh profile, and returns the net, a verifier of its federation
// file and the profile's identifier.
func profileAtNode1(t *testing.T) (*auditNet, *getVerifier, string) {
	t.Helper()
	net := startAuditNet(t)
	keys, err := newGetVerifier(net.fedPath)
	if err != nil {
		t.Fatal(err)
	}
	c1, err := client.New(net.PortalURL(1))
	if err != nil {
		t.Fatal(err)
	}
	bob := newVersionedProfile(t)
	if _, err := testnet.CreateAccountWith(t.Context(), c1, net.Account(1, "bob"), bob.version(t, time.Now().UTC().Truncate(time.Second)), bob.key); err != nil {
		t.Fatal(err)
	}
	return net, keys, bob.key.Public().UDF().String()
}

// TestGetVerifyByIdentifierProvesEveryMembersLog: a lookup by identifier
// alone is proved in every member's map under one certificate. A profile
// published at node 1 is found and proved by asking node 0 (from its
// replica of node 1's log); an identifier nobody published is proved
// absent from every member's log; answers that leave out the log that
// holds the profile, or prove its absence from another log in that log's
// place, are refused; and a Get naming an origin the node holds no
// replica of, or an origin with an account, is a 400 saying so.
func TestGetVerifyByIdentifierProvesEveryMembersLog(t *testing.T) {
	net, keys, id := profileAtNode1(t)
	answers, cert, origins := everyOriginAnswers(t, net, keys, 0, id, id+" has versions in the log of testnet/node1")
	q := latestQuery{id: id}

	refused := func(name string, answers map[string]*portal.GetResponse, words string) {
		t.Helper()
		checks := verifyEveryOrigin(keys, cert.proof, origins, q, answers, nil, time.Now())
		var failed []string
		for _, v := range checks {
			if v.Failed != "" {
				failed = append(failed, v.Failed)
			}
		}
		switch all := strings.Join(failed, "\n"); {
		case len(failed) == 0:
			t.Errorf("%s was proved: %+v", name, checks)
		case !strings.Contains(all, words):
			t.Errorf("%s: refused saying %q, want it to say %q", name, all, words)
		}
	}
	omitted := make(map[string]*portal.GetResponse)
	for o, a := range answers {
		if o != "testnet/node1" {
			omitted[o] = a
		}
	}
	refused("the answers without node 1's log", omitted, "in testnet/node1's log: no answer about "+id)
	swapped := make(map[string]*portal.GetResponse)
	for o, a := range answers {
		swapped[o] = a
	}
	swapped["testnet/node1"] = copyAnswer(t, answers["testnet/node0"])
	refused("node 0's absence proof in place of node 1's log", swapped, "is not under testnet/node1's checkpoint")

	u := &user{t: t, home: t.TempDir(), portal: net.PortalURL(0)}
	out := u.ok("get", "--id", id, "--verify", "--federation", net.fedPath)
	for _, want := range []string{"the latest version of " + id + " is record", "of testnet/node1's log", id + " has versions in the log of testnet/node1", id + " is absent from testnet/node0's log"} {
		if !strings.Contains(out, want) {
			t.Errorf("get --id --verify of bob's profile asking node 0 does not say %q:\n%s", want, out)
		}
	}
	nobody := newVersionedProfile(t).key.Public().UDF().String()
	out = u.ok("get", "--id", nobody, "--verify", "--federation", net.fedPath)
	if !strings.Contains(out, nobody+" is absent from every member's log (testnet/node0, testnet/node1, testnet/node2, testnet/node3)") {
		t.Errorf("get --verify of an identifier nobody published does not prove it absent from every member's log:\n%s", out)
	}

	c0, err := client.New(net.PortalURL(0))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c0.Get(t.Context(), &portal.GetRequest{Identifier: id, Full: true, Origin: "testnet/nowhere"})
	var pe *portal.Error
	if !errors.As(err, &pe) || pe.Status != portal.ClientBadRequest || !strings.Contains(pe.Error(), `"testnet/nowhere" is neither this node's origin`) {
		t.Errorf("a Get naming an origin node 0 holds no replica of: %v, want a ClientBadRequest saying so", err)
	}
	_, err = c0.Get(t.Context(), &portal.GetRequest{Account: net.Account(1, "bob"), Full: true, Origin: "testnet/node1"})
	if !errors.As(err, &pe) || pe.Status != portal.ClientBadRequest || !strings.Contains(pe.Error(), "GetRequest.Origin is for a lookup by Identifier") {
		t.Errorf("a Get by account naming an origin: %v, want a ClientBadRequest saying Origin is for identifiers", err)
	}
}

// everyOriginHistories asks node i for id's history in every member's log
// until every history proves it and the summary says want, and returns
// the histories, their certificate and the origins.
func everyOriginHistories(t *testing.T, net *auditNet, keys *getVerifier, i int, id, want string) (map[string][]*portal.GetResponse, certified, []string) {
	t.Helper()
	return provedEveryOrigin(t, net, keys, i, id, want, true, askEveryOriginHistory, verifyEveryOriginHistory)
}

// TestGetAllVerifyByIdentifierProvesEveryMembersHistory: 'get --id X
// --all --verify' proves X's complete history in every member's log under
// one certificate. A profile with two versions published at node 1, asked
// at node 0, is proved to have both in node 1's log and to be absent from
// every other member's log; histories that leave node 1's log out, or
// give another log's history in a log's place, are refused.
func TestGetAllVerifyByIdentifierProvesEveryMembersHistory(t *testing.T) {
	net := startAuditNet(t)
	keys, err := newGetVerifier(net.fedPath)
	if err != nil {
		t.Fatal(err)
	}
	c1, err := client.New(net.PortalURL(1))
	if err != nil {
		t.Fatal(err)
	}
	bob := newVersionedProfile(t)
	id := bob.key.Public().UDF().String()
	account := net.Account(1, "bob")
	t0 := time.Now().UTC().Truncate(time.Second)
	if _, err := testnet.CreateAccountWith(t.Context(), c1, account, bob.version(t, t0), bob.key); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Publish(t.Context(), &portal.PublishRequest{Entry: bob.version(t, t0.Add(time.Second)), AccountID: account}); err != nil {
		t.Fatal(err)
	}
	histories, cert, origins := everyOriginHistories(t, net, keys, 0, id, id+" has 2 versions in testnet/node1's log")
	q := latestQuery{id: id}

	refused := func(name string, histories map[string][]*portal.GetResponse, words string) {
		t.Helper()
		checks := verifyEveryOriginHistory(keys, cert.proof, origins, q, histories, nil, time.Now())
		var failed []string
		for _, v := range checks {
			if v.Failed != "" {
				failed = append(failed, v.Failed)
			}
		}
		switch all := strings.Join(failed, "\n"); {
		case len(failed) == 0:
			t.Errorf("%s was proved: %+v", name, checks)
		case !strings.Contains(all, words):
			t.Errorf("%s: refused saying %q, want it to say %q", name, all, words)
		}
	}
	copied := func(except string) map[string][]*portal.GetResponse {
		m := make(map[string][]*portal.GetResponse)
		for o, pages := range histories {
			if o == except {
				continue
			}
			for _, p := range pages {
				m[o] = append(m[o], copyAnswer(t, p))
			}
		}
		return m
	}
	refused("the histories without node 1's log", copied("testnet/node1"), "in testnet/node1's log: no answer about "+id)
	swapped := copied("")
	swapped["testnet/node1"] = copied("")["testnet/node0"]
	refused("node 0's empty history in place of node 1's", swapped, "not under testnet/node1's certified checkpoint")
	swapped = copied("")
	swapped["testnet/node2"] = copied("")["testnet/node1"]
	refused("node 1's history in place of node 2's", swapped, "not under testnet/node2's certified checkpoint")

	u := &user{t: t, home: t.TempDir(), portal: net.PortalURL(0)}
	out := u.ok("get", "--id", id, "--all", "--verify", "--federation", net.fedPath)
	for _, want := range []string{
		"the 2 versions served are every record that set the name",
		"testnet/node1's log holds 2 versions of " + id,
		id + " is absent from testnet/node0's log",
		id + " is absent from testnet/node3's log",
		id + " has 2 versions in testnet/node1's log (each log's complete history is proved above) and is absent from the other 3 members' logs, as of round",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("get --id --all --verify of bob's profile asking node 0 does not say %q:\n%s", want, out)
		}
	}
}

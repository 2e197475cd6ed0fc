package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
)

const testAdminToken = "0123456789abcdef-operator"

// post sends body to POST /federation of n with the given token.
func postFederation(t *testing.T, n *Node, token string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+n.HTTPAddr()+"/federation", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestFederationUpdatesOverHTTPAreAuthenticatedCheckedAndSurviveARestart(t *testing.T) {
	c := newSoloNode(t)
	c.HTTP.AdminToken = testAdminToken
	n, err := New(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runNode(t, n)
	defer func() { _ = stop() }()

	// Version 1 adds a member; the node (quorum 1 of 1) and the new key sign.
	genesis := n.FederationChain()[0]
	pub, newKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	vkey, _ := config.VerifierKey("test.example/joiner", pub)
	id, _ := config.PeerIDFromKey(pub)
	next := genesis.Federation
	next.Quorum = 0
	next.Members = append(append([]config.Member(nil), genesis.Members...), config.Member{Origin: "test.example/joiner", PeerID: id.String(), Key: vkey})
	v1, err := genesis.Next(&next, n.Epoch()+10)
	if err != nil {
		t.Fatal(err)
	}
	nodeSigner, err := merkle.NewSigner(c.Origin, n.key)
	if err != nil {
		t.Fatal(err)
	}
	joinerSigner, err := merkle.NewSigner("test.example/joiner", newKey)
	if err != nil {
		t.Fatal(err)
	}
	byNode, err := config.SignFederationUpdate(v1.Text(), nodeSigner)
	if err != nil {
		t.Fatal(err)
	}
	byJoiner, err := config.SignFederationUpdate(v1.Text(), joinerSigner)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		token  string
		body   []byte
		status int
	}{
		{"no token", "", byNode, http.StatusUnauthorized},
		{"a wrong token", "0123456789abcdef-intruder", byNode, http.StatusUnauthorized},
		{"an oversized body", testAdminToken, bytes.Repeat([]byte("x"), config.MaxFederationNote+1), http.StatusRequestEntityTooLarge},
		{"garbage", testAdminToken, []byte("hello\n\n— x y\n"), http.StatusBadRequest},
		{"bare text", testAdminToken, v1.Text(), http.StatusBadRequest},
		{"signed by no current member", testAdminToken, byJoiner, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, body := postFederation(t, n, tc.token, tc.body); status != tc.status {
				t.Fatalf("status %d (%s), want %d", status, body, tc.status)
			}
			var st FederationState
			getJSON(t, "http://"+n.HTTPAddr()+"/federation", &st)
			if st.Version != 0 || len(st.Pending) != 0 || updateRecords(t, n) != 0 {
				t.Fatalf("a refused update changed something: %+v, %d FederationUpdate records", st, updateRecords(t, n))
			}
		})
	}

	if status, body := postFederation(t, n, testAdminToken, byNode); status != http.StatusOK || !strings.Contains(body, `"Accepted":false`) {
		t.Fatalf("the node's signature alone: %d %s; want pending", status, body)
	}
	var st FederationState
	getJSON(t, "http://"+n.HTTPAddr()+"/federation", &st)
	if len(st.Pending) != 1 || len(st.Pending[0].Missing) != 1 {
		t.Fatalf("pending: %+v", st.Pending)
	}
	if status, body := postFederation(t, n, testAdminToken, byJoiner); status != http.StatusOK || !strings.Contains(body, `"Accepted":true`) {
		t.Fatalf("the joiner's signature merged with the pending one: %d %s; want accepted", status, body)
	}
	if status, body := postFederation(t, n, testAdminToken, byJoiner); status != http.StatusOK || !strings.Contains(body, `"Accepted":true`) {
		t.Fatalf("resubmitting part of the accepted update: %d %s; want it reported accepted", status, body)
	}
	other, err := genesis.Next(&genesis.Federation, n.Epoch()+20)
	if err != nil {
		t.Fatal(err)
	}
	otherSigned, err := config.SignFederationUpdate(other.Text(), nodeSigner)
	if err != nil {
		t.Fatal(err)
	}
	if status, body := postFederation(t, n, testAdminToken, otherSigned); status != http.StatusConflict {
		t.Fatalf("another text for version 1 after it was accepted: %d %s; want 409", status, body)
	}
	if k := updateRecords(t, n); k != 1 {
		t.Fatalf("%d FederationUpdate records after one accepted update", k)
	}
	if body := getText(t, "http://"+n.HTTPAddr()+"/metrics"); !strings.Contains(body, "intermesh_federation_version_accepted 1") || !strings.Contains(body, "intermesh_federation_version 0") {
		t.Errorf("metrics after accepting version 1 (in force later):\n%s", grepLines(body, "intermesh_federation"))
	}
	var fu FederationUpdates
	getJSON(t, "http://"+n.HTTPAddr()+"/federation/updates", &fu)
	if len(fu.Updates) != 1 {
		t.Fatalf("updates: %d", len(fu.Updates))
	}
	if _, err := config.VerifyFederationChain(&genesis.Federation, [][]byte{[]byte(fu.Updates[0])}); err != nil {
		t.Fatalf("the served chain does not verify: %v", err)
	}

	// After a restart the chain comes back from the log, verified; a node
	// without an admin token takes no updates over HTTP.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	c.HTTP.AdminToken = ""
	n2, err := New(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop2 := runNode(t, n2)
	defer func() { _ = stop2() }()
	chain := n2.FederationChain()
	if len(chain) != 2 || chain[1].Hash() != v1.Hash() {
		t.Fatalf("after a restart the chain has %d versions", len(chain))
	}
	if status, _ := postFederation(t, n2, testAdminToken, otherSigned); status != http.StatusForbidden {
		t.Fatalf("a node without an admin token: %d, want 403", status)
	}
}

// updateRecords counts the FederationUpdate records in n's log.
func updateRecords(t *testing.T, n *Node) int {
	t.Helper()
	count := 0
	c := log.Constraints{MaxEntries: log.MaxPageEntries}
	for {
		page, err := n.Log().Range(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range page.Records {
			if rec.Kind == KindFederationUpdate {
				count++
			}
		}
		if page.PageKey == "" {
			return count
		}
		c.PageKey = page.PageKey
	}
}

func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return b.String()
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

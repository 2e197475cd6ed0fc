package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/merkle"
)

// logKey is a federation member's log key, for the test to sign its
// checkpoints.
type logKey struct {
	origin string
	key    ed25519.PrivateKey
}

func newLogKey(t *testing.T, origin string) logKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return logKey{origin, key}
}

func (k logKey) member(t *testing.T) config.Member {
	t.Helper()
	pub := k.key.Public().(ed25519.PublicKey)
	vkey, err := config.VerifierKey(k.origin, pub)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := config.PeerIDFromKey(pub)
	return config.Member{Origin: k.origin, PeerID: id.String(), Key: vkey, Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}
}

// addCheckpoint asks n's witness to cosign a checkpoint of k's log of one
// record (always the same root), from old size old; it returns the status.
func (k logKey) addCheckpoint(t *testing.T, n *Node, old int) int {
	t.Helper()
	s, err := merkle.NewSigner(k.origin, k.key)
	if err != nil {
		t.Fatal(err)
	}
	root := make([]byte, 32)
	copy(root, k.origin)
	signed, err := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n1\n%s\n", k.origin, base64.StdEncoding.EncodeToString(root))}, s)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+n.HTTPAddr()+"/add-checkpoint", "text/plain", strings.NewReader(fmt.Sprintf("old %d\n\n%s", old, signed)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func TestTheWitnessFollowsTheFederationInForce(t *testing.T) {
	c := newTestNode(t, t.TempDir())
	c.HTTP.AdminToken = testAdminToken
	nodeKey, err := config.LoadKey(c.KeyPath())
	if err != nil {
		t.Fatal(err)
	}
	self := logKey{c.Origin, nodeKey}
	leaving, rotating, joining := newLogKey(t, "test.example/leaving"), newLogKey(t, "test.example/rotating"), newLogKey(t, "test.example/joining")
	rotated := logKey{rotating.origin, newLogKey(t, rotating.origin).key}
	fed := &config.Federation{Name: "test", Quorum: 2, EpochPeriod: config.Duration{Duration: time.Second},
		Members: []config.Member{self.member(t), leaving.member(t), rotating.member(t)}}
	if err := fed.Write(filepath.Join(c.Dir, "federation.toml")); err != nil {
		t.Fatal(err)
	}
	c.P2P.Federation = "federation.toml"
	c.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	n, err := New(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	runNode(t, n)

	type check struct {
		who  logKey
		old  int
		want int
	}
	run := func(when string, checks []check) {
		t.Helper()
		for _, ch := range checks {
			if got := ch.who.addCheckpoint(t, n, ch.old); got != ch.want {
				t.Errorf("%s: a checkpoint of %s (key %x…): %d, want %d", when, ch.who.origin, ch.who.key[:4], got, ch.want)
			}
		}
	}
	run("under the federation file", []check{
		{leaving, 0, http.StatusOK}, {rotating, 0, http.StatusOK},
		{joining, 0, http.StatusNotFound}, {rotated, 1, http.StatusForbidden},
	})

	// Version 1 removes one member, adds another and rotates a key: the
	// node and the leaving member (a quorum of 2) and the new keys sign it.
	genesis := n.FederationChain()[0]
	next := genesis.Federation
	next.Members = []config.Member{self.member(t), rotated.member(t), joining.member(t)}
	v1, err := genesis.Next(&next, n.Epoch()+3)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []logKey{self, leaving, rotated, joining} {
		s, err := merkle.NewSigner(k.origin, k.key)
		if err != nil {
			t.Fatal(err)
		}
		signed, err := config.SignFederationUpdate(v1.Text(), s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.SubmitFederationUpdate(t.Context(), signed); err != nil {
			t.Fatal(err)
		}
	}
	if len(n.FederationChain()) != 2 {
		t.Fatal("version 1 was not accepted")
	}
	waitFor(t, 10*time.Second, "version 1 in force", func() bool { return n.following.Load().Version == 1 })
	run("under version 1", []check{
		{leaving, 1, http.StatusNotFound}, {rotating, 1, http.StatusForbidden},
		{joining, 0, http.StatusOK}, {rotated, 1, http.StatusOK},
	})
}

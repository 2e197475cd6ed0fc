package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
)

// The end-to-end tests run meshctl in-process against a real portal: a log
// on Badger in t.TempDir(), the portal state and the Merkle tree as its
// indexers, served by httptest.

const (
	testOrigin        = "meshctl.test/log"
	testTransferToken = "transfer-secret"
)

// testPortal is a running portal.
type testPortal struct {
	url  string
	log  *log.Log
	tree *merkle.Tree
}

func newTestPortal(t *testing.T) *testPortal {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	prefix := []byte{'T'}
	state := portal.NewState()
	l, err := log.Open(context.Background(), log.Options{
		Dir: t.TempDir(), Logger: quiet, Origin: testOrigin,
		Indexers:      []log.Indexer{state},
		BatchIndexers: []log.BatchIndexer{merkle.NewTree(nil, prefix)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	tree := merkle.NewTree(l.DB(), prefix)
	srv, err := portal.New(portal.Config{Service: "portal.test", TransferToken: testTransferToken}, portal.Deps{
		Log: l, State: state, Checkpoints: tree, Schedule: portal.PeriodSchedule{Period: 10 * time.Second}, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &testPortal{url: hs.URL, log: l, tree: tree}
}

// checkpoint closes an epoch, so that Status has a checkpoint.
func (p *testPortal) checkpoint(t *testing.T) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := merkle.NewSigner(testOrigin, priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.tree.CloseEpoch(context.Background(), 1, time.Now(), signer, testOrigin); err != nil {
		t.Fatal(err)
	}
}

// user is one meshctl keystore (one device) talking to a portal.
type user struct {
	t      *testing.T
	home   string
	portal string
	token  string
}

func newUser(t *testing.T, p *testPortal) *user {
	t.Helper()
	return &user{t: t, home: t.TempDir(), portal: p.url}
}

// result is what one meshctl run printed and its exit code.
type result struct {
	stdout, stderr string
	code           int
}

// run runs meshctl with the user's --portal, --home and --token.
func (u *user) run(args ...string) result {
	u.t.Helper()
	return u.runStdin("", args...)
}

func (u *user) runStdin(stdin string, args ...string) result {
	u.t.Helper()
	full := append([]string{"--portal", u.portal, "--home", u.home, "--token", u.token}, args...)
	var out, errb bytes.Buffer
	code := run(u.t.Context(), full, strings.NewReader(stdin), &out, &errb)
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// ok runs meshctl and fails the test unless it exits 0.
func (u *user) ok(args ...string) string {
	u.t.Helper()
	r := u.run(args...)
	if r.code != 0 {
		u.t.Fatalf("meshctl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// okJSON runs meshctl --json and decodes its output into v.
func (u *user) okJSON(v any, args ...string) {
	u.t.Helper()
	out := u.ok(append([]string{"--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		u.t.Fatalf("meshctl --json %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// fails runs meshctl and fails the test unless it exits with code, and
// stderr says each of want.
func (u *user) fails(code int, want []string, args ...string) result {
	u.t.Helper()
	r := u.run(args...)
	if r.code != code {
		u.t.Fatalf("meshctl %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			u.t.Errorf("meshctl %s: stderr does not say %q:\n%s", strings.Join(args, " "), w, r.stderr)
		}
	}
	return r
}

// createProfile creates a profile and returns its identifier.
func (u *user) createProfile(name string) string {
	u.t.Helper()
	var p profileResult
	u.okJSON(&p, "profile", "create", "--name", name)
	if p.Identifier == "" {
		u.t.Fatalf("profile create printed no identifier")
	}
	return p.Identifier
}

package portal_test

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/intermesh/intermesh/internal/faultfs"
	"github.com/intermesh/intermesh/portal"
)

// A portal whose store failed to sync a write answers that write, and every
// write after it, ServerOverload saying why, and /healthz 503, until it is
// restarted: its disk reported lost pages (package faultfs fails the fsync
// of the value log, where the records' bytes are).
func TestAPortalWhoseStoreFailedASyncRefusesWritesAndIsUnhealthy(t *testing.T) {
	fs := faultfs.Mount(t)
	p := openPortalAt(t, testOrigin, filepath.Join(fs.Dir, "store"), portal.Config{})
	ctx := context.Background()
	create := func(account string) error {
		u := newUser(t, account)
		_, err := p.client.CreateAccount(ctx, consented(t, account, entryOf(t, u.profileAccount, u.acctOffline), u.acctOffline))
		return err
	}
	mustStatus(t, create("alice@example.com"), portal.SuccessOK)
	checkHealth(t, p, http.StatusOK, "ok")

	fs.FailSyncs(true)
	pe := mustStatus(t, create("bob@example.com"), portal.ServerOverload)
	if !strings.Contains(pe.Description, "durable") {
		t.Errorf("the refusal says %q, want why (a write not made durable)", pe.Description)
	}
	checkHealth(t, p, http.StatusServiceUnavailable, "not made durable")

	fs.FailSyncs(false)
	mustStatus(t, create("carol@example.com"), portal.ServerOverload)
	checkHealth(t, p, http.StatusServiceUnavailable, "not made durable")
}

// checkHealth checks that p's /healthz answers code with a body containing
// want.
func checkHealth(t *testing.T, p *testPortal, code int, want string) {
	t.Helper()
	resp, err := http.Get(p.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != code || !strings.Contains(string(body), want) {
		t.Errorf("/healthz: HTTP %d %q, want %d and %q", resp.StatusCode, body, code, want)
	}
}

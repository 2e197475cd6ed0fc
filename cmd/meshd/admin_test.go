package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/intermesh/intermesh/portal"
)

// meshctl runs the meshctl binary as a user whose keystore is home.
func meshctl(t *testing.T, bin, url, home string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--portal", url, "--home", home}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &exit):
		return out.String(), exit.ExitCode()
	default:
		t.Fatalf("meshctl %s: %v", strings.Join(args, " "), err)
		return "", 0
	}
}

// deleteWithoutProof sends DeleteAccount without a proof, with the given
// Authorization header (none if empty), and returns the answer's Status.
func deleteWithoutProof(t *testing.T, url, account, authorization string) portal.MeshResponse {
	t.Helper()
	body, err := portal.EncodeRequest(portal.TxDeleteAccount, &portal.DeleteRequest{Account: account})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url+portal.WellKnownPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer map[string]portal.MeshResponse
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatal(err)
	}
	r := answer["DeleteResponse"]
	if resp.StatusCode != portal.HTTPStatus(r.Status) {
		t.Fatalf("HTTP %d for Status %d", resp.StatusCode, r.Status)
	}
	return r
}

// The operator's token is a real setting: meshd run --admin-token (or
// http.admin_token, MESHD_HTTP_ADMIN_TOKEN) lets `meshctl account delete
// --token` delete an account whose keys the operator does not hold; without
// the token, or with a wrong one, the portal answers 401 and the account
// stays.
func TestOperatorDeletesAnAccountWithTheAdminToken(t *testing.T) {
	const token = "operator-token-0123456789abcdef"
	meshd := buildMeshd(t)
	ctl := binary(t, "meshctl")
	addr := freeAddr(t)
	dir := initNode(t, meshd, addr)
	d := startDaemon(t, meshd, dir, addr, []string{"--admin-token", token})

	alice, operator := filepath.Join(t.TempDir(), "alice"), filepath.Join(t.TempDir(), "operator")
	if out, code := meshctl(t, ctl, d.url, alice, "profile", "create", "--name", "alice"); code != 0 {
		t.Fatalf("profile create: exit %d\n%s", code, out)
	}
	if out, code := meshctl(t, ctl, d.url, alice, "account", "create", "alice@example.com"); code != 0 {
		t.Fatalf("account create: exit %d\n%s", code, out)
	}
	taken := func() bool {
		out, code := meshctl(t, ctl, d.url, alice, "account", "validate", "alice@example.com")
		if code != 0 && code != 1 {
			t.Fatalf("account validate: exit %d\n%s", code, out)
		}
		return strings.Contains(out, "not available")
	}

	for _, auth := range []string{"", "Bearer wrong-token-0123456789abcdef", "Bearer " + token[:len(token)-1], "Basic " + token} {
		if r := deleteWithoutProof(t, d.url, "alice@example.com", auth); r.Status != portal.ClientUnauthorized {
			t.Fatalf("DeleteAccount without proof, Authorization %q: %+v, want 401", auth, r)
		}
	}
	out, code := meshctl(t, ctl, d.url, operator, "--token", "wrong-token-0123456789abcdef", "account", "delete", "alice@example.com")
	if code != 1 || !strings.Contains(out, "401") {
		t.Fatalf("delete with a wrong token: exit %d, want 1 and a 401\n%s", code, out)
	}
	if !taken() {
		t.Fatal("the account was deleted without the operator's token")
	}

	out, code = meshctl(t, ctl, d.url, operator, "--token", token, "account", "delete", "alice@example.com")
	if code != 0 || !strings.Contains(out, "Deleted account alice@example.com") {
		t.Fatalf("delete with the operator's token: exit %d\n%s", code, out)
	}
	if taken() {
		t.Fatal("the account is still there after the operator deleted it")
	}
}

// A node without an admin token refuses every token.
func TestWithoutAnAdminTokenNoTokenDeletes(t *testing.T) {
	meshd := buildMeshd(t)
	ctl := binary(t, "meshctl")
	addr := freeAddr(t)
	dir := initNode(t, meshd, addr)
	d := startDaemon(t, meshd, dir, addr, nil)
	alice := filepath.Join(t.TempDir(), "alice")
	if out, code := meshctl(t, ctl, d.url, alice, "profile", "create", "--name", "alice"); code != 0 {
		t.Fatalf("profile create: exit %d\n%s", code, out)
	}
	if out, code := meshctl(t, ctl, d.url, alice, "account", "create", "alice@example.com"); code != 0 {
		t.Fatalf("account create: exit %d\n%s", code, out)
	}
	if r := deleteWithoutProof(t, d.url, "alice@example.com", "Bearer "); r.Status != portal.ClientUnauthorized {
		t.Fatalf("an empty token: %+v, want 401", r)
	}
	if r := deleteWithoutProof(t, d.url, "alice@example.com", "Bearer anything-0123456789abcdef"); r.Status != portal.ClientUnauthorized {
		t.Fatalf("a token on a node without one: %+v, want 401", r)
	}
}

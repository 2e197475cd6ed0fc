package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// Alice creates a profile, checks that her account name is free, creates
// the account, publishes the profile and gets it back by account and by
// identifier, verified (seed 003 §8.1–8.2).
func TestAliceCreatesAnAccountPublishesAndGets(t *testing.T) {
	p := newTestPortal(t)
	alice := newUser(t, p)

	id := alice.createProfile("alice")
	if out := alice.ok("profile", "list"); !strings.Contains(out, id) || !strings.Contains(out, "alice") {
		t.Fatalf("profile list does not show %s (alice):\n%s", id, out)
	}
	if out := alice.ok("account", "validate", "alice@example.com"); !strings.Contains(out, "available") {
		t.Fatalf("validate: %s", out)
	}
	alice.ok("account", "create", "alice@example.com")

	// Taken now: validate says so and exits 1.
	r := alice.run("account", "validate", "alice@example.com")
	if r.code != exitFailure || !strings.Contains(r.stdout, "not available") {
		t.Fatalf("validate of a taken name: exit %d, %q", r.code, r.stdout)
	}

	alice.ok("profile", "publish", "alice")
	var items []getItem
	alice.okJSON(&items, "get", "--account", "alice@example.com", "--full")
	if len(items) != 1 || items[0].Identifier != id || !items[0].Verified || items[0].Type != mesh.TypeProfileMesh || items[0].Index == nil {
		t.Fatalf("get --account: %+v", items)
	}
	alice.okJSON(&items, "get", "--id", id, "--all")
	if len(items) != 2 {
		t.Fatalf("get --all: %d versions, want 2 (create, publish)", len(items))
	}

	// publish - reads an entry on stdin: the raw entry that get --raw
	// prints, which the portal holds already: a replay is refused.
	raw := alice.ok("get", "--id", id, "--raw")
	r = alice.runStdin(raw, "publish", "-")
	if r.code != exitFailure || !strings.Contains(r.stderr, "409") || !strings.Contains(r.stderr, "not newer than the registered version") {
		t.Fatalf("publish - of the registered version: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if out := alice.ok("get", "--id", id); !strings.Contains(out, "signature OK") {
		t.Fatalf("get prints no verification:\n%s", out)
	}

	// Alice deletes the account with a proof signed by her admin key.
	alice.ok("account", "delete", "alice@example.com")
	alice.fails(exitFailure, []string{"404", "does not exist"}, "get", "--account", "alice@example.com")
	var shown profileResult
	alice.okJSON(&shown, "profile", "show")
	if len(shown.Accounts) != 0 {
		t.Fatalf("the deleted account is still recorded: %v", shown.Accounts)
	}
}

// Alice's phone asks to join her account; her laptop (the admin device)
// sees the request and accepts it; the phone sees the signed result (seed
// 003 §8.3). A second device is refused.
func TestDeviceConnectPendingAcceptStatus(t *testing.T) {
	p := newTestPortal(t)
	laptop, phone, tablet := newUser(t, p), newUser(t, p), newUser(t, p)
	profile := laptop.createProfile("alice")
	laptop.ok("account", "create", "alice@example.com")

	var dev deviceResult
	phone.okJSON(&dev, "device", "connect", "--account", "alice@example.com", "--description", "Alice's phone")
	if dev.ParentUDF != profile || dev.Status != devicePending {
		t.Fatalf("device connect: %+v", dev)
	}
	if out := phone.ok("device", "status"); !strings.Contains(out, "pending") {
		t.Fatalf("status before accept: %s", out)
	}

	var pending []pendingRequest
	laptop.okJSON(&pending, "device", "pending")
	if len(pending) != 1 || pending[0].Identifier != dev.Identifier || pending[0].Description != "Alice's phone" {
		t.Fatalf("pending: %+v", pending)
	}
	// A unique prefix of the device ID is enough.
	if out := laptop.ok("device", "accept", dev.Identifier[:9]); !strings.Contains(out, "Accepted device "+dev.Identifier) {
		t.Fatalf("accept: %s", out)
	}
	laptop.okJSON(&pending, "device", "pending", "--account", "alice@example.com")
	if len(pending) != 0 {
		t.Fatalf("still pending after accept: %+v", pending)
	}

	phone.okJSON(&dev, "device", "status")
	if dev.Status != mesh.ResultAccepted || dev.ParentUDF != profile {
		t.Fatalf("status after accept: %+v", dev)
	}
	var devs []deviceResult
	phone.okJSON(&devs, "device", "list")
	if len(devs) != 1 || devs[0].Status != mesh.ResultAccepted {
		t.Fatalf("device list does not record the result: %+v", devs)
	}
	// The admin can ask too, naming the device and account.
	if out := laptop.ok("device", "status", dev.Identifier, "--account", "alice@example.com"); !strings.Contains(out, "Accepted") {
		t.Fatalf("admin status: %s", out)
	}

	var tab deviceResult
	tablet.okJSON(&tab, "device", "connect", "--account", "alice@example.com")
	laptop.ok("device", "reject", tab.Identifier)
	tablet.okJSON(&tab, "device", "status")
	if tab.Status != mesh.ResultRefused {
		t.Fatalf("rejected device status: %+v", tab)
	}

	// Without the profile's keys, a device cannot answer.
	phone.fails(exitFailure, []string{"needs the administration key"}, "device", "accept", "MAAA-AAAA", "--account", "alice@example.com")
}

// Alice sends herself two messages, lists her account's messages (IDs,
// times, signer; oldest first) and reads one by the ID the list gave. Bob,
// without her keys, cannot list them.
func TestMessagesAreListedAndReadByTheListedID(t *testing.T) {
	p := newTestPortal(t)
	alice, bob := newUser(t, p), newUser(t, p)
	alice.createProfile("alice")
	alice.ok("account", "create", "alice@example.com")
	bob.createProfile("bob")
	bob.ok("account", "create", "bob@example.com")

	var none []messageResult
	alice.okJSON(&none, "message", "list")
	if none == nil || len(none) != 0 {
		t.Fatalf("list before any message: %#v, want an empty JSON list", none)
	}
	var sent [2]messageResult
	alice.okJSON(&sent[0], "message", "send", "--to", "alice@example.com", "the first")
	alice.okJSON(&sent[1], "message", "send", "--to", "alice@example.com", "the second")
	var list []messageResult
	alice.okJSON(&list, "message", "list", "--account", "alice@example.com")
	if len(list) != 2 || list[0].ID != sent[0].ID || list[1].ID != sent[1].ID {
		t.Fatalf("list: %+v, want %s then %s", list, sent[0].ID, sent[1].ID)
	}
	for i, m := range list {
		if m.Time == nil || m.Signer != sent[i].Signer || m.Text != "" {
			t.Fatalf("listed message %d: %+v, want its time and signer %s and no text", i, m, sent[i].Signer)
		}
	}
	out := alice.ok("message", "list")
	if !strings.Contains(out, "Account alice@example.com has 2 message(s)") || !strings.Contains(out, list[1].ID+"  "+list[1].Time.UTC().Format("2006-01-02T15:04:05Z")) {
		t.Fatalf("list prints:\n%s", out)
	}
	var read messageResult
	alice.okJSON(&read, "message", "read", list[1].ID)
	if read.Text != "the second" || read.Signer != sent[1].Signer {
		t.Fatalf("read %s: %+v", list[1].ID, read)
	}

	bob.fails(exitFailure, []string{"needs the administration key"}, "message", "list", "--account", "alice@example.com")
	var bobs []messageResult
	bob.okJSON(&bobs, "message", "list")
	if len(bobs) != 0 {
		t.Fatalf("bob's account lists alice's messages: %+v", bobs)
	}
}

// Alice escrows her profile's keys in 3 shares; on a new machine two of
// them recover the keys, which equal the originals (seed 003 §8.5–8.6).
func TestEscrowCreateRecover(t *testing.T) {
	p := newTestPortal(t)
	alice, rescue := newUser(t, p), newUser(t, p)
	id := alice.createProfile("alice")
	alice.ok("account", "create", "alice@example.com")

	var esc escrowResult
	alice.okJSON(&esc, "escrow", "create", "--shares", "3", "--threshold", "2")
	if len(esc.Shares) != 3 || esc.Profile != id || esc.Threshold != 2 {
		t.Fatalf("escrow create: %+v", esc)
	}

	rescue.fails(exitFailure, []string{"not enough shares"}, "escrow", "recover", esc.Shares[0])

	var rec recoverResult
	rescue.okJSON(&rec, "escrow", "recover", esc.Shares[2], esc.Shares[0])
	if rec.Profile != id || rec.Identifier != esc.Identifier || len(rec.Restored) != 3 || rec.Account != "alice@example.com" {
		t.Fatalf("escrow recover: %+v", rec)
	}
	orig := filepath.Join(alice.home, kindProfiles, id)
	for _, name := range []string{keyOffline, keyAdmin, keyEncryption} {
		want, err := loadKey(orig, name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := loadKey(rec.Dir, name)
		if err != nil {
			t.Fatalf("recovered %s key: %v", name, err)
		}
		if !got.Public().Equal(want.Public()) || string(got.Bytes()) != string(want.Bytes()) {
			t.Fatalf("recovered %s key differs from the original", name)
		}
	}
	// The recovered keys work, and the new keystore knows the account the
	// escrow entry was published for: they sign the proof that deletes it.
	rescue.ok("account", "delete", "alice@example.com")

	// Shares on stdin, into the original keystore: nothing to restore.
	r := alice.runStdin(esc.Shares[1]+"\n"+esc.Shares[2]+"\n", "escrow", "recover")
	if r.code != 0 || !strings.Contains(r.stdout, "already in") {
		t.Fatalf("recover into the original keystore: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// The log is copied to a file page by page; an interrupted transfer
// resumes after its last complete line.
func TestTransferToFile(t *testing.T) {
	p := newTestPortal(t)
	alice := newUser(t, p)
	alice.createProfile("alice")
	alice.ok("account", "create", "alice@example.com")
	for range 3 {
		alice.ok("profile", "publish")
	}
	p.checkpoint(t)
	size := p.log.Size()
	out := filepath.Join(t.TempDir(), "log.jsonl")

	alice.fails(exitFailure, []string{"401", "authorization", "http.transfer_token", "MESHD_HTTP_TRANSFER_TOKEN", "--transfer-public"}, "transfer", "--out", out)

	alice.token = testTransferToken
	var res transferResult
	alice.okJSON(&res, "transfer", "--out", out, "--max-entries", "2")
	if res.Records != size || res.Next != size {
		t.Fatalf("transfer: %+v, log size %d", res, size)
	}
	checkTransferFile(t, out, size)

	// Two records, then an interruption in the middle of a line, then resume.
	alice.okJSON(&res, "transfer", "--out", out, "--limit", "2")
	if res.Records != 2 {
		t.Fatalf("--limit 2 wrote %d", res.Records)
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"Index":2,"Ti`)
	f.Close()
	alice.okJSON(&res, "transfer", "--out", out, "--resume")
	if res.From != 2 || res.Next != size {
		t.Fatalf("--resume: %+v", res)
	}
	checkTransferFile(t, out, size)

	// Not a terminal: no progress bar, nothing on stderr.
	if r := alice.run("transfer", "--out", out); r.code != 0 || r.stderr != "" {
		t.Fatalf("transfer to a non-terminal: exit %d, stderr %q", r.code, r.stderr)
	}

	// --from appends from that index.
	alice.okJSON(&res, "transfer", "--out", out, "--from", "3", "--limit", "1")
	if res.From != 3 || res.Records != 1 {
		t.Fatalf("--from 3: %+v", res)
	}

	var st portal.StatusResponse
	alice.okJSON(&st, "status")
	if _, n, ok := checkpointSize(st.CheckpointValue); !ok || n != size {
		t.Fatalf("status checkpoint %q, want tree size %d", st.CheckpointValue, size)
	}
}

// checkTransferFile checks that file holds records 0..size-1 in order,
// each with its leaf.
func checkTransferFile(t *testing.T, file string, size uint64) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	var n uint64
	for sc.Scan() {
		var item portal.DataItem
		if err := json.Unmarshal(sc.Bytes(), &item); err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		if item.Index == nil || *item.Index != n || len(item.Leaf) == 0 {
			t.Fatalf("line %d: index %v, leaf %d bytes", n+1, item.Index, len(item.Leaf))
		}
		n++
	}
	if n != size {
		t.Fatalf("%s holds %d records, want %d", file, n, size)
	}
}

// Every command's --json output is one JSON value.
func TestJSONOutputParses(t *testing.T) {
	p := newTestPortal(t)
	alice := newUser(t, p)
	alice.createProfile("alice")
	for _, args := range [][]string{
		{"hello"}, {"status"}, {"profile", "list"}, {"profile", "show"},
		{"account", "validate", "bob@example.com"}, {"account", "create", "bob@example.com"},
		{"device", "list"}, {"device", "pending"},
	} {
		var v any
		alice.okJSON(&v, args...)
	}
}

// Errors say what is wrong; portal errors print Status and
// StatusDescription; the exit code is 1, or 2 for a command-line mistake.
func TestErrorsExitNonZeroWithAClearMessage(t *testing.T) {
	p := newTestPortal(t)
	alice := newUser(t, p)

	alice.fails(exitFailure, []string{"Status 404", "account \"nobody@example.com\" does not exist"}, "get", "--account", "nobody@example.com")
	alice.fails(exitFailure, []string{"no profile in the keystore"}, "account", "create", "alice@example.com")
	alice.fails(exitFailure, []string{"no device in the keystore"}, "device", "status")

	bad := &user{t: t, home: t.TempDir(), portal: "ftp://portal.example"}
	bad.fails(exitUsage, []string{"not a portal URL"}, "status")
	noScheme := &user{t: t, home: t.TempDir(), portal: "127.0.0.1:8080"}
	noScheme.fails(exitUsage, []string{"not a portal URL", "http://host:port"}, "status")
	down := &user{t: t, home: t.TempDir(), portal: "http://127.0.0.1:1"}
	down.fails(exitFailure, []string{"cannot talk to the portal at http://127.0.0.1:1"}, "status")

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"account", "create"}, "takes one account name"},
		{[]string{"account", "validate", "alice"}, `account validate "alice": an account name is NAME@DOMAIN`},
		{[]string{"account", "validate", "alice@"}, `account validate "alice@": an account name is NAME@DOMAIN`},
		{[]string{"account", "create", "alice"}, `account create "alice": an account name is NAME@DOMAIN`},
		{[]string{"account", "create", "@example.com"}, `account create "@example.com": an account name is NAME@DOMAIN`},
		{[]string{"account", "delete", "alice"}, `account delete "alice": an account name is NAME@DOMAIN`},
		{[]string{"account", "delete", "alice@"}, `account delete "alice@": an account name is NAME@DOMAIN`},
		{[]string{"get", "--account", "alice"}, `get --account "alice": an account name is NAME@DOMAIN`},
		{[]string{"publish", "-", "--account", "alice"}, `publish --account "alice": an account name is NAME@DOMAIN`},
		{[]string{"profile", "publish", "--account", "alice"}, `profile publish --account "alice": an account name is NAME@DOMAIN`},
		{[]string{"device", "connect", "--account", "alice"}, `device connect --account "alice": an account name is NAME@DOMAIN`},
		{[]string{"device", "pending", "--account", "alice"}, `device pending --account "alice": an account name is NAME@DOMAIN`},
		{[]string{"device", "accept", "MAAA", "--account", "alice"}, `device accept --account "alice": an account name is NAME@DOMAIN`},
		{[]string{"device", "reject", "MAAA", "--account", "alice"}, `device reject --account "alice": an account name is NAME@DOMAIN`},
		{[]string{"device", "status", "MAAA", "--account", "alice"}, `device status --account "alice": an account name is NAME@DOMAIN`},
		{[]string{"message", "send", "--to", "alice", "hi"}, `message send --to "alice": an account name is NAME@DOMAIN`},
		{[]string{"message", "send", "--to", "alice@example.com", "--account", "", "hi"}, `message send --account "": an account name is NAME@DOMAIN`},
		{[]string{"message", "list", "--account", "alice"}, `message list --account "alice": an account name is NAME@DOMAIN`},
		{[]string{"message", "list", "MAAA"}, "takes no arguments"},
		{[]string{"get"}, "exactly one of --id"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"profile"}, "needs a subcommand"},
		{[]string{"profile", "frobnicate"}, "unknown command"},
		{[]string{"status", "--bogus"}, "unknown flag"},
		{[]string{"escrow", "create", "--shares", "2", "--threshold", "3"}, "--threshold"},
		{[]string{"transfer"}, "--out"},
		{[]string{"device", "connect"}, "--account"},
	} {
		alice.fails(exitUsage, []string{c.want}, c.args...)
	}
}

// MESHCTL_PORTAL, MESHCTL_HOME and MESHCTL_TOKEN stand in for the flags.
func TestEnvironmentProvidesDefaults(t *testing.T) {
	p := newTestPortal(t)
	home := t.TempDir()
	t.Setenv(envPortal, p.url)
	t.Setenv(envHome, home)
	t.Setenv(envToken, testTransferToken)
	var out, errb strings.Builder
	for _, args := range [][]string{{"profile", "create"}, {"account", "create", "alice@example.com"}} {
		if code := run(t.Context(), args, strings.NewReader(""), &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
	}
	if ids, _ := (&Keystore{root: home}).list(kindProfiles); len(ids) != 1 {
		t.Fatalf("MESHCTL_HOME not used: %d profiles in it", len(ids))
	}
	file := filepath.Join(t.TempDir(), "log.jsonl")
	if code := run(t.Context(), []string{"transfer", "--out", file}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("transfer with MESHCTL_TOKEN: exit %d: %s", code, errb.String())
	}
	checkTransferFile(t, file, p.log.Size())
}

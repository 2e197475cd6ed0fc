package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/portal/mesh"
	"github.com/intermesh/intermesh/testnet"
)

var updateBundle = flag.Bool("update-bundle", false, "rewrite testdata/bundle from a live testnet")

// bundleVector is the fixed proof bundle under testdata/bundle, with the
// federation file whose keys verify it.
const (
	bundleVector     = "testdata/bundle/alice.proof"
	bundleFederation = "testdata/bundle/federation.toml"
)

// checkBundle parses and verifies a bundle as verify-proof does, now,
// and says what failed: the whole, and each origin's section that did.
func checkBundle(keys *getVerifier, data []byte) error {
	b, err := parseProofBundle(data)
	if err != nil {
		return err
	}
	v := verifyBundle(keys, b, time.Now())
	failed := []string{v.Proof.Failed}
	for _, o := range v.Origins {
		if o.Proof.Failed != "" {
			failed = append(failed, o.Proof.Failed)
		}
	}
	if v.Proof.Failed != "" {
		return errors.New(strings.Join(failed, "\n"))
	}
	return nil
}

// TestProofBundleRoundTripsAndRefusesEveryTampering: 'get --verify
// --proof-out' writes what it proved about alice's account; 'verify-proof'
// proves the same statements from the file alone, as of the time it
// records, and says that it is no longer fresh later; the bundle
// re-encodes byte for byte; and every changed leaf, map proof byte,
// checkpoint line, missing or repeated line is refused.
func TestProofBundleRoundTripsAndRefusesEveryTampering(t *testing.T) {
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
	account := net.Account(0, "alice")
	createWithConsent(t, c, account, alice.version(t, time.Now().UTC().Truncate(time.Second)), alice.key)
	q := latestQuery{account: portal.CanonicalAccount(account)}
	provedLatest(t, net, keys, 0, q, "the latest version of "+alice.key.Public().UDF().String())
	if _, err := c.Publish(t.Context(), &portal.PublishRequest{Entry: alice.version(t, time.Now().UTC().Add(time.Second)), AccountID: account}); err != nil {
		t.Fatal(err)
	}
	provedLatest(t, net, keys, 0, q, "version 2 of 2")

	u := &user{t: t, home: t.TempDir(), portal: net.PortalURL(0)}
	path := filepath.Join(t.TempDir(), "alice.proof")
	var got result
	err = testnet.WaitFor(t.Context(), 30*time.Second, "a proved get --proof-out", func() bool {
		got = u.run("get", "--account", account, "--verify", "--federation", net.fedPath, "--proof-out", path)
		return got.code == 0
	})
	if err != nil {
		t.Fatalf("%v; last: %+v", err, got)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("the bundle file: %v, mode %v; want mode 0644", err, fi.Mode())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if *updateBundle {
		writeBundleVector(t, data, net.fedPath)
	}

	// verify-proof proves what get proved, as of the bundle's time.
	out := u.ok("verify-proof", path, "--federation", net.fedPath)
	b, err := parseProofBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	if want := "as of " + b.at.Format(time.RFC3339); !strings.Contains(out, want) {
		t.Errorf("verify-proof does not say %q:\n%s", want, out)
	}
	stmts := provedStatements(got.stdout)
	if len(stmts) < 3 {
		t.Fatalf("get --verify --proof-out proved too little:\n%s", got.stdout)
	}
	if vs := provedStatements(out); !slices.Equal(vs, stmts) {
		t.Errorf("verify-proof proved\n%s\nwhile get proved\n%s", strings.Join(vs, "\n"), strings.Join(stmts, "\n"))
	}
	if again, err := b.MarshalText(); err != nil || !bytes.Equal(again, data) {
		t.Errorf("the bundle does not re-encode byte for byte (%v):\n%s\n---\n%s", err, again, data)
	}
	later := verifyBundle(keys, b, b.at.Add(time.Minute))
	if later.Proof.Failed != "" || later.StillFresh || !strings.Contains(later.Stale, "more than 2 rounds") {
		t.Errorf("a minute later: %+v; want proved as of its time, and no longer fresh", later)
	}
	if early := verifyBundle(keys, b, b.at.Add(-time.Minute)); !strings.Contains(early.Proof.Failed, "after this machine's time") {
		t.Errorf("a bundle from the future: %+v", early.Proof)
	}

	refuseTamperings(t, keys, data)
	proveAbsentBundle(t, u, net)
	refuseMistakes(t, u, net, account, path, data)
}

// proveAbsentBundle: the bundle of an account nobody has, which holds no
// records, proves it absent; asked of another member, get sends the
// question to the account's home.
func proveAbsentBundle(t *testing.T, u *user, net *auditNet) {
	t.Helper()
	u = &user{t: t, home: u.home, portal: net.PortalURL(1)}
	var got result
	nobody := net.Account(0, "nobody")
	absent := filepath.Join(t.TempDir(), "nobody.proof")
	err := testnet.WaitFor(t.Context(), 30*time.Second, "a proved absence", func() bool {
		got = u.run("get", "--account", nobody, "--verify", "--federation", net.fedPath, "--proof-out", absent)
		return got.code == 0
	})
	if err != nil {
		t.Fatalf("%v; last: %+v", err, got)
	}
	if out := u.ok("verify-proof", absent, "--federation", net.fedPath); !strings.Contains(out, nobody+" has no open account in testnet/node0's log") {
		t.Errorf("verify-proof of an absence:\n%s", out)
	}
}

// refuseMistakes: a tampered bundle file exits 1, command-line mistakes
// exit 2.
func refuseMistakes(t *testing.T, u *user, net *auditNet, account, path string, data []byte) {
	t.Helper()
	bad := filepath.Join(t.TempDir(), "bad.proof")
	if err := os.WriteFile(bad, bytes.Replace(data, []byte("\ntime "), []byte("\ntime  "), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	u.fails(exitFailure, []string{"bad.proof", "line 3"}, "verify-proof", bad, "--federation", net.fedPath)
	u.fails(exitUsage, []string{"--proof-out needs --verify"}, "get", "--account", account, "--proof-out", path)
	u.fails(exitUsage, []string{"--proof-out needs --verify"}, "get", "--account", account, "--all", "--verify", "--federation", net.fedPath, "--proof-out", path)
	u.fails(exitUsage, []string{"needs --federation"}, "verify-proof", path)
	u.fails(exitUsage, []string{"one proof bundle file"}, "verify-proof", "--federation", net.fedPath)
}

// refuseTamperings checks that the real bundle data verifies, and that
// no change of it does: a leaf, a map proof byte, a line of any
// checkpoint, any line missing or repeated.
func refuseTamperings(t *testing.T, keys *getVerifier, data []byte) {
	t.Helper()
	if err := checkBundle(keys, data); err != nil {
		t.Fatalf("the bundle as written: %v", err)
	}
	b, err := parseProofBundle(data)
	if err != nil || len(b.answers()[0].maps) == 0 {
		t.Fatalf("the bundle as written has no map proof first: %v", err)
	}
	firstMap := "\nmap " + b.answers()[0].maps[0].Namespace + " "
	lines := strings.SplitAfter(string(data), "\n")
	lines = lines[:len(lines)-1] // the empty string after the last newline
	tampered := map[string]string{}
	edit := func(name string, i int, line string) {
		c := append([]string(nil), lines...)
		c[i] = line
		tampered[name] = strings.Join(c, "")
	}
	notes := 0
	for i, l := range lines {
		f := strings.Fields(l)
		switch {
		case len(f) == 3 && f[0] == "record":
			edit("a changed leaf", i, "record "+f[1]+" "+flipByte(t, f[2], 40)+"\n")
		case len(f) == 4 && f[0] == "map":
			edit("a changed map proof byte of "+f[1], i, strings.Join(f[:3], " ")+" "+flipByte(t, f[3], -1)+"\n")
		case l == "\n" && !strings.HasPrefix(lines[i+1], "— "): // before a note
			notes++
			edit("a changed size line of checkpoint "+string(rune('0'+notes)), i+2, "1000000\n")
		}
		c := append([]string(nil), lines...)
		tampered[fmt.Sprintf("without line %d (%.40s)", i+1, l)] = strings.Join(append(c[:i:i], c[i+1:]...), "")
		c = append([]string(nil), lines...)
		tampered[fmt.Sprintf("line %d repeated (%.40s)", i+1, l)] = strings.Join(append(c[:i+1:i+1], c[i:]...), "")
	}
	for _, s := range []string{"a changed leaf", "a changed map proof byte of " + firstMap[5:len(firstMap)-1], "a changed size line of checkpoint 1", "a changed size line of checkpoint 2"} {
		if _, ok := tampered[s]; !ok {
			t.Errorf("the bundle has nothing for %q:\n%s", s, data)
		}
	}
	tampered["an unknown line"] = strings.Replace(string(data), "\ntime ", "\nsize 3\ntime ", 1)
	tampered["bad base64"] = strings.Replace(string(data), firstMap, firstMap+"!", 1)
	tampered["trailing garbage"] = string(data) + "\nhello\n"
	tampered["a trailing blank line"] = string(data) + "\n"
	tampered["no final newline"] = strings.TrimSuffix(string(data), "\n")
	for name, s := range tampered {
		if err := checkBundle(keys, []byte(s)); err == nil {
			t.Errorf("%s: the bundle still verifies", name)
		}
	}
}

// flipByte decodes base64 s, flips a bit of its byte i (from the end if
// negative) and re-encodes it.
func flipByte(t *testing.T, s string, i int) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		t.Fatalf("%q: %v", s, err)
	}
	if i < 0 {
		i += len(b)
	}
	b[i%len(b)] ^= 1
	return base64.StdEncoding.EncodeToString(b)
}

// writeBundleVector saves a live bundle and its federation file as the
// fixed vector under testdata/bundle.
func writeBundleVector(t *testing.T, data []byte, fedPath string) {
	t.Helper()
	writeVector(t, bundleVector, bundleFederation, data, fedPath)
}

// writeVector saves a live bundle to path and the federation file at
// fedPath to fedOut.
func writeVector(t *testing.T, path, fedOut string, data []byte, fedPath string) {
	t.Helper()
	fed, err := os.ReadFile(fedPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fedOut, fed, 0o644); err != nil {
		t.Fatal(err)
	}
}

// provedStatements are the statements under a "proved" line of an
// output.
func provedStatements(out string) []string {
	var stmts []string
	in := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "proved"):
			in = true
		case in && strings.HasPrefix(line, "  "):
			stmts = append(stmts, strings.TrimSpace(line))
		default:
			in = false
		}
	}
	return stmts
}

// createWithConsent creates account bound to profile, with an
// AccountProof of the profile's consent signed by key (the request is
// sent as JSON, so that it works whether or not the portal asks for it).
func createWithConsent(t *testing.T, c *client.Client, account string, profile []byte, key *mesh.PrivateKey) {
	t.Helper()
	hello, err := c.Hello(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	proof, err := portal.SignAccountProof(hello.Service, account, portal.TxCreateAccount, profile, time.Now(), key)
	if err != nil {
		t.Fatal(err)
	}
	req := struct {
		Account        string
		Profile, Proof portal.Entry
	}{account, profile, proof}
	if _, err := c.Do(t.Context(), portal.TxCreateAccount, &req); err != nil {
		t.Fatal(err)
	}
}

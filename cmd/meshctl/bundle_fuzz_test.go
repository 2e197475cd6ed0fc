package main

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// TestVerifyProofOfTheFixedBundle: the bundle under testdata/bundle, a
// real one from a testnet, is proved offline as of the time it records,
// is no longer fresh now, and refuses every tampering.
func TestVerifyProofOfTheFixedBundle(t *testing.T) {
	u := &user{t: t, home: t.TempDir(), portal: "http://127.0.0.1:1"}
	data, err := os.ReadFile(bundleVector)
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseProofBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	out := u.ok("verify-proof", bundleVector, "--federation", bundleFederation)
	for _, want := range []string{"proved as of " + b.at.Format(time.RFC3339), "version 2 of 2", "Verified:", "No longer fresh now"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify-proof does not say %q:\n%s", want, out)
		}
	}
	var v bundleVerdict
	u.okJSON(&v, "verify-proof", bundleVector, "--federation", bundleFederation)
	if v.Proof.Failed != "" || v.StillFresh || !v.AsOf.Equal(b.at) || v.Query != "account alice@example.com" || len(v.Items) != 1 {
		t.Errorf("verify-proof --json: %+v", v)
	}
	keys, err := newGetVerifier(bundleFederation)
	if err != nil {
		t.Fatal(err)
	}
	refuseTamperings(t, keys, data)
}

// TestVerifyProofOfTheFixedOriginsBundle: the bundle of a lookup by
// identifier alone under testdata/bundle, a real one with a section per
// member origin, is proved offline origin by origin as of its time, is
// no longer fresh now, and refuses every tampering.
func TestVerifyProofOfTheFixedOriginsBundle(t *testing.T) {
	u := &user{t: t, home: t.TempDir(), portal: "http://127.0.0.1:1"}
	data, err := os.ReadFile(originsBundleVector)
	if err != nil {
		t.Fatal(err)
	}
	out := u.ok("verify-proof", originsBundleVector, "--federation", originsBundleFederation)
	for _, want := range []string{"proved of testnet/node1's log as of", "is absent from testnet/node3's log", "has versions in the log of testnet/node1", "Verified:", "No longer fresh now"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify-proof does not say %q:\n%s", want, out)
		}
	}
	var v bundleVerdict
	u.okJSON(&v, "verify-proof", originsBundleVector, "--federation", originsBundleFederation)
	if v.Proof.Failed != "" || v.StillFresh || len(v.Origins) != 4 || v.Origins[1].Origin != "testnet/node1" || len(v.Items) != 1 {
		t.Errorf("verify-proof --json: %+v", v)
	}
	keys, err := newGetVerifier(originsBundleFederation)
	if err != nil {
		t.Fatal(err)
	}
	refuseTamperings(t, keys, data)
}

// FuzzParseProofBundle: the parser never panics, and what it accepts
// re-encodes to the same bytes and verifies, with the keys of either
// fixed bundle, without panicking (run it
// with -fuzzminimizetime 200x: minimizing a 10 kB seed takes a minute).
func FuzzParseProofBundle(f *testing.F) {
	data, err := os.ReadFile(bundleVector)
	if err != nil {
		f.Fatal(err)
	}
	keys, err := newGetVerifier(bundleFederation)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	origins, err := os.ReadFile(originsBundleVector)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(origins)
	originKeys, err := newGetVerifier(originsBundleFederation)
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(bundleHeader + "\nquery id MA\ntime 2026-01-01T00:00:00Z\ncertificate 0 AA==\n\na\n\n— a b\n\nc\n\n— c d\n"))
	f.Add([]byte(bundleHeader + "\n"))
	f.Add([]byte(strings.Replace(string(data), "\nmap account ", "\npredecessor 3 AA==\n"+zeroHash+"\nhistory "+zeroHash+"\nmap account ", 1)))
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := parseProofBundle(in)
		if err != nil {
			return
		}
		out, err := b.MarshalText()
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("accepted %q, re-encoded %q (%v)", in, out, err)
		}
		verifyBundle(keys, b, time.Now())
		verifyBundle(originKeys, b, time.Now())
	})
}

// zeroHash is 32 zero bytes in base64.
const zeroHash = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

// TestParseProofBundleSaysWhatIsWrong: each kind of malformed bundle is
// refused with errBundle, naming the line and what is wrong with it.
func TestParseProofBundleSaysWhatIsWrong(t *testing.T) {
	data, err := os.ReadFile(bundleVector)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	wantParseErrors(t, []parseCase{
		{"an unknown line", strings.Replace(s, "\ntime ", "\nsize 3\ntime ", 1), "line 3: unknown line \"size\""},
		{"a repeated line", strings.Replace(s, "\ntime ", "\nquery id MA\ntime ", 1), "line 3: repeated query line"},
		{"a misplaced line", strings.Replace(s, "\ncertificate ", "\nrecord 9 AA==\ncertificate ", 1), "the record line is out of order"},
		{"a repeated map proof", strings.Replace(s, "\nmap profile ", "\nmap account alice@example.com AA==\nmap profile ", 1), "repeated map proof of account alice@example.com"},
		{"bad base64", strings.Replace(s, "\nmap account alice@example.com ", "\nmap account alice@example.com !", 1), "is not base64"},
		{"a short hash", strings.Replace(s, "\naccount 0 ", "\nAAAA\naccount 0 ", 1), "an inclusion hash must be 32 bytes"},
		{"a leading zero", strings.Replace(s, "\ncertificate ", "\ncertificate 0", 1), "without leading zeros"},
		{"a local time", strings.Replace(s, "T21:04:21Z", "T22:04:21+01:00", 1), "a UTC time"},
		{"no time line", strings.Replace(s, "time 2026-12-07T21:04:21Z\n", "", 1), "no time line"},
		{"trailing garbage", s + "\nhello\n", "trailing text after the node's checkpoint"},
		{"no final newline", strings.TrimSuffix(s, "\n"), "does not end with a newline"},
		{"another header", strings.Replace(s, "@v1", "@v2", 1), "line 1"},
		{"a predecessor without history", strings.Replace(s, "\nmap account ", "\npredecessor 3 AA==\nmap account ", 1), "predecessor lines come with one history line"},
		{"a history without predecessors", strings.Replace(s, "\nmap account ", "\nhistory "+zeroHash+"\nmap account ", 1), "predecessor lines come with one history line"},
		{"a repeated history", strings.Replace(s, "\nmap account ", "\npredecessor 3 AA==\nhistory "+zeroHash+"\nhistory "+zeroHash+"\nmap account ", 1), "repeated history line"},
		{"a repeated predecessor", strings.Replace(s, "\nmap account ", "\npredecessor 3 AA==\npredecessor 3 AA==\nhistory "+zeroHash+"\nmap account ", 1), "repeated predecessor 3"},
		{"a short history", strings.Replace(s, "\nmap account ", "\npredecessor 3 AA==\nhistory AAAA\nmap account ", 1), "the history value must be 32 bytes"},
		{"a predecessor after the map", strings.Replace(s, "\ncertificate ", "\npredecessor 3 AA==\ncertificate ", 1), "the predecessor line is out of order"},
		{"an origin in a bundle by account", strings.Replace(s, "\nrecord ", "\norigin testnet/node0\nrecord ", 1), "origin sections are for a query by id"},
	})
}

// TestParseOriginsBundleSaysWhatIsWrong: each kind of malformed bundle of
// sections is refused with errBundle, naming what is wrong, and the
// origin where there is one.
func TestParseOriginsBundleSaysWhatIsWrong(t *testing.T) {
	data, err := os.ReadFile(originsBundleVector)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	wantParseErrors(t, []parseCase{
		{"a repeated origin", strings.Replace(s, "\norigin testnet/node2\n", "\norigin testnet/node1\n", 1), "repeated section of origin testnet/node1"},
		{"a map line before the first origin", strings.Replace(s, "\norigin testnet/node0\n", "\n", 1), "the origin line is out of order"},
		{"an origin after the certificate", strings.Replace(s, "\n\ntestnet/node0\n", "\norigin testnet/node4\n\ntestnet/node0\n", 1), "the origin line is out of order"},
		{"an empty origin", strings.Replace(s, "\norigin testnet/node2\n", "\norigin \n", 1), "want 'origin ORIGIN'"},
		{"a predecessor without history", strings.Replace(s, "\norigin testnet/node2\n", "\norigin testnet/node2\npredecessor 3 AA==\n", 1), "testnet/node2's section: predecessor lines come with one history line"},
		{"a section's map proof twice", strings.Replace(s, "\norigin testnet/node3\n", "\nmap escrow x AA==\nmap escrow x AA==\norigin testnet/node3\n", 1), "repeated map proof of escrow x"},
		{"a note short", s[:strings.LastIndex(s, "\n\ntestnet/node0\n")+1], "want a blank line, then the next checkpoint"},
	})
}

// parseCase is a malformed bundle, and words its parse error must say.
type parseCase struct{ name, in, want string }

// wantParseErrors checks that each case is refused with errBundle, saying
// what it wants.
func wantParseErrors(t *testing.T, cases []parseCase) {
	t.Helper()
	for _, tc := range cases {
		_, err := parseProofBundle([]byte(tc.in))
		if !errors.Is(err, errBundle) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want it to say %q", tc.name, err, tc.want)
		}
	}
}

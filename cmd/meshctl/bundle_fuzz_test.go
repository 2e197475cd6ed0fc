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

// FuzzParseProofBundle: the parser never panics, and what it accepts
// re-encodes to the same bytes and verifies without panicking (run it
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
	for _, tc := range []struct{ name, in, want string }{
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
	} {
		_, err := parseProofBundle([]byte(tc.in))
		if !errors.Is(err, errBundle) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want it to say %q", tc.name, err, tc.want)
		}
	}
}

package main

import (
	"bytes"
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

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/testnet"
)

// originsBundleVector is the fixed proof bundle of a lookup by identifier
// alone under testdata/bundle, a section per member origin, with the
// federation file whose keys verify it.
const (
	originsBundleVector     = "testdata/bundle/bob-origins.proof"
	originsBundleFederation = "testdata/bundle/origins-federation.toml"
)

// TestProofBundleOfEveryOrigin: 'get --id X --verify --proof-out' of a
// profile published at node 1, asked at node 0, writes a section per
// member origin under one certificate; 'verify-proof' proves from the
// file alone, origin by origin, what get proved; the bundle re-encodes
// byte for byte; and a bundle without an origin's section, with one
// twice, with one origin's proof in another's section or with a section
// of an origin that is no member is refused, saying which origin.
func TestProofBundleOfEveryOrigin(t *testing.T) {
	net, keys, id := profileAtNode1(t)
	everyOriginAnswers(t, net, keys, 0, id, id+" has versions in the log of testnet/node1")

	u := &user{t: t, home: t.TempDir(), portal: net.PortalURL(0)}
	path := filepath.Join(t.TempDir(), "bob.proof")
	var got result
	err := testnet.WaitFor(t.Context(), 30*time.Second, "a proved get --id --proof-out", func() bool {
		got = u.run("get", "--id", id, "--verify", "--federation", net.fedPath, "--proof-out", path)
		return got.code == 0
	})
	if err != nil {
		t.Fatalf("%v; last: %+v", err, got)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if *updateBundle {
		writeVector(t, originsBundleVector, originsBundleFederation, data, net.fedPath)
	}
	out := u.ok("verify-proof", path, "--federation", net.fedPath)
	for _, want := range []string{"proved of testnet/node1's log as of", "the latest version of " + id + " is record",
		id + " is absent from testnet/node0's log", id + " is absent from testnet/node3's log",
		id + " has versions in the log of testnet/node1", "Verified:"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify-proof of the bundle of every origin does not say %q:\n%s", want, out)
		}
	}
	if vs, stmts := provedStatements(out), provedStatements(got.stdout); len(stmts) < 5 || !slices.Equal(vs, stmts) {
		t.Errorf("verify-proof proved\n%s\nwhile get proved\n%s", strings.Join(vs, "\n"), strings.Join(stmts, "\n"))
	}
	b, err := parseProofBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := b.MarshalText(); err != nil || !bytes.Equal(again, data) || len(b.sections) != 4 {
		t.Errorf("the bundle has %d sections, and does not re-encode byte for byte (%v):\n%s\n---\n%s", len(b.sections), err, again, data)
	}
	refuseOriginTamperings(t, keys, b, id)
	refuseTamperings(t, keys, data)
}

// refuseOriginTamperings: b, a bundle of every origin of a profile in
// node 1's log, is refused, in words that name the origin, without an
// origin's section, with one twice, with sections or map proofs swapped
// between origins, or with a section of an origin that is no member.
func refuseOriginTamperings(t *testing.T, keys *getVerifier, b *proofBundle, id string) {
	t.Helper()
	edited := func(edit func(s []bundleSection) []bundleSection) ([]byte, error) {
		c := *b
		c.sections = edit(slices.Clone(b.sections))
		return c.MarshalText()
	}
	for _, tc := range []struct {
		name  string
		edit  func(s []bundleSection) []bundleSection
		words string
	}{
		{"without node 2's section", func(s []bundleSection) []bundleSection { return slices.Delete(s, 2, 3) },
			"in testnet/node2's log: no answer about " + id + ": the bundle has no section of testnet/node2"},
		{"node 1's section twice", func(s []bundleSection) []bundleSection { return append(s, s[1]) },
			"repeated section of origin testnet/node1"},
		{"node 2's answer in node 1's section", func(s []bundleSection) []bundleSection {
			s[1].bundleAnswer, s[2].bundleAnswer = s[2].bundleAnswer, s[1].bundleAnswer
			return s
		}, "in testnet/node1's log: the answer is not under testnet/node1's checkpoint"},
		{"node 0's and node 1's map proofs swapped", func(s []bundleSection) []bundleSection {
			s[0].maps, s[1].maps = s[1].maps, s[0].maps
			return s
		}, "in testnet/node0's log"},
		{"a section of no member", func(s []bundleSection) []bundleSection { s[3].origin = "testnet/elsewhere"; return s },
			"a section of testnet/elsewhere, which is not a member origin"},
	} {
		data, err := edited(tc.edit)
		if err == nil {
			err = checkBundle(keys, data)
		}
		if err == nil || !strings.Contains(err.Error(), tc.words) {
			t.Errorf("%s: %v; want it refused saying %q", tc.name, err, tc.words)
		}
	}
}

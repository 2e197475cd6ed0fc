package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// testFederation returns a valid federation of n members.
func testFederation(t *testing.T, n int) *Federation {
	t.Helper()
	f := &Federation{Name: "test", EpochPeriod: Duration{2 * time.Second}}
	for i := 0; i < n; i++ {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		origin := fmt.Sprintf("test/node%d", i)
		vkey, err := VerifierKey(origin, pub)
		if err != nil {
			t.Fatal(err)
		}
		id, err := PeerIDFromKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		f.Members = append(f.Members, Member{
			Origin: origin, PeerID: id.String(), Key: vkey,
			Addrs: []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 4001+i)},
		})
	}
	return f
}

func TestFederationWriteThenLoadRoundTrips(t *testing.T) {
	f := testFederation(t, 4)
	p := filepath.Join(t.TempDir(), "federation.toml")
	if err := f.Write(p); err != nil {
		t.Fatal(err)
	}
	g, err := LoadFederation(p)
	if err != nil {
		t.Fatal(err)
	}
	if g.Name != f.Name || len(g.Members) != 4 || g.Members[3].Key != f.Members[3].Key || g.EpochPeriod != f.EpochPeriod {
		t.Fatalf("loaded %+v", g)
	}
	if q := g.EffectiveQuorum(); q != 3 {
		t.Errorf("default quorum of 4 = %d, want 3", q)
	}
}

func TestFederationValidationNamesTheField(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(f *Federation)
		want   string
	}{
		{"an empty name", func(f *Federation) { f.Name = "" }, "name"},
		{"a name with a slash", func(f *Federation) { f.Name = "a/b" }, "name"},
		{"no members", func(f *Federation) { f.Members = nil }, "member"},
		{"a quorum of half", func(f *Federation) { f.Quorum = 2 }, "quorum"},
		{"a quorum above n", func(f *Federation) { f.Quorum = 5 }, "quorum"},
		{"a period under a second", func(f *Federation) { f.EpochPeriod = Duration{time.Millisecond} }, "epoch_period"},
		{"a peer ID of another key", func(f *Federation) { f.Members[1].PeerID = f.Members[2].PeerID }, "member[1].peer_id"},
		{"a key named after another origin", func(f *Federation) { f.Members[0].Origin = "test/other" }, "member[0].key"},
		{"a garbled key", func(f *Federation) { f.Members[2].Key = "test/node2+00000000+AAAA" }, "member[2].key"},
		{"a duplicate member", func(f *Federation) { f.Members[3] = f.Members[0] }, "member[3].origin"},
		{"an address with /p2p/", func(f *Federation) { f.Members[0].Addrs = []string{"/ip4/1.2.3.4/tcp/1/p2p/x"} }, "member[0].addrs"},
		{"an empty origin", func(f *Federation) { f.Members[0].Origin = "" }, "member[0].origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := testFederation(t, 4)
			tt.mutate(f)
			err := f.Validate()
			if !errors.Is(err, ErrFederation) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate: %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

func TestFederationVerifiersKnowEveryMember(t *testing.T) {
	f := testFederation(t, 3)
	vs, err := f.Verifiers()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range f.Members {
		name, _, _ := strings.Cut(m.Key, "+")
		var hash uint32
		if v, err := note.NewVerifier(m.Key); err == nil {
			hash = v.KeyHash()
		}
		if v, err := vs.Verifier(name, hash); err != nil || v.Name() != m.Origin {
			t.Errorf("member %s: verifier %v, %v", m.Origin, v, err)
		}
	}
	if _, err := vs.Verifier("test/stranger", 1); err == nil {
		t.Error("a stranger's key was known")
	}
	f.Members[1].Key = "test/node1+00000000+AAAA"
	if _, err := f.Verifiers(); !errors.Is(err, ErrFederation) || !strings.Contains(err.Error(), "member[1] (test/node1)") {
		t.Errorf("a bad key: %v", err)
	}
}

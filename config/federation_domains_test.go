package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFederationDomainsRoundTripThroughTheFile(t *testing.T) {
	f := testFederation(t, 3)
	f.Members[0].Domains = []string{"example.com", "example.org"}
	f.Members[2].Domains = []string{"node2.example.com"}
	p := filepath.Join(t.TempDir(), "federation.toml")
	if err := f.Write(p); err != nil {
		t.Fatal(err)
	}
	g, err := LoadFederation(p)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(g.Members[0].Domains) != "[example.com example.org]" || g.Members[1].Domains != nil || fmt.Sprint(g.Members[2].Domains) != "[node2.example.com]" {
		t.Fatalf("loaded domains %q %q %q", g.Members[0].Domains, g.Members[1].Domains, g.Members[2].Domains)
	}
	if m, ok := g.Home("Alice@Node2.Example.COM"); !ok || m.Origin != "test/node2" {
		t.Errorf("Home of alice@node2.example.com: %v %v", m.Origin, ok)
	}
	for _, a := range []string{"alice", "alice@example.net", "alice@"} {
		if m, ok := g.Home(a); ok {
			t.Errorf("Home(%q) = %s, want none", a, m.Origin)
		}
	}
}

func TestFederationFileWithoutDomainsStaysValid(t *testing.T) {
	f := testFederation(t, 2)
	p := filepath.Join(t.TempDir(), "federation.toml")
	if err := f.Write(p); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("domains")) {
		t.Fatalf("a federation without domains writes them:\n%s", raw)
	}
	g, err := LoadFederation(p)
	if err != nil {
		t.Fatal(err)
	}
	if g.Members[0].Domains != nil {
		t.Fatalf("domains %q", g.Members[0].Domains)
	}
	// The genesis text, and so the hash an update's prev names, is what
	// it was before members had domains.
	if bytes.Contains(Genesis(g).Text(), []byte("@")) {
		t.Fatalf("genesis text:\n%s", Genesis(g).Text())
	}
}

func TestFederationDomainValidation(t *testing.T) {
	long := strings.Repeat("a", 63)
	tooLong := strings.Repeat(long+".", 4) + "com" // 259 characters
	many := make([]string, MaxMemberDomains+1)
	for i := range many {
		many[i] = fmt.Sprintf("d%d.example", i)
	}
	tests := []struct {
		name    string
		domains [][]string // by member
		want    string     // "" for valid
	}{
		{"none", nil, ""},
		{"one each", [][]string{{"example.com"}, {"node1.example.com"}, {"x-y.example"}}, ""},
		{"a 63-character label", [][]string{{long + ".com"}}, ""},
		{"the maximum number", [][]string{many[:MaxMemberDomains]}, ""},
		{"upper case", [][]string{{"Example.com"}}, `member[0].domains: member test/node0: domain "Example.com" holds 'E'`},
		{"an empty domain", [][]string{{""}}, "member[0].domains: member test/node0: an empty domain"},
		{"a trailing dot", [][]string{{"example.com."}}, "empty label"},
		{"a leading dot", [][]string{nil, {".example.com"}}, "member[1].domains: member test/node1: domain \".example.com\" has an empty label"},
		{"a double dot", [][]string{{"example..com"}}, "empty label"},
		{"an account name", [][]string{{"alice@example.com"}}, "holds '@'"},
		{"an underscore", [][]string{{"a_b.example"}}, "holds '_'"},
		{"a space", [][]string{{"a b.example"}}, "holds ' '"},
		{"non-ASCII", [][]string{{"exämple.com"}}, "holds 'ä'"},
		{"the Kelvin sign", [][]string{{"\u212a.example"}}, "holds '\u212a'"},
		{"a leading hyphen", [][]string{{"-a.example"}}, "starts or ends with '-'"},
		{"a trailing hyphen", [][]string{{"a-.example"}}, "starts or ends with '-'"},
		{"a 64-character label", [][]string{{long + "a.com"}}, "a label of 64 characters"},
		{"over 253 characters", [][]string{{tooLong}}, "259 characters long, over the limit of 253"},
		{"too many", [][]string{many}, fmt.Sprintf("member test/node0 lists %d domains, over the limit of %d", MaxMemberDomains+1, MaxMemberDomains)},
		{"twice in one member", [][]string{nil, {"example.com", "example.org", "example.com"}}, `member[1].domains: member test/node1 lists domain "example.com" twice`},
		{"served by two members", [][]string{{"example.com"}, nil, {"example.org", "example.com"}},
			`member[2].domains: domain "example.com" of member test/node2 is already served by member[0] (test/node0)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := testFederation(t, 3)
			for i, d := range tt.domains {
				f.Members[i].Domains = d
			}
			err := f.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrFederation) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestFederationDomainsInTheUpdateText(t *testing.T) {
	fed, ks := keyedFederation(t, 3)
	g := Genesis(fed)
	next := &Federation{Name: "test", EpochPeriod: fed.EpochPeriod, Members: members(ks[0], ks[1], ks[2])}
	next.Members[0].Domains = []string{"example.com", "a.example.com"}
	next.Members[2].Domains = []string{"node2.example.com"}
	v1, err := g.Next(next, 10)
	if err != nil {
		t.Fatal(err)
	}
	text := v1.Text()
	if !bytes.Contains(text, []byte(" @example.com @a.example.com\n")) || !bytes.Contains(text, []byte(" @node2.example.com\n")) {
		t.Fatalf("text:\n%s", text)
	}
	p, err := ParseFederationText(text)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(p.Members[0].Domains) != "[example.com a.example.com]" || p.Members[1].Domains != nil || len(p.Members[0].Addrs) != 1 {
		t.Fatalf("parsed %+v", p.Members)
	}
	// The domains are signed: the update certifies them, and a changed
	// domain is another text, whose signatures do not verify.
	signed := sign(t, text, ks[0].signer, ks[1].signer, ks[2].signer)
	u, err := CheckFederationUpdate(g, signed)
	if err != nil || !u.Certified || fmt.Sprint(u.Next.Members[2].Domains) != "[node2.example.com]" {
		t.Fatalf("%+v, %v", u, err)
	}
	forged := bytes.Replace(signed, []byte("@node2.example.com"), []byte("@node2.example.org"), 1)
	if _, err := CheckFederationUpdate(g, forged); !errors.Is(err, ErrFederationUpdate) {
		t.Fatalf("a changed domain: %v", err)
	}
	// A genesis with domains: the domains are in its text and hash.
	withDomains := *fed
	withDomains.Members = append([]Member(nil), fed.Members...)
	withDomains.Members[1].Domains = []string{"example.net"}
	if Genesis(&withDomains).Hash() == g.Hash() {
		t.Error("the genesis hash does not cover the domains")
	}
}

func TestFederationTextDomainsMalformed(t *testing.T) {
	fed, ks := keyedFederation(t, 2)
	next := &Federation{Name: "test", EpochPeriod: fed.EpochPeriod, Members: members(ks[0], ks[1])}
	next.Members[0].Domains = []string{"example.com"}
	v1, err := Genesis(fed).Next(next, 10)
	if err != nil {
		t.Fatal(err)
	}
	text := string(v1.Text())
	addr := next.Members[0].Addrs[0]
	many := strings.Repeat(" @x.example", MaxMemberDomains+1)
	tests := []struct{ name, old, new, want string }{
		{"a domain before an address", addr + " @example.com", "@example.com " + addr, "not in canonical form"},
		{"upper case", "@example.com", "@EXAMPLE.com", "holds 'E'"},
		{"an empty domain", "@example.com", "@", "an empty domain"},
		{"a domain twice", "@example.com", "@example.com @example.com", "twice"},
		{"a domain of two members", "@example.com\n", "@example.com\n", ""}, // placeholder, replaced below
		{"too many domains", " @example.com", many, fmt.Sprintf("%d domains, over the limit of %d", MaxMemberDomains+1, MaxMemberDomains)},
	}
	// A domain on both member lines.
	lines := strings.Split(text, "\n")
	lines[7] += " @example.com"
	tests[4].old, tests[4].new, tests[4].want = text, strings.Join(lines, "\n"), "already served by member[0] (test/node0)"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := strings.Replace(text, tt.old, tt.new, 1)
			if bad == text {
				t.Fatal("the test changes nothing")
			}
			_, err := ParseFederationText([]byte(bad))
			if !errors.Is(err, ErrFederationUpdate) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseFederationText: %v, want an error containing %q\n%s", err, tt.want, bad)
			}
		})
	}
}

func TestServedDomainsAreThoseOfTheLatestVersionListingTheMember(t *testing.T) {
	fed, ks := keyedFederation(t, 3)
	fed.Members[0].Domains = []string{"example.com"}
	g := Genesis(fed)
	next := &Federation{Name: "test", EpochPeriod: fed.EpochPeriod, Members: members(ks[0], ks[1])}
	next.Members[0].Domains = []string{"example.com", "example.org"}
	v1, err := g.Next(next, 10)
	if err != nil {
		t.Fatal(err)
	}
	chain := []*FederationVersion{g, v1}
	for _, tc := range []struct {
		chain  []*FederationVersion
		origin string
		want   string
	}{
		{chain, "test/node0", "[example.com example.org]"},
		{chain[:1], "test/node0", "[example.com]"},
		{chain, "test/node1", "[]"},
		{chain, "test/node2", "[]"}, // removed by v1: its genesis entry
		{chain, "test/stranger", "[]"},
		{nil, "test/node0", "[]"},
	} {
		if got := ServedDomains(tc.chain, tc.origin); fmt.Sprint(got) != tc.want {
			t.Errorf("ServedDomains(%d versions, %s) = %q, want %s", len(tc.chain), tc.origin, got, tc.want)
		}
	}
}

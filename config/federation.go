package config

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/mod/sumdb/note"
)

// Federation is the federation file shared by every member: who the members
// are, how to reach them and how many must agree.
//
// Example (TOML):
//
//	name = "testnet"
//	quorum = 3
//	epoch_period = "10s"
//
//	[[member]]
//	origin = "testnet/node0"
//	peer_id = "12D3KooW..."
//	key = "testnet/node0+1a2b3c4d+AXs..."
//	addrs = ["/ip4/127.0.0.1/tcp/4001"]
//	http = "http://127.0.0.1:8080"
//	domains = ["example.com"]
type Federation struct {
	// Name names the federation; it is part of the gossip topic names and
	// the origin line of master-hash votes ("<name>/master"). Required.
	Name string `toml:"name"`
	// Quorum is how many members' votes make a master-hash certificate.
	// Zero means the default, floor(2n/3)+1; otherwise it must be more
	// than n/2 and at most n.
	Quorum int `toml:"quorum"`
	// EpochPeriod is the round length every member uses. Required.
	EpochPeriod Duration `toml:"epoch_period"`
	// Members are the federation's nodes, at least one.
	Members []Member `toml:"member"`
}

// Member is one node of a federation.
type Member struct {
	// Origin is the member's log name (its checkpoints' first line).
	Origin string `toml:"origin"`
	// PeerID is the member's libp2p peer ID; it must be the ID of Key.
	PeerID string `toml:"peer_id"`
	// Key is the member's C2SP note verifier key, named Origin
	// ("<origin>+<hash>+<base64 of 0x01 || Ed25519 public key>").
	Key string `toml:"key"`
	// Addrs are the member's libp2p multiaddresses (without /p2p/).
	Addrs []string `toml:"addrs"`
	// HTTP is the base URL of the member's portal, for auditors. Optional.
	HTTP string `toml:"http"`
	// Domains are the account domains the member serves: it is the home
	// of every account NAME@DOMAIN whose DOMAIN is one of them, and its
	// portal creates accounts of those domains only. Lower-case ASCII DNS
	// names, each served by one member at most, at most MaxMemberDomains.
	// Optional: a member without domains creates accounts of any name
	// (files written before domains existed).
	Domains []string `toml:"domains,omitempty"`
}

// ErrFederation is wrapped by every error about a federation file.
var ErrFederation = errors.New("federation")

// LoadFederation reads and validates a federation file.
func LoadFederation(path string) (*Federation, error) {
	var f Federation
	md, err := toml.DecodeFile(path, &f)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFederation, path, err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		return nil, fmt.Errorf("%w: %s: unknown setting %s", ErrFederation, path, un[0].String())
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &f, nil
}

// Write stores f as a federation file.
func (f *Federation) Write(path string) error {
	var buf bytes.Buffer
	buf.WriteString("# intermesh federation file: the same on every member.\n")
	if err := toml.NewEncoder(&buf).Encode(f); err != nil {
		return fmt.Errorf("%w: encoding: %w", ErrFederation, err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("%w: %w", ErrFederation, err)
	}
	return nil
}

// EffectiveQuorum is the quorum in force: Quorum, or floor(2n/3)+1.
func (f *Federation) EffectiveQuorum() int {
	if f.Quorum > 0 {
		return f.Quorum
	}
	return 2*len(f.Members)/3 + 1
}

// Validate checks the federation and names the first field that is wrong:
// every member's peer ID must belong to its key, key names must equal
// origins, no origin, peer ID or key may appear twice, and every domain
// must be a lower-case DNS name (CheckDomain) served by one member once.
func (f *Federation) Validate() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrFederation, field, fmt.Sprintf(format, a...))
	}
	if f.Name == "" || strings.ContainsAny(f.Name, " \t\n/+") {
		return bad("name", "%q must be non-empty, without spaces, '/' or '+'", f.Name)
	}
	if f.EpochPeriod.Duration < time.Second || f.EpochPeriod.Duration%time.Second != 0 {
		return bad("epoch_period", "%s must be a whole number of seconds, at least 1s", f.EpochPeriod.Duration)
	}
	n := len(f.Members)
	if n == 0 {
		return bad("member", "the federation has no members")
	}
	if f.Quorum != 0 && (f.Quorum*2 <= n || f.Quorum > n) {
		return bad("quorum", "%d must be more than half of the %d members and at most %d", f.Quorum, n, n)
	}
	seen := map[string]string{}
	for i, m := range f.Members {
		field := func(name string) string { return fmt.Sprintf("member[%d].%s", i, name) }
		if m.Origin == "" {
			return bad(field("origin"), "is empty")
		}
		pub, err := m.PublicKey()
		if err != nil {
			return bad(field("key"), "%v", err)
		}
		id, err := PeerIDFromKey(pub)
		if err != nil {
			return bad(field("key"), "%v", err)
		}
		if m.PeerID != id.String() {
			return bad(field("peer_id"), "%q is not the peer ID of the member's key (%s)", m.PeerID, id)
		}
		for _, a := range m.Addrs {
			if !strings.HasPrefix(a, "/") || strings.Contains(a, "/p2p/") {
				return bad(field("addrs"), "%q must be a multiaddress without /p2p/", a)
			}
		}
		for _, k := range []string{"origin " + m.Origin, "peer_id " + m.PeerID, "key " + string(pub)} {
			if j, dup := seen[k]; dup {
				return bad(field(strings.SplitN(k, " ", 2)[0]), "the same as %s", j)
			}
			seen[k] = fmt.Sprintf("member[%d]", i)
		}
		if len(m.Domains) > MaxMemberDomains {
			return bad(field("domains"), "member %s lists %d domains, over the limit of %d", m.Origin, len(m.Domains), MaxMemberDomains)
		}
		for _, d := range m.Domains {
			if err := CheckDomain(d); err != nil {
				return bad(field("domains"), "member %s: %v", m.Origin, err)
			}
			if j, dup := seen["domain "+d]; dup {
				if j == fmt.Sprintf("member[%d] (%s)", i, m.Origin) {
					return bad(field("domains"), "member %s lists domain %q twice", m.Origin, d)
				}
				return bad(field("domains"), "domain %q of member %s is already served by %s: a domain has one home", d, m.Origin, j)
			}
			seen["domain "+d] = fmt.Sprintf("member[%d] (%s)", i, m.Origin)
		}
	}
	return nil
}

// MaxDomainLength bounds a domain name (RFC 1035's 253 characters of text).
const MaxDomainLength = 253

// CheckDomain returns why d is not a domain a member may serve, or nil:
// a DNS name of lower-case ASCII letters, digits and '-' in dot-separated
// labels of 1 to 63 characters that neither start nor end with '-', at
// most MaxDomainLength characters, without a trailing dot. These
// characters are all allowed in a portal's account names, and being lower
// case, a domain is its own canonical form (the portal lower-cases names).
func CheckDomain(d string) error {
	if d == "" {
		return errors.New("an empty domain")
	}
	if len(d) > MaxDomainLength {
		return fmt.Errorf("domain %.20q... is %d characters long, over the limit of %d", d, len(d), MaxDomainLength)
	}
	for _, label := range strings.Split(d, ".") {
		switch {
		case label == "":
			return fmt.Errorf("domain %q has an empty label (a leading, trailing or double dot)", d)
		case len(label) > 63:
			return fmt.Errorf("domain %q has a label of %d characters, over the limit of 63", d, len(label))
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Errorf("domain %q has a label that starts or ends with '-'", d)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("domain %q holds %q: domains are lower-case ASCII letters, digits, '-' and '.'", d, r)
			}
		}
	}
	return nil
}

// AccountDomain returns the domain of an account name NAME@DOMAIN, lower
// cased as the portal stores names, and false for a name without '@'.
func AccountDomain(account string) (string, bool) {
	i := strings.LastIndexByte(account, '@')
	if i < 0 {
		return "", false
	}
	return strings.ToLower(account[i+1:]), true
}

// Home returns the member that serves the domain of an account name: its
// home, the member that creates it and whose log holds it. It reports
// false for a name without a domain or a domain no member serves.
func (f *Federation) Home(account string) (Member, bool) {
	d, ok := AccountDomain(account)
	if !ok {
		return Member{}, false
	}
	for _, m := range f.Members {
		if slices.Contains(m.Domains, d) {
			return m, true
		}
	}
	return Member{}, false
}

// PublicKey decodes the member's Ed25519 public key from its verifier key,
// checking that the key is named after the member's origin.
func (m *Member) PublicKey() (ed25519.PublicKey, error) {
	if _, err := note.NewVerifier(m.Key); err != nil {
		return nil, fmt.Errorf("not a note verifier key: %w", err)
	}
	parts := strings.SplitN(m.Key, "+", 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("not a note verifier key: want name+hash+key")
	}
	if parts[0] != m.Origin {
		return nil, fmt.Errorf("key name %q is not the member's origin %q", parts[0], m.Origin)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 1 {
		return nil, fmt.Errorf("not an Ed25519 note verifier key")
	}
	return ed25519.PublicKey(raw[1:]), nil
}

// PeerIDFromKey returns the libp2p peer ID of an Ed25519 public key: a
// node's key is both its libp2p identity and its checkpoint signer.
func PeerIDFromKey(pub ed25519.PublicKey) (peer.ID, error) {
	k, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(k)
}

// VerifierKey returns the note verifier key of an Ed25519 public key, named
// origin.
func VerifierKey(origin string, pub ed25519.PublicKey) (string, error) {
	k, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		return "", fmt.Errorf("%w: verifier key for %q: %w", ErrFederation, origin, err)
	}
	return k, nil
}

// Member returns the member with the given origin.
func (f *Federation) Member(origin string) (Member, bool) {
	for _, m := range f.Members {
		if m.Origin == origin {
			return m, true
		}
	}
	return Member{}, false
}

// Verifiers returns a note verifier for every member's key, in member
// order: what checks the members' signatures on checkpoints, votes and
// certificates. A federation that passed Validate gets no error; otherwise
// the error names the first member whose key does not parse.
func (f *Federation) Verifiers() (note.Verifiers, error) {
	vs := make([]note.Verifier, 0, len(f.Members))
	for i, m := range f.Members {
		v, err := note.NewVerifier(m.Key)
		if err != nil {
			return nil, fmt.Errorf("%w: member[%d] (%s): key: %w", ErrFederation, i, m.Origin, err)
		}
		vs = append(vs, v)
	}
	return note.VerifierList(vs...), nil
}

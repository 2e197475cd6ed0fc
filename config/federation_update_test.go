package config

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// keyedMember is a member with its signer.
type keyedMember struct {
	Member
	signer note.Signer
}

// newKeyedMember makes a member of origin with a fresh key.
func newKeyedMember(t testing.TB, origin string, port int) keyedMember {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := VerifierKey(origin, pub)
	if err != nil {
		t.Fatal(err)
	}
	id, err := PeerIDFromKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	s := testSigner{origin, v.KeyHash(), priv}
	return keyedMember{Member{Origin: origin, PeerID: id.String(), Key: vkey,
		Addrs: []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)}, HTTP: fmt.Sprintf("http://127.0.0.1:%d", port+1000)}, s}
}

// testSigner is a note.Signer of an Ed25519 key.
type testSigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func (s testSigner) Name() string                    { return s.name }
func (s testSigner) KeyHash() uint32                 { return s.hash }
func (s testSigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// keyedFederation is a genesis federation of n members and their signers.
func keyedFederation(t testing.TB, n int) (*Federation, []keyedMember) {
	t.Helper()
	f := &Federation{Name: "test", EpochPeriod: Duration{10 * time.Second}}
	var ks []keyedMember
	for i := range n {
		k := newKeyedMember(t, fmt.Sprintf("test/node%d", i), 4001+i)
		ks = append(ks, k)
		f.Members = append(f.Members, k.Member)
	}
	return f, ks
}

// sign signs text (or a signed note) with each signer in turn.
func sign(t testing.TB, msg []byte, signers ...note.Signer) []byte {
	t.Helper()
	for _, s := range signers {
		var err error
		if msg, err = SignFederationUpdate(msg, s); err != nil {
			t.Fatal(err)
		}
	}
	return msg
}

func members(ks ...keyedMember) []Member {
	var ms []Member
	for _, k := range ks {
		ms = append(ms, k.Member)
	}
	return ms
}

func TestGenesisTextParsesBackToTheSameVersion(t *testing.T) {
	f, _ := keyedFederation(t, 4)
	f.Members[2].HTTP = ""
	f.Members[1].Addrs = nil
	g := Genesis(f)
	if g.Quorum != 3 {
		t.Fatalf("genesis quorum %d, want the effective quorum 3", g.Quorum)
	}
	back, err := ParseFederationText(g.Text())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Text(), g.Text()) || back.Hash() != g.Hash() {
		t.Fatalf("round trip changed the text:\n%s\n%s", g.Text(), back.Text())
	}
	if !strings.HasPrefix(string(g.Text()), "test/federation\nversion 0\nprev AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\neffective 0\nperiod 10\nquorum 3\nmember test/node0 ") {
		t.Fatalf("genesis text:\n%s", g.Text())
	}
}

func TestAChainOfUpdatesAddsRotatesAndRemoves(t *testing.T) {
	f, ks := keyedFederation(t, 4)
	g := Genesis(f)
	fifth := newKeyedMember(t, "test/node4", 4005)

	// Version 1 adds node4: three of the four and node4 itself sign.
	v1, err := g.Next(&Federation{Name: "test", EpochPeriod: f.EpochPeriod, Members: members(ks[0], ks[1], ks[2], ks[3], fifth)}, 100)
	if err != nil {
		t.Fatal(err)
	}
	u1 := sign(t, v1.Text(), ks[0].signer, ks[1].signer)
	if u, err := CheckFederationUpdate(g, u1); err != nil || u.Certified || len(u.Signers) != 2 || len(u.Missing) != 1 {
		t.Fatalf("two signatures: %+v, %v; want pending, node4 missing", u, err)
	}
	u1 = sign(t, u1, ks[2].signer)
	if u, err := CheckFederationUpdate(g, u1); err != nil || u.Certified {
		t.Fatalf("a quorum without the new member's signature: %+v, %v; want pending", u, err)
	}
	u1 = sign(t, u1, fifth.signer)
	if u, err := CheckFederationUpdate(g, u1); err != nil || !u.Certified || u.Next.Quorum != 4 {
		t.Fatalf("quorum and new key: %+v, %v; want certified with quorum 4 of 5", u, err)
	}

	// Version 2 rotates node1's key: four of five current members and the new key.
	rotated := newKeyedMember(t, "test/node1", 4002)
	v2, err := v1.Next(&Federation{Name: "test", EpochPeriod: f.EpochPeriod, Members: members(ks[0], rotated, ks[2], ks[3], fifth)}, 110)
	if err != nil {
		t.Fatal(err)
	}
	u2 := sign(t, v2.Text(), ks[0].signer, ks[1].signer, ks[3].signer, fifth.signer)
	if u, err := CheckFederationUpdate(v1, u2); err != nil || u.Certified || len(u.Missing) != 1 || u.Missing[0] != "test/node1" {
		t.Fatalf("rotation without the new key: %+v, %v", u, err)
	}
	u2 = sign(t, u2, rotated.signer)

	// Version 3 removes node3, signed with node1's new key.
	v3, err := v2.Next(&Federation{Name: "test", EpochPeriod: f.EpochPeriod, Members: members(ks[0], rotated, ks[2], fifth)}, 120)
	if err != nil {
		t.Fatal(err)
	}
	u3old := sign(t, v3.Text(), ks[0].signer, ks[1].signer, ks[2].signer, fifth.signer)
	if u, err := CheckFederationUpdate(v2, u3old); err == nil && u.Certified {
		t.Fatal("node1's old key still counts after its rotation")
	}
	u3 := sign(t, v3.Text(), ks[0].signer, rotated.signer, ks[2].signer, fifth.signer)

	chain, err := VerifyFederationChain(f, [][]byte{u1, u2, u3})
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 4 || len(chain[3].Members) != 4 || chain[3].Quorum != 3 {
		t.Fatalf("chain ends with %+v", chain[len(chain)-1])
	}
	for round, want := range map[uint64]uint64{0: 0, 99: 0, 100: 1, 109: 1, 110: 2, 119: 2, 120: 3, 1 << 40: 3} {
		if got := InForce(chain, round).Version; got != want {
			t.Errorf("in force in round %d: version %d, want %d", round, got, want)
		}
	}
	if _, err := VerifyFederationChain(f, [][]byte{u1, u3}); err == nil {
		t.Error("a chain with a version missing verified")
	}
	if _, err := VerifyFederationChain(f, [][]byte{u1, u2, u3old}); err == nil {
		t.Error("a chain whose last step is signed with a rotated-out key verified")
	}
}

func TestHostileUpdatesAreRefusedWithAClearError(t *testing.T) {
	f, ks := keyedFederation(t, 4)
	g := Genesis(f)
	next := &Federation{Name: "test", EpochPeriod: f.EpochPeriod, Members: members(ks[0], ks[1], ks[2])}
	v1, err := g.Next(next, 50)
	if err != nil {
		t.Fatal(err)
	}
	good := string(v1.Text())
	signAll := func(text string) []byte {
		t.Helper()
		n, err := note.Sign(&note.Note{Text: text}, ks[0].signer, ks[1].signer, ks[2].signer)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	outsider := newKeyedMember(t, "test/node9", 4999)
	lines := strings.Split(good, "\n")
	replace := func(i int, line string) string {
		l := append([]string(nil), lines...)
		l[i] = line
		return strings.Join(l, "\n")
	}
	tests := []struct {
		name string
		msg  []byte
		want string
	}{
		{"bare text without signatures", []byte(good), "not a signed note"},
		{"an oversized note", bytes.Repeat([]byte("a"), MaxFederationNote+1), "over the limit"},
		{"another federation's name", signAll(replace(0, "other/federation")), "cannot follow"},
		{"no /federation origin line", signAll(replace(0, "test/master")), "line 1"},
		{"a skipped version", signAll(replace(1, "version 2")), "does not follow"},
		{"a version with a leading zero", signAll(replace(1, "version 01")), "leading zeros"},
		{"a negative version", signAll(replace(1, "version -1")), "line 2"},
		{"a prev that is not the current hash", signAll(replace(2, "prev "+strings.Repeat("A", 43)+"=")), "prev is not the hash"},
		{"a prev of the wrong length", signAll(replace(2, "prev AAAA")), "line 3"},
		{"an effective round not after the current", signAll(replace(3, "effective 0")), "not after"},
		{"a changed epoch period", signAll(replace(4, "period 20")), "epoch period cannot change"},
		{"a zero period", signAll(replace(4, "period 0")), "out of range"},
		{"a quorum of half the members", signAll(replace(5, "quorum 1")), "quorum"},
		{"a quorum above the members", signAll(replace(5, "quorum 4")), "quorum"},
		{"members out of order", signAll(strings.Join([]string{lines[0], lines[1], lines[2], lines[3], lines[4], lines[5], lines[7], lines[6], lines[8], ""}, "\n")), "sorted by origin"},
		{"a member twice", signAll(strings.Join([]string{lines[0], lines[1], lines[2], lines[3], lines[4], lines[5], lines[6], lines[6], lines[8], ""}, "\n")), "sorted by origin"},
		{"a member line with two spaces", signAll(replace(6, strings.Replace(lines[6], " ", "  ", 1))), "line 7"},
		{"a member without fields", signAll(replace(6, "member x")), "line 7"},
		{"a peer ID that is not the key's", signAll(replace(6, strings.Replace(lines[6], ks[0].PeerID, ks[1].PeerID, 1))), "peer_id"},
		{"a carriage return", signAll(replace(5, "quorum 2\r")), "line 6"},
		{"no members", signAll(strings.Join(lines[:6], "\n") + "\n"), "lines"},
		{"too many addresses", signAll(replace(6, lines[6]+strings.Repeat(" /ip4/127.0.0.1/tcp/1", MaxMemberAddrs))), "addresses"},
		{"signed only by an outsider", sign(t, []byte(good), outsider.signer), "no current member"},
		{"a forged signature of a member", forge(t, signAll(good)), "invalid signature"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := CheckFederationUpdate(g, tc.msg)
			if err == nil {
				t.Fatalf("accepted: %+v", u)
			}
			if !errors.Is(err, ErrFederationUpdate) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want one wrapping ErrFederationUpdate that mentions %q", err, tc.want)
			}
		})
	}
	if u, err := CheckFederationUpdate(g, signAll(good)); err != nil || !u.Certified {
		t.Fatalf("the untampered update: %+v, %v", u, err)
	}
}

// forge flips a bit in the first signature of a signed note.
func forge(t *testing.T, msg []byte) []byte {
	t.Helper()
	i := bytes.Index(msg, []byte("\n\n— "))
	line := msg[i+2:]
	end := bytes.IndexByte(line, '\n')
	sig := line[:end]
	sp := bytes.LastIndexByte(sig, ' ')
	out := bytes.Clone(msg)
	pos := i + 2 + sp + 10 // a base64 character inside the signature bytes
	if out[pos] == 'A' {
		out[pos] = 'B'
	} else {
		out[pos] = 'A'
	}
	return out
}

func TestTwoConflictingUpdatesCannotBothBeCertified(t *testing.T) {
	// With a quorum over half the members, two different texts for one
	// version both certified need a member to sign both: each certifies
	// alone, but a chain holds only one of them.
	f, ks := keyedFederation(t, 4)
	g := Genesis(f)
	a, _ := g.Next(&Federation{Name: "test", EpochPeriod: f.EpochPeriod, Members: members(ks[0], ks[1], ks[2])}, 10)
	b, _ := g.Next(&Federation{Name: "test", EpochPeriod: f.EpochPeriod, Members: members(ks[1], ks[2], ks[3])}, 10)
	ua := sign(t, a.Text(), ks[0].signer, ks[1].signer, ks[2].signer)
	ub := sign(t, b.Text(), ks[1].signer, ks[2].signer, ks[3].signer)
	if _, err := VerifyFederationChain(f, [][]byte{ua, ub}); err == nil {
		t.Fatal("two updates for version 1 verified as a chain")
	}
	onlyTwo := sign(t, b.Text(), ks[3].signer, ks[0].signer)
	if u, err := CheckFederationUpdate(g, onlyTwo); err != nil || u.Certified {
		t.Fatalf("two of four signatures: %+v, %v; want pending", u, err)
	}
}

func TestSigningTwiceWithOneKeyKeepsOneSignature(t *testing.T) {
	f, ks := keyedFederation(t, 4)
	v1, _ := Genesis(f).Next(&Federation{Name: "test", EpochPeriod: f.EpochPeriod, Members: members(ks[0], ks[1], ks[2])}, 10)
	once := sign(t, v1.Text(), ks[0].signer)
	twice := sign(t, once, ks[0].signer)
	if bytes.Count(twice, []byte("\n— ")) != 1 {
		t.Fatalf("signed twice by one key:\n%s", twice)
	}
	u, err := CheckFederationUpdate(Genesis(f), sign(t, twice, ks[0].signer, ks[0].signer))
	if err != nil || len(u.Signers) != 1 {
		t.Fatalf("%+v, %v: one key counts once", u, err)
	}
}

func FuzzCheckFederationUpdate(f *testing.F) {
	fed, ks := keyedFederation(f, 4)
	g := Genesis(fed)
	v1, err := g.Next(&Federation{Name: "test", EpochPeriod: fed.EpochPeriod, Members: members(ks[0], ks[1], ks[2])}, 10)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sign(f, v1.Text(), ks[0].signer, ks[1].signer, ks[2].signer))
	f.Add(sign(f, v1.Text(), ks[3].signer))
	f.Add(g.Text())
	f.Add([]byte("test/federation\nversion 1\n\n— x y\n"))
	withDomains := &Federation{Name: "test", EpochPeriod: fed.EpochPeriod, Members: members(ks[0], ks[1], ks[2])}
	withDomains.Members[0].Domains = []string{"example.com", "a.example.com"}
	withDomains.Members[1].Domains = []string{"node1.example.com"}
	v1d, err := g.Next(withDomains, 10)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sign(f, v1d.Text(), ks[0].signer, ks[1].signer, ks[2].signer))
	f.Fuzz(func(t *testing.T, msg []byte) {
		u, err := CheckFederationUpdate(g, msg)
		if err != nil {
			if !errors.Is(err, ErrFederationUpdate) {
				t.Fatalf("error %v does not wrap ErrFederationUpdate", err)
			}
			return
		}
		if len(u.Signers) == 0 {
			t.Fatal("an update without a member's signature was accepted")
		}
		if u.Certified && len(u.Signers) < g.Quorum {
			t.Fatalf("certified with %d signers", len(u.Signers))
		}
		if !bytes.HasPrefix(msg, u.Next.Text()) {
			t.Fatal("the accepted text is not the note's text")
		}
		if err := u.Next.Validate(); err != nil {
			t.Fatalf("an accepted version does not validate (domains included): %v", err)
		}
	})
}

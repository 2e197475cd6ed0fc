package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// A federation changes by signed updates. The federation file is version 0
// (the genesis); version v+1 is a C2SP signed note whose text is the whole
// federation as it will be, and it takes effect when a quorum of version v's
// members (and every key new in it) signed it.
//
// The note text, every line ending in a newline:
//
//	<name>/federation
//	version <v>
//	prev <base64 SHA-256 of version v-1's note text>
//	effective <first round in which version v is in force>
//	period <epoch period in seconds>
//	quorum <q>
//	member <origin> <peer ID> <verifier key> <http URL or -> [<multiaddress> ...] [@<domain> ...]
//	...
//
// Members are sorted by origin, one line each; a member's domains follow
// its addresses, each after an '@' (addresses start with '/'), in the
// order of the file. A member without domains has none on its line, so a
// federation written before domains existed has the same text and hash. Numbers are decimal without
// leading zeros. The genesis text is the same with version 0, prev the
// base64 of 32 zero bytes, effective 0, and quorum the file's effective
// quorum, so that version 1's prev line names the exact genesis file it
// follows. For example:
//
//	testnet/federation
//	version 1
//	prev 3q2+7w...=
//	effective 180234
//	period 10
//	quorum 3
//	member testnet/node0 12D3KooW... testnet/node0+1a2b3c4d+AXs... http://127.0.0.1:8080 /ip4/127.0.0.1/tcp/4001
//	...
//
//	— testnet/node0 Gq3f...
//	— testnet/node2 9a8b...
//
// The signatures are ordinary note signatures: each member signs with the key
// the previous version lists for it (its key name is its origin); a member
// whose key changes, and a new member, also sign with the new key.

// Limits of a federation update.
const (
	// MaxFederationNote bounds a signed federation update (text and
	// signatures).
	MaxFederationNote = 64 << 10
	// MaxFederationMembers bounds the members of one version.
	MaxFederationMembers = 256
	// MaxMemberAddrs bounds the addresses of one member.
	MaxMemberAddrs = 8
	// MaxMemberDomains bounds the domains one member serves.
	MaxMemberDomains = 64
)

// ErrFederationUpdate is wrapped by every error about a federation update.
var ErrFederationUpdate = errors.New("federation update")

// FederationVersion is one version of a federation: the federation itself,
// its version number, the hash of the version before it and the round from
// which it is in force.
type FederationVersion struct {
	// Federation is the federation of this version; Quorum is explicit.
	Federation
	// Version is 0 for the genesis file, one more for each update.
	Version uint64
	// Prev is the SHA-256 of the previous version's note text (zero for
	// the genesis).
	Prev [32]byte
	// Effective is the first round in which this version is in force (0
	// for the genesis).
	Effective uint64
}

// Genesis returns f as version 0 of its federation.
func Genesis(f *Federation) *FederationVersion {
	g := &FederationVersion{Federation: *f}
	g.Quorum = f.EffectiveQuorum()
	g.Members = slices.Clone(f.Members)
	for i := range g.Members {
		g.Members[i].Addrs = slices.Clone(g.Members[i].Addrs)
		g.Members[i].Domains = slices.Clone(g.Members[i].Domains)
	}
	slices.SortFunc(g.Members, func(a, b Member) int { return strings.Compare(a.Origin, b.Origin) })
	return g
}

// Text is the version's note text (see the format above).
func (v *FederationVersion) Text() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s/federation\n", v.Name)
	fmt.Fprintf(&b, "version %d\n", v.Version)
	fmt.Fprintf(&b, "prev %s\n", base64.StdEncoding.EncodeToString(v.Prev[:]))
	fmt.Fprintf(&b, "effective %d\n", v.Effective)
	fmt.Fprintf(&b, "period %d\n", int64(v.EpochPeriod.Duration/time.Second))
	fmt.Fprintf(&b, "quorum %d\n", v.Quorum)
	for _, m := range v.Members {
		http := m.HTTP
		if http == "" {
			http = "-"
		}
		fmt.Fprintf(&b, "member %s %s %s %s", m.Origin, m.PeerID, m.Key, http)
		for _, a := range m.Addrs {
			fmt.Fprintf(&b, " %s", a)
		}
		for _, d := range m.Domains {
			fmt.Fprintf(&b, " @%s", d)
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Hash is the SHA-256 of the version's note text: the next version's prev.
func (v *FederationVersion) Hash() [32]byte { return sha256.Sum256(v.Text()) }

// Next returns version v+1 with the federation next, in force from round
// effective. It checks next (Validate) and that the name and epoch period
// stay the same, but not the signatures: sign Text() with SignFederationUpdate.
func (v *FederationVersion) Next(next *Federation, effective uint64) (*FederationVersion, error) {
	n := Genesis(next)
	n.Version, n.Prev, n.Effective = v.Version+1, v.Hash(), effective
	if err := n.check(v); err != nil {
		return nil, err
	}
	return n, nil
}

// check tests that v may follow prev, apart from the signatures.
func (v *FederationVersion) check(prev *FederationVersion) error {
	if err := v.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrFederationUpdate, err)
	}
	switch {
	case v.Name != prev.Name:
		return fmt.Errorf("%w: federation %q cannot follow federation %q", ErrFederationUpdate, v.Name, prev.Name)
	case v.Version != prev.Version+1:
		return fmt.Errorf("%w: version %d does not follow the current version %d", ErrFederationUpdate, v.Version, prev.Version)
	case v.Prev != prev.Hash():
		return fmt.Errorf("%w: version %d: prev is not the hash of the current version %d", ErrFederationUpdate, v.Version, prev.Version)
	case v.EpochPeriod != prev.EpochPeriod:
		return fmt.Errorf("%w: version %d: the epoch period cannot change (%s, was %s)", ErrFederationUpdate, v.Version, v.EpochPeriod.Duration, prev.EpochPeriod.Duration)
	case v.Effective <= prev.Effective:
		return fmt.Errorf("%w: version %d: effective round %d is not after version %d's round %d", ErrFederationUpdate, v.Version, v.Effective, prev.Version, prev.Effective)
	case len(v.Members) > MaxFederationMembers:
		return fmt.Errorf("%w: version %d: %d members, over the limit of %d", ErrFederationUpdate, v.Version, len(v.Members), MaxFederationMembers)
	}
	return nil
}

// ParseFederationText parses a federation version's note text (without
// signatures). It checks the syntax and the federation (Validate), not
// that it may follow any other version.
func ParseFederationText(text []byte) (*FederationVersion, error) {
	lines, err := federationLines(text)
	if err != nil {
		return nil, err
	}
	v, err := parseFederationHeader(lines)
	if err != nil {
		return nil, err
	}
	if err := v.parseMembers(lines); err != nil {
		return nil, err
	}
	if err := v.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFederationUpdate, err)
	}
	if !bytes.Equal(v.Text(), text) {
		return nil, fmt.Errorf("%w: the text is not in canonical form", ErrFederationUpdate)
	}
	return v, nil
}

// lineError is a federation text error at line (counted from 1).
func lineError(line int, format string, a ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrFederationUpdate, line, fmt.Sprintf(format, a...))
}

// federationLines checks a federation text's size and shape and splits
// it into lines: the 6 header lines, then one line per member.
func federationLines(text []byte) ([]string, error) {
	if len(text) > MaxFederationNote {
		return nil, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrFederationUpdate, len(text), MaxFederationNote)
	}
	if len(text) == 0 || text[len(text)-1] != '\n' {
		return nil, fmt.Errorf("%w: the text must end with a newline", ErrFederationUpdate)
	}
	lines := strings.Split(string(text[:len(text)-1]), "\n")
	if len(lines) < 7 {
		return nil, fmt.Errorf("%w: %d lines, want the 6 header lines and at least one member", ErrFederationUpdate, len(lines))
	}
	if len(lines)-6 > MaxFederationMembers {
		return nil, fmt.Errorf("%w: %d members, over the limit of %d", ErrFederationUpdate, len(lines)-6, MaxFederationMembers)
	}
	return lines, nil
}

// headerNumber parses header line i of the form "<key> <number>", the
// number in decimal without leading zeros.
func headerNumber(lines []string, i int, key string) (uint64, error) {
	s, ok := strings.CutPrefix(lines[i], key+" ")
	if !ok {
		return 0, lineError(i+1, "want %q, got %q", key+" <number>", lines[i])
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || strconv.FormatUint(n, 10) != s {
		return 0, lineError(i+1, "%s %q is not a decimal number without leading zeros", key, s)
	}
	return n, nil
}

// parseFederationHeader parses the 6 header lines: name, version, prev,
// effective round, epoch period and quorum.
func parseFederationHeader(lines []string) (*FederationVersion, error) {
	var v FederationVersion
	name, ok := strings.CutSuffix(lines[0], "/federation")
	if !ok || name == "" {
		return nil, lineError(1, "%q is not \"<name>/federation\"", lines[0])
	}
	v.Name = name
	var err error
	if v.Version, err = headerNumber(lines, 1, "version"); err != nil {
		return nil, err
	}
	prev, ok := strings.CutPrefix(lines[2], "prev ")
	raw, derr := base64.StdEncoding.Strict().DecodeString(prev)
	if !ok || derr != nil || len(raw) != 32 {
		return nil, lineError(3, "want \"prev <base64 of 32 bytes>\", got %q", lines[2])
	}
	copy(v.Prev[:], raw)
	if v.Effective, err = headerNumber(lines, 3, "effective"); err != nil {
		return nil, err
	}
	period, err := headerNumber(lines, 4, "period")
	if err != nil {
		return nil, err
	}
	if period == 0 || period > uint64(365*24*time.Hour/time.Second) {
		return nil, lineError(5, "period %d seconds is out of range", period)
	}
	v.EpochPeriod = Duration{time.Duration(period) * time.Second}
	q, err := headerNumber(lines, 5, "quorum")
	if err != nil {
		return nil, err
	}
	if q == 0 || q > MaxFederationMembers {
		return nil, lineError(6, "quorum %d is out of range", q)
	}
	v.Quorum = int(q)
	return &v, nil
}

// parseMembers parses the member lines after the header into v.Members,
// which must be sorted by origin, each once.
func (v *FederationVersion) parseMembers(lines []string) error {
	for i := 6; i < len(lines); i++ {
		f := strings.Split(lines[i], " ")
		if len(f) < 5 || f[0] != "member" {
			return lineError(i+1, "want \"member <origin> <peer ID> <key> <http or -> [<address> ...] [@<domain> ...]\", got %q", lines[i])
		}
		if slices.Contains(f, "") {
			return lineError(i+1, "empty field (fields are separated by one space)")
		}
		m := Member{Origin: f[1], PeerID: f[2], Key: f[3], HTTP: f[4]}
		if m.HTTP == "-" {
			m.HTTP = ""
		}
		for _, a := range f[5:] {
			if d, ok := strings.CutPrefix(a, "@"); ok {
				m.Domains = append(m.Domains, d)
			} else {
				m.Addrs = append(m.Addrs, a)
			}
		}
		if len(m.Addrs) > MaxMemberAddrs {
			return lineError(i+1, "%d addresses, over the limit of %d", len(m.Addrs), MaxMemberAddrs)
		}
		if len(m.Domains) > MaxMemberDomains {
			return lineError(i+1, "%d domains, over the limit of %d", len(m.Domains), MaxMemberDomains)
		}
		if len(v.Members) > 0 && v.Members[len(v.Members)-1].Origin >= m.Origin {
			return lineError(i+1, "member %q is not after %q: members are sorted by origin, each once", m.Origin, v.Members[len(v.Members)-1].Origin)
		}
		v.Members = append(v.Members, m)
	}
	return nil
}

// FederationUpdate is a signed federation update checked against the
// version it follows.
type FederationUpdate struct {
	// Next is the version the update makes.
	Next *FederationVersion
	// Signers are the origins of the current members whose signature
	// (with their current key) verified, sorted.
	Signers []string
	// Missing are the origins whose new key (a new member's, or a
	// member's rotated key) has not signed yet, sorted.
	Missing []string
	// Certified reports that a quorum of the current members and every
	// new key signed: the update takes effect.
	Certified bool
}

// CheckFederationUpdate parses a signed federation update and checks it
// against cur, the version in force before it: the text must be version
// cur.Version+1 of the same federation with prev = cur.Hash(), and every
// signature by a key it knows (a current member's key, or a key new in
// the update) must verify; signatures by unknown keys are ignored. The
// update is certified when a quorum of cur's members and every new key
// signed. An update with no signature of a current member is an error.
func CheckFederationUpdate(cur *FederationVersion, signed []byte) (*FederationUpdate, error) {
	next, err := signedUpdateText(cur, signed)
	if err != nil {
		return nil, err
	}
	keys, err := updateKeysFor(cur, next)
	if err != nil {
		return nil, err
	}
	n, err := note.Open(signed, note.VerifierList(keys.verifiers...))
	var unverified *note.UnverifiedNoteError
	if errors.As(err, &unverified) {
		return nil, fmt.Errorf("%w: version %d is signed by no current member", ErrFederationUpdate, next.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: version %d: %w", ErrFederationUpdate, next.Version, err)
	}
	return keys.tally(cur, next, n)
}

// signedUpdateText parses the text of a signed federation update and
// checks that it may follow cur.
func signedUpdateText(cur *FederationVersion, signed []byte) (*FederationVersion, error) {
	if len(signed) > MaxFederationNote {
		return nil, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrFederationUpdate, len(signed), MaxFederationNote)
	}
	text, _, ok := bytes.Cut(signed, []byte("\n\n"))
	if !ok {
		return nil, fmt.Errorf("%w: not a signed note (no blank line before the signatures)", ErrFederationUpdate)
	}
	next, err := ParseFederationText(signed[:len(text)+1]) // the text and its newline, without writing into signed
	if err != nil {
		return nil, err
	}
	if err := next.check(cur); err != nil {
		return nil, err
	}
	return next, nil
}

// keyRole is whose a verifier key is.
type keyRole struct {
	origin  string
	current bool // a current member's key; otherwise a new key
}

// updateKeys are the keys a federation update may be signed with: the
// current members' keys and the keys new in the update.
type updateKeys struct {
	roles     map[string]keyRole // by verifier key
	verifiers []note.Verifier
	newKeys   map[string]string // verifier key → origin
}

// updateKeysFor collects the keys of cur's members, then the keys of
// next's members that cur does not know.
func updateKeysFor(cur, next *FederationVersion) (*updateKeys, error) {
	k := &updateKeys{roles: map[string]keyRole{}, newKeys: map[string]string{}}
	for _, m := range cur.Members {
		if err := k.add(m.Key, m.Origin, true); err != nil {
			return nil, err
		}
	}
	for _, m := range next.Members {
		if _, known := k.roles[m.Key]; !known {
			k.newKeys[m.Key] = m.Origin
			if err := k.add(m.Key, m.Origin, false); err != nil {
				return nil, err
			}
		}
	}
	return k, nil
}

// add adds a verifier key of origin, once.
func (k *updateKeys) add(key, origin string, current bool) error {
	if _, dup := k.roles[key]; dup {
		return nil
	}
	v, err := note.NewVerifier(key)
	if err != nil {
		return fmt.Errorf("%w: key of %q: %w", ErrFederationUpdate, origin, err)
	}
	k.roles[key] = keyRole{origin, current}
	k.verifiers = append(k.verifiers, v)
	return nil
}

// tally sorts the verified signatures of n into current signers and
// new keys, and reports whether the update to next is certified.
func (k *updateKeys) tally(cur, next *FederationVersion, n *note.Note) (*FederationUpdate, error) {
	byHash := map[string]string{} // name+hash → verifier key
	for key := range k.roles {
		v, _ := note.NewVerifier(key)
		byHash[fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash())] = key
	}
	u := &FederationUpdate{Next: next}
	signedNew := map[string]bool{}
	for _, s := range n.Sigs {
		key := byHash[fmt.Sprintf("%s+%08x", s.Name, s.Hash)]
		r := k.roles[key]
		if r.current {
			u.Signers = append(u.Signers, r.origin)
		} else {
			signedNew[key] = true
		}
	}
	if len(u.Signers) == 0 {
		return nil, fmt.Errorf("%w: version %d is signed by no current member", ErrFederationUpdate, next.Version)
	}
	for key, origin := range k.newKeys {
		if !signedNew[key] {
			u.Missing = append(u.Missing, origin)
		}
	}
	slices.Sort(u.Signers)
	u.Signers = slices.Compact(u.Signers)
	slices.Sort(u.Missing)
	u.Certified = len(u.Signers) >= cur.Quorum && len(u.Missing) == 0
	return u, nil
}

// SignFederationUpdate adds signer's signature to a federation update
// (a signed note, or its bare text ending in a newline). Signatures
// already on it are kept; one by the same key is replaced.
func SignFederationUpdate(msg []byte, signer note.Signer) ([]byte, error) {
	if len(msg) > MaxFederationNote {
		return nil, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrFederationUpdate, len(msg), MaxFederationNote)
	}
	var n *note.Note
	if bytes.Contains(msg, []byte("\n\n")) {
		var err error
		// Open with no known keys: every signature is kept unverified.
		n, err = note.Open(msg, note.VerifierList())
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			n = unverified.Note
		} else if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrFederationUpdate, err)
		}
		n.Sigs, n.UnverifiedSigs = n.UnverifiedSigs, nil
	} else {
		n = &note.Note{Text: string(msg)}
	}
	if _, err := ParseFederationText([]byte(n.Text)); err != nil {
		return nil, err
	}
	out, err := note.Sign(n, signer)
	if err != nil {
		return nil, fmt.Errorf("%w: signing: %w", ErrFederationUpdate, err)
	}
	return out, nil
}

// VerifyFederationChain checks a chain of signed updates starting at the
// genesis federation file: each must be certified by the version before it.
// It returns every version, the genesis first.
func VerifyFederationChain(genesis *Federation, updates [][]byte) ([]*FederationVersion, error) {
	if err := genesis.Validate(); err != nil {
		return nil, err
	}
	chain := []*FederationVersion{Genesis(genesis)}
	for i, signed := range updates {
		cur := chain[len(chain)-1]
		u, err := CheckFederationUpdate(cur, signed)
		if err != nil {
			return nil, fmt.Errorf("update %d: %w", i+1, err)
		}
		if !u.Certified {
			return nil, fmt.Errorf("update %d: %w: version %d is not certified (signed by %d of the %d needed; new keys not signed: %v)",
				i+1, ErrFederationUpdate, u.Next.Version, len(u.Signers), cur.Quorum, u.Missing)
		}
		chain = append(chain, u.Next)
	}
	return chain, nil
}

// InForce returns the version of chain in force in round: the last whose
// effective round is at most round. chain is ordered by version, as
// VerifyFederationChain returns it.
func InForce(chain []*FederationVersion, round uint64) *FederationVersion {
	for i := len(chain) - 1; i > 0; i-- {
		if chain[i].Effective <= round {
			return chain[i]
		}
	}
	return chain[0]
}

// ServedDomains returns the account domains member origin serves by the
// latest version of chain that lists it (what its portal's Config.Domains
// is): none for an empty chain (a node alone) or a node no version lists,
// and none for a member whose entry lists no domains (it serves every
// name).
func ServedDomains(chain []*FederationVersion, origin string) []string {
	for i := len(chain) - 1; i >= 0; i-- {
		if m, ok := chain[i].Member(origin); ok {
			return slices.Clone(m.Domains)
		}
	}
	return nil
}

// MergeFederationSignatures returns the update a with the signatures of b
// added: both must be signed notes of the same text. Signature lines are
// kept once each, a's first; the result is at most MaxFederationNote.
func MergeFederationSignatures(a, b []byte) ([]byte, error) {
	ta, sa, okA := bytes.Cut(a, []byte("\n\n"))
	tb, sb, okB := bytes.Cut(b, []byte("\n\n"))
	if !okA || !okB {
		return nil, fmt.Errorf("%w: merging signatures: not a signed note", ErrFederationUpdate)
	}
	if !bytes.Equal(ta, tb) {
		return nil, fmt.Errorf("%w: merging signatures of two different texts", ErrFederationUpdate)
	}
	out := append(bytes.Clone(ta), '\n', '\n')
	seen := map[string]bool{}
	for _, sigs := range [][]byte{sa, sb} {
		for _, line := range strings.SplitAfter(string(sigs), "\n") {
			if line == "" || seen[line] {
				continue
			}
			if !strings.HasSuffix(line, "\n") {
				return nil, fmt.Errorf("%w: merging signatures: the note does not end with a newline", ErrFederationUpdate)
			}
			seen[line] = true
			out = append(out, line...)
		}
	}
	if len(out) > MaxFederationNote {
		return nil, fmt.Errorf("%w: merged update is %d bytes, over the limit of %d", ErrFederationUpdate, len(out), MaxFederationNote)
	}
	return out, nil
}

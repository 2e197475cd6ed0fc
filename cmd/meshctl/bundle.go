package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/intermesh/intermesh/audit"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/vmap"
)

// Proof bundles (docs/formats.md, "Proof bundles"): what 'meshctl get
// --verify --proof-out FILE' proved, in a strict line-based text that
// 'meshctl verify-proof FILE' checks offline later. The layout follows
// C2SP tlog-proof (a header line, keyword lines, base64 inclusion hashes
// one a line after the line they prove, a blank line, then the signed
// checkpoint note), extended with the query, the time freshness was
// judged at, the answer's records, the map lookup proofs, the certificate
// record and a second note, the answering node's own checkpoint. A
// latest version signed by an online key brings its predecessors
// (portal.GetProof.Predecessors), one "predecessor" line each, oldest
// first, and the history value before them on a "history" line:
//
//	intermesh.org/get-proof@v1
//	query account alice@example.com
//	time 2026-12-07T21:03:04Z
//	record 12 AQAAAAAAAAAMGHf...
//	gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
//	account 11 AQAAAAAAAAALGHf...
//	B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
//	predecessor 7 AQAAAAAAAAAHGHf...
//	3KQp3cGk0kM4GmD0cc9hIFo6nXnULm3YJ0oQyXkBzX8=
//	history AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
//	map account alice@example.com AAADYA...
//	map profile MDEV-... AAAEIA...
//	certificate 30 AQAAAAAAAAAeGHf...
//	EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
//
//	testnet/node0
//	13
//	...
//	— testnet/node0 hI2DJw...
//
//	testnet/node0
//	31
//	...
//	— testnet/node0 mJirIk...

// bundleHeader is a proof bundle's first line.
const bundleHeader = "intermesh.org/get-proof@v1"

// maxBundleSize bounds the bundle file verify-proof reads.
const maxBundleSize = 64 << 20

// errBundle is the sentinel of every bundle format error.
var errBundle = errors.New("malformed proof bundle")

// proofBundle is what proved Get answers say of its query, at a time:
// one answer (bundleAnswer), or for a lookup by identifier alone one
// answer per member origin (sections, bundle_origins.go), all under one
// certificate.
type proofBundle struct {
	query latestQuery
	// at is when the client judged freshness (UTC, whole seconds).
	at time.Time
	bundleAnswer
	sections []bundleSection
	// cert is the MasterHash record holding the certificate, proved in
	// nodeCheckpoint, the answering node's own checkpoint.
	cert           bundleRecord
	nodeCheckpoint string
}

// bundleAnswer is one Get answer of a bundle, under one checkpoint.
type bundleAnswer struct {
	// records are the answer's items, and account the account's latest
	// record (a Get by account).
	records []bundleRecord
	account *bundleRecord
	// predecessors are the versions before an online-signed latest,
	// oldest first, and history the history value before them.
	predecessors []bundleRecord
	history      []byte
	maps         []portal.MapProof
	// checkpoint is the signed note the answer is under.
	checkpoint string
}

// bundleRecord is a log record: its index, leaf and inclusion proof.
type bundleRecord struct {
	index     uint64
	leaf      []byte
	inclusion [][]byte
}

// newProofBundle bundles resp, an answer about q verified at at, and the
// certificate proof cp whose certified checkpoint it is under.
func newProofBundle(q latestQuery, at time.Time, resp *portal.GetResponse, cp *portal.CertificateProof) (*proofBundle, error) {
	b, err := newBundle(q, at, cp)
	if err != nil {
		return nil, err
	}
	if b.bundleAnswer, err = answerOf(resp); err != nil {
		return nil, err
	}
	return b, nil
}

// newBundle is a bundle of q at at under the certificate proof cp, with
// no answer yet.
func newBundle(q latestQuery, at time.Time, cp *portal.CertificateProof) (*proofBundle, error) {
	if cp == nil {
		return nil, errors.New("the answer carries no certificate proof to bundle")
	}
	return &proofBundle{query: q, at: at.UTC().Truncate(time.Second),
		cert: bundleRecord{cp.RecordIndex, cp.RecordLeaf, cp.RecordInclusion}, nodeCheckpoint: cp.Checkpoint}, nil
}

// answerOf is the bundle's form of a proved Get answer.
func answerOf(resp *portal.GetResponse) (bundleAnswer, error) {
	if resp == nil || resp.Proof == nil {
		return bundleAnswer{}, errors.New("the answer carries no proof to bundle")
	}
	a := bundleAnswer{maps: resp.Proof.Map, checkpoint: resp.Proof.Checkpoint}
	for _, d := range resp.DataItems {
		if d.Index == nil {
			return a, fmt.Errorf("entry %s has no index", d.Identifier)
		}
		a.records = append(a.records, bundleRecord{*d.Index, d.Leaf, d.Inclusion})
	}
	if r := resp.Proof.Account; r != nil {
		if r.Index == nil {
			return a, errors.New("the account record has no index")
		}
		a.account = &bundleRecord{*r.Index, r.Leaf, r.Inclusion}
	}
	for _, d := range resp.Proof.Predecessors {
		if d.Index == nil {
			return a, fmt.Errorf("a predecessor of %s has no index", d.Identifier)
		}
		a.predecessors = append(a.predecessors, bundleRecord{*d.Index, d.Leaf, d.Inclusion})
	}
	if len(a.predecessors) > 0 {
		a.history = resp.Proof.HistoryBefore
	}
	return a, nil
}

// certProof is the certificate proof the bundle holds.
func (b *proofBundle) certProof() *portal.CertificateProof {
	return &portal.CertificateProof{Checkpoint: b.nodeCheckpoint, RecordIndex: b.cert.index,
		RecordLeaf: b.cert.leaf, RecordInclusion: b.cert.inclusion}
}

// response rebuilds the Get answer the bundle holds (its single form).
func (b *proofBundle) response() *portal.GetResponse {
	return b.getResponse(b.certProof())
}

// getResponse rebuilds the Get answer a holds, under the certificate
// proof cp: each item's fields are read from its leaf (verification
// checks the leaf, not them).
func (a *bundleAnswer) getResponse(cp *portal.CertificateProof) *portal.GetResponse {
	resp := &portal.GetResponse{Proof: &portal.GetProof{Checkpoint: a.checkpoint, Map: a.maps, Certificate: cp}}
	for _, r := range a.records {
		resp.DataItems = append(resp.DataItems, r.item())
	}
	if a.account != nil {
		it := a.account.item()
		resp.Proof.Account = &it
	}
	for _, r := range a.predecessors {
		resp.Proof.Predecessors = append(resp.Proof.Predecessors, r.item())
	}
	resp.Proof.HistoryBefore = a.history
	return resp
}

// item is the DataItem a record's leaf describes.
func (r bundleRecord) item() portal.DataItem {
	idx := r.index
	d := portal.DataItem{Index: &idx, Leaf: r.leaf, Inclusion: r.inclusion}
	l, err := audit.ParseLeaf(r.leaf)
	if err != nil {
		return d
	}
	d.Time, d.Kind, d.Identifier, d.Account, d.Origin = &l.Time, l.Kind, l.Identifier, l.Account, l.Origin
	var m struct {
		PortalEntry struct{ Entry json.RawMessage }
	}
	if json.Unmarshal(l.Payload, &m) == nil {
		d.Entry = m.PortalEntry.Entry
	}
	return d
}

// MarshalText writes the bundle in its canonical form.
func (b *proofBundle) MarshalText() ([]byte, error) {
	var w bytes.Buffer
	fmt.Fprintln(&w, bundleHeader)
	if b.query.account != "" {
		fmt.Fprintf(&w, "query account %s\n", b.query.account)
	} else {
		fmt.Fprintf(&w, "query id %s\n", b.query.id)
	}
	fmt.Fprintf(&w, "time %s\n", b.at.UTC().Format(time.RFC3339))
	for _, s := range b.sections {
		fmt.Fprintf(&w, "origin %s\n", s.origin)
		s.write(&w)
	}
	if len(b.sections) == 0 {
		b.bundleAnswer.write(&w)
	}
	b.cert.write(&w, "certificate")
	for _, a := range b.answers() {
		fmt.Fprintf(&w, "\n%s", a.checkpoint)
	}
	fmt.Fprintf(&w, "\n%s", b.nodeCheckpoint)
	out := w.Bytes()
	// Only what parses back is written: a name or note the format
	// cannot carry is refused here, not by the reader.
	if _, err := parseProofBundle(out); err != nil {
		return nil, err
	}
	return out, nil
}

// write writes the answer's keyword lines.
func (a *bundleAnswer) write(w *bytes.Buffer) {
	for _, r := range a.records {
		r.write(w, "record")
	}
	if a.account != nil {
		a.account.write(w, "account")
	}
	for _, r := range a.predecessors {
		r.write(w, "predecessor")
	}
	if a.history != nil {
		fmt.Fprintf(w, "history %s\n", base64.StdEncoding.EncodeToString(a.history))
	}
	for _, m := range a.maps {
		fmt.Fprintf(w, "map %s %s %s\n", m.Namespace, m.Name, base64.StdEncoding.EncodeToString(m.Proof))
	}
}

// answers are the bundle's answers: its sections', in order, or its one.
func (b *proofBundle) answers() []*bundleAnswer {
	if len(b.sections) == 0 {
		return []*bundleAnswer{&b.bundleAnswer}
	}
	var as []*bundleAnswer
	for i := range b.sections {
		as = append(as, &b.sections[i].bundleAnswer)
	}
	return as
}

// write writes the record's keyword line and its inclusion hashes.
func (r bundleRecord) write(w *bytes.Buffer, keyword string) {
	fmt.Fprintf(w, "%s %d %s\n", keyword, r.index, base64.StdEncoding.EncodeToString(r.leaf))
	for _, h := range r.inclusion {
		fmt.Fprintln(w, base64.StdEncoding.EncodeToString(h))
	}
}

// bundleParser reads a bundle line by line.
type bundleParser struct {
	lines []string
	n     int // the next line, 0-based
	b     proofBundle
	cur   *bundleAnswer // the answer the keyword lines are of
	seen  map[string]bool
	stage int
}

// bundleStages orders the keyword lines; a keyword may not come after
// one of a later stage.
// An origin line starts a section, whose lines start again from the
// record stage (bundle_origins.go).
var bundleStages = map[string]int{"query": 1, "time": 2, "origin": 3, "record": 4, "account": 5, "predecessor": 6, "history": 7, "map": 8, "certificate": 9}

// repeatable are the keyword lines a bundle (or a section) may hold more
// than one of.
var repeatable = map[string]bool{"record": true, "predecessor": true, "map": true}

// parseProofBundle parses a bundle, refusing anything but the canonical
// form: unknown, repeated or misplaced lines, numbers with leading zeros,
// base64 that does not re-encode to itself, hashes of another size, a
// missing line, and anything after the second note.
func parseProofBundle(data []byte) (*proofBundle, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: not UTF-8 text", errBundle)
	}
	if !bytes.HasSuffix(data, []byte("\n")) {
		return nil, fmt.Errorf("%w: it does not end with a newline", errBundle)
	}
	p := &bundleParser{lines: strings.Split(strings.TrimSuffix(string(data), "\n"), "\n"), seen: map[string]bool{}}
	p.cur = &p.b.bundleAnswer
	if p.lines[0] != bundleHeader {
		return nil, fmt.Errorf("%w: line 1 is %q, want %q", errBundle, p.lines[0], bundleHeader)
	}
	p.n = 1
	if err := p.keywordLines(); err != nil {
		return nil, err
	}
	for _, k := range []string{"query", "time", "certificate"} {
		if !p.seen[k] {
			return nil, fmt.Errorf("%w: no %s line", errBundle, k)
		}
	}
	if err := p.notes(); err != nil {
		return nil, err
	}
	var err error
	if p.b.nodeCheckpoint, err = p.note("the node's checkpoint"); err != nil {
		return nil, err
	}
	if p.n != len(p.lines) {
		return nil, p.errorf("trailing text after the node's checkpoint")
	}
	return &p.b, nil
}

// notes checks each answer's predecessor and history lines, and reads
// the checkpoint each answer is under, each note followed by a blank line.
func (p *bundleParser) notes() error {
	for i, a := range p.b.answers() {
		what, section := "the answer's checkpoint", ""
		if len(p.b.sections) > 0 {
			section = p.b.sections[i].origin + "'s section: "
			what = "the checkpoint of " + p.b.sections[i].origin + "'s section"
		}
		if (len(a.predecessors) > 0) != (a.history != nil) {
			return fmt.Errorf("%w: %spredecessor lines come with one history line, and a history line with predecessors", errBundle, section)
		}
		var err error
		if a.checkpoint, err = p.note(what); err != nil {
			return err
		}
		if p.n == len(p.lines) || p.lines[p.n] != "" {
			return p.errorf("want a blank line, then the next checkpoint")
		}
		p.n++
	}
	return nil
}

// keywordLines reads the lines up to the blank line before the notes.
func (p *bundleParser) keywordLines() error {
	var last *bundleRecord // the record whose inclusion hashes follow
	for ; p.n < len(p.lines); p.n++ {
		line := p.lines[p.n]
		if line == "" {
			p.n++
			return nil
		}
		if !strings.Contains(line, " ") {
			if last == nil {
				return p.errorf("%q is neither a keyword line nor a hash after a record", line)
			}
			h, err := decodeBase64(line)
			if err != nil || len(h) != 32 {
				return p.errorf("an inclusion hash must be 32 bytes in base64: %q", line)
			}
			last.inclusion = append(last.inclusion, h)
			continue
		}
		keyword, rest, _ := strings.Cut(line, " ")
		stage, ok := bundleStages[keyword]
		switch {
		case keyword == "origin":
			last = nil
			if err := p.originLine(rest); err != nil {
				return err
			}
			continue
		case !ok:
			return p.errorf("unknown line %q", keyword)
		case stage < p.stage || (stage == p.stage && !repeatable[keyword]):
			if p.seen[keyword] && !repeatable[keyword] {
				return p.errorf("repeated %s line", keyword)
			}
			return p.errorf("the %s line is out of order", keyword)
		}
		p.stage, p.seen[keyword] = stage, true
		var err error
		if last, err = p.keywordLine(keyword, rest); err != nil {
			return err
		}
	}
	return p.errorf("no blank line before the checkpoints")
}

// keywordLine parses one keyword line, and returns the record it starts
// (nil for a line without inclusion hashes).
func (p *bundleParser) keywordLine(keyword, rest string) (*bundleRecord, error) {
	f := strings.Split(rest, " ")
	switch keyword {
	case "query":
		if len(f) != 2 || f[1] == "" || (f[0] != "id" && f[0] != "account") {
			return nil, p.errorf("want 'query id UDF' or 'query account NAME'")
		}
		p.b.query = latestQuery{id: f[1]}
		if f[0] == "account" {
			p.b.query = latestQuery{account: f[1]}
		}
	case "time":
		t, err := time.Parse(time.RFC3339, rest)
		if err != nil || t.UTC().Format(time.RFC3339) != rest {
			return nil, p.errorf("want 'time' and a UTC time like 2026-12-07T21:03:04Z, got %q", rest)
		}
		p.b.at = t.UTC()
	case "map":
		return nil, p.mapLine(f)
	case "history":
		h, err := decodeBase64(rest)
		if err != nil || len(h) != 32 {
			return nil, p.errorf("the history value must be 32 bytes in base64: %q", rest)
		}
		p.cur.history = h
	default: // record, account, predecessor, certificate
		r, err := p.recordLine(keyword, f)
		if err != nil {
			return nil, err
		}
		a := p.cur
		switch keyword {
		case "record":
			a.records = append(a.records, r)
			return &a.records[len(a.records)-1], nil
		case "account":
			a.account = &r
			return a.account, nil
		case "predecessor":
			a.predecessors = append(a.predecessors, r)
			return &a.predecessors[len(a.predecessors)-1], nil
		}
		p.b.cert = r
		return &p.b.cert, nil
	}
	return nil, nil
}

// recordLine parses "KEYWORD INDEX LEAF".
func (p *bundleParser) recordLine(keyword string, f []string) (bundleRecord, error) {
	if len(f) != 2 {
		return bundleRecord{}, p.errorf("want '%s INDEX LEAF'", keyword)
	}
	i, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil || strconv.FormatUint(i, 10) != f[0] {
		return bundleRecord{}, p.errorf("%s index %q is not a decimal number without leading zeros", keyword, f[0])
	}
	for _, r := range p.cur.records {
		if keyword == "record" && r.index == i {
			return bundleRecord{}, p.errorf("repeated record %d", i)
		}
	}
	for _, r := range p.cur.predecessors {
		if keyword == "predecessor" && r.index == i {
			return bundleRecord{}, p.errorf("repeated predecessor %d", i)
		}
	}
	leaf, err := decodeBase64(f[1])
	if err != nil || len(leaf) == 0 {
		return bundleRecord{}, p.errorf("%s %d: the leaf is not base64: %v", keyword, i, err)
	}
	return bundleRecord{index: i, leaf: leaf}, nil
}

// mapLine parses "map NAMESPACE NAME PROOF".
func (p *bundleParser) mapLine(f []string) error {
	if len(f) != 3 || f[1] == "" {
		return p.errorf("want 'map NAMESPACE NAME PROOF'")
	}
	switch vmap.Namespace(f[0]) {
	case vmap.Profile, vmap.Escrow, vmap.Account:
	default:
		return p.errorf("unknown map namespace %q", f[0])
	}
	for _, m := range p.cur.maps {
		if m.Namespace == f[0] && m.Name == f[1] {
			return p.errorf("repeated map proof of %s %s", f[0], f[1])
		}
	}
	proof, err := decodeBase64(f[2])
	if err != nil || len(proof) == 0 {
		return p.errorf("the map proof of %s %s is not base64: %v", f[0], f[1], err)
	}
	p.cur.maps = append(p.cur.maps, portal.MapProof{Namespace: f[0], Name: f[1], Proof: proof})
	return nil
}

// note reads a signed note: its text lines, a blank line and its
// signature lines ("— NAME SIGNATURE"), up to the next other line.
func (p *bundleParser) note(what string) (string, error) {
	start := p.n
	for p.n < len(p.lines) && p.lines[p.n] != "" {
		p.n++
	}
	if p.n == start || p.n == len(p.lines) {
		return "", p.errorf("%s: want the note's text, a blank line and its signatures", what)
	}
	p.n++
	sigs := p.n
	for p.n < len(p.lines) && strings.HasPrefix(p.lines[p.n], "— ") {
		if slices.Contains(p.lines[sigs:p.n], p.lines[p.n]) {
			return "", p.errorf("%s: repeated signature line", what)
		}
		p.n++
	}
	if p.n == sigs {
		return "", p.errorf("%s: no signature line", what)
	}
	return strings.Join(p.lines[start:p.n], "\n") + "\n", nil
}

// errorf is a format error at the current line.
func (p *bundleParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", errBundle, p.n+1, fmt.Sprintf(format, args...))
}

// decodeBase64 decodes standard base64 that re-encodes to itself.
func decodeBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err == nil && base64.StdEncoding.EncodeToString(b) != s {
		err = errors.New("not in canonical form")
	}
	return b, err
}

// bundleVerdict is what verifying a bundle proved, as of its time, and
// whether its certificate is still fresh now.
type bundleVerdict struct {
	Query string
	// AsOf is the time the bundle records: freshness was judged then.
	AsOf  time.Time
	Items []getItem
	Proof getVerification
	// Origins are what a bundle of sections proved of each member's log
	// (Proof then says what they prove together).
	Origins []originVerdict `json:",omitempty"`
	// Now is when this verification ran, and StillFresh whether the
	// certificate is recent enough now too (Stale says why not).
	Now        time.Time
	StillFresh bool
	Stale      string `json:",omitempty"`
}

// verifyBundle re-checks a bundle offline with the federation's keys:
// the certificate, the answer under the checkpoint it covers and the map
// proofs, with freshness judged at the bundle's time, which may not be
// after now.
func verifyBundle(keys *getVerifier, b *proofBundle, now time.Time) bundleVerdict {
	out := bundleVerdict{Query: b.query.String(), AsOf: b.at, Now: now.UTC().Truncate(time.Second)}
	verify := b.verifyAnswer
	if len(b.sections) > 0 {
		verify = b.verifySections
	}
	cert, err := verify(keys, &out)
	switch {
	case b.at.After(now.Add(keys.skew)):
		out.Origins = nil
		out.Proof = getVerification{Failed: fmt.Sprintf("the bundle's time %s is after this machine's time %s", b.at.Format(time.RFC3339), out.Now.Format(time.RFC3339))}
	case err != nil:
		out.Proof.Failed = err.Error()
	default:
		if err := checkFresh(keys, cert.round, now); err != nil {
			out.Stale = err.Error()
		} else {
			out.StillFresh = true
		}
	}
	return out
}

// verifyAnswer proves the bundle's one answer as of its time into out,
// and returns the certificate it is under (an error: none verifies).
func (b *proofBundle) verifyAnswer(keys *getVerifier, out *bundleVerdict) (certified, error) {
	resp := b.response()
	out.Items = itemsOf(resp)
	cert, err := certifiedOf(keys, resp)
	if err != nil {
		return cert, err
	}
	out.Proof = verifyLatest(keys, cert, b.query, resp, b.at)
	return cert, nil
}

// String names the query as the bundle's query line does.
func (q latestQuery) String() string {
	if q.account != "" {
		return "account " + q.account
	}
	return "id " + q.id
}

// writeBundleFile writes data to path, mode 0644, replacing it whole.
func writeBundleFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".proof-bundle-*")
	if err != nil {
		return fmt.Errorf("writing the proof bundle: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("writing the proof bundle %s: %w", path, err)
	}
	return nil
}

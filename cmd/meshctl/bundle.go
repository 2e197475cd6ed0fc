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

// proofBundle is what a proved Get answer says of its query, at a time.
type proofBundle struct {
	query latestQuery
	// at is when the client judged freshness (UTC, whole seconds).
	at time.Time
	// records are the answer's items, and account the account's latest
	// record (a Get by account).
	records []bundleRecord
	account *bundleRecord
	// predecessors are the versions before an online-signed latest,
	// oldest first, and history the history value before them.
	predecessors []bundleRecord
	history      []byte
	maps         []portal.MapProof
	// cert is the MasterHash record holding the certificate, proved in
	// nodeCheckpoint, the answering node's own checkpoint.
	cert bundleRecord
	// checkpoint is the signed note the answer is under.
	checkpoint, nodeCheckpoint string
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
	if resp.Proof == nil || cp == nil {
		return nil, errors.New("the answer carries no proof to bundle")
	}
	b := &proofBundle{query: q, at: at.UTC().Truncate(time.Second), maps: resp.Proof.Map,
		cert:       bundleRecord{cp.RecordIndex, cp.RecordLeaf, cp.RecordInclusion},
		checkpoint: resp.Proof.Checkpoint, nodeCheckpoint: cp.Checkpoint}
	for _, d := range resp.DataItems {
		if d.Index == nil {
			return nil, fmt.Errorf("entry %s has no index", d.Identifier)
		}
		b.records = append(b.records, bundleRecord{*d.Index, d.Leaf, d.Inclusion})
	}
	if a := resp.Proof.Account; a != nil {
		if a.Index == nil {
			return nil, errors.New("the account record has no index")
		}
		b.account = &bundleRecord{*a.Index, a.Leaf, a.Inclusion}
	}
	for _, d := range resp.Proof.Predecessors {
		if d.Index == nil {
			return nil, fmt.Errorf("a predecessor of %s has no index", d.Identifier)
		}
		b.predecessors = append(b.predecessors, bundleRecord{*d.Index, d.Leaf, d.Inclusion})
	}
	if len(b.predecessors) > 0 {
		b.history = resp.Proof.HistoryBefore
	}
	return b, nil
}

// response rebuilds the Get answer the bundle holds: each item's fields
// are read from its leaf (verification checks the leaf, not them).
func (b *proofBundle) response() *portal.GetResponse {
	resp := &portal.GetResponse{Proof: &portal.GetProof{Checkpoint: b.checkpoint, Map: b.maps,
		Certificate: &portal.CertificateProof{Checkpoint: b.nodeCheckpoint, RecordIndex: b.cert.index,
			RecordLeaf: b.cert.leaf, RecordInclusion: b.cert.inclusion}}}
	for _, r := range b.records {
		resp.DataItems = append(resp.DataItems, r.item())
	}
	if b.account != nil {
		it := b.account.item()
		resp.Proof.Account = &it
	}
	for _, r := range b.predecessors {
		resp.Proof.Predecessors = append(resp.Proof.Predecessors, r.item())
	}
	resp.Proof.HistoryBefore = b.history
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
	for _, r := range b.records {
		r.write(&w, "record")
	}
	if b.account != nil {
		b.account.write(&w, "account")
	}
	for _, r := range b.predecessors {
		r.write(&w, "predecessor")
	}
	if b.history != nil {
		fmt.Fprintf(&w, "history %s\n", base64.StdEncoding.EncodeToString(b.history))
	}
	for _, m := range b.maps {
		fmt.Fprintf(&w, "map %s %s %s\n", m.Namespace, m.Name, base64.StdEncoding.EncodeToString(m.Proof))
	}
	b.cert.write(&w, "certificate")
	fmt.Fprintf(&w, "\n%s\n%s", b.checkpoint, b.nodeCheckpoint)
	out := w.Bytes()
	// Only what parses back is written: a name or note the format
	// cannot carry is refused here, not by the reader.
	if _, err := parseProofBundle(out); err != nil {
		return nil, err
	}
	return out, nil
}

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
	seen  map[string]bool
	stage int
}

// bundleStages orders the keyword lines; a keyword may not come after
// one of a later stage.
var bundleStages = map[string]int{"query": 1, "time": 2, "record": 3, "account": 4, "predecessor": 5, "history": 6, "map": 7, "certificate": 8}

// repeatable are the keyword lines a bundle may hold more than one of.
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
	if p.seen["predecessor"] != p.seen["history"] {
		return nil, fmt.Errorf("%w: predecessor lines come with one history line, and a history line with predecessors", errBundle)
	}
	var err error
	if p.b.checkpoint, err = p.note("the answer's checkpoint"); err != nil {
		return nil, err
	}
	if p.n == len(p.lines) || p.lines[p.n] != "" {
		return nil, p.errorf("want a blank line, then the node's checkpoint")
	}
	p.n++
	if p.b.nodeCheckpoint, err = p.note("the node's checkpoint"); err != nil {
		return nil, err
	}
	if p.n != len(p.lines) {
		return nil, p.errorf("trailing text after the node's checkpoint")
	}
	return &p.b, nil
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
		p.b.history = h
	default: // record, account, predecessor, certificate
		r, err := p.recordLine(keyword, f)
		if err != nil {
			return nil, err
		}
		switch keyword {
		case "record":
			p.b.records = append(p.b.records, r)
			return &p.b.records[len(p.b.records)-1], nil
		case "account":
			p.b.account = &r
			return p.b.account, nil
		case "predecessor":
			p.b.predecessors = append(p.b.predecessors, r)
			return &p.b.predecessors[len(p.b.predecessors)-1], nil
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
	for _, r := range p.b.records {
		if keyword == "record" && r.index == i {
			return bundleRecord{}, p.errorf("repeated record %d", i)
		}
	}
	for _, r := range p.b.predecessors {
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
	for _, m := range p.b.maps {
		if m.Namespace == f[0] && m.Name == f[1] {
			return p.errorf("repeated map proof of %s %s", f[0], f[1])
		}
	}
	proof, err := decodeBase64(f[2])
	if err != nil || len(proof) == 0 {
		return p.errorf("the map proof of %s %s is not base64: %v", f[0], f[1], err)
	}
	p.b.maps = append(p.b.maps, portal.MapProof{Namespace: f[0], Name: f[1], Proof: proof})
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
	resp := b.response()
	out := bundleVerdict{Query: b.query.String(), AsOf: b.at, Items: itemsOf(resp), Now: now.UTC().Truncate(time.Second)}
	cert, err := certifiedOf(keys, resp)
	switch {
	case b.at.After(now.Add(keys.skew)):
		out.Proof.Failed = fmt.Sprintf("the bundle's time %s is after this machine's time %s", b.at.Format(time.RFC3339), out.Now.Format(time.RFC3339))
	case err != nil:
		out.Proof.Failed = err.Error()
	default:
		out.Proof = verifyLatest(keys, cert, b.query, resp, b.at)
		if err := checkFresh(keys, cert.round, now); err != nil {
			out.Stale = err.Error()
		} else {
			out.StillFresh = true
		}
	}
	return out
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

package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/intermesh"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
)

// The auditor's readers are tested against vectors made by the node's own
// code (log, merkle, intermesh) and against the examples in its docs.

func TestParseLeafReadsTheDocumentedExample(t *testing.T) {
	// log.Record.MarshalLeaf's doc comment:
	// 01 0000000000000001 0000000000000002 0007 "Account" 0000 0001 "a" 0001 "n" 00000002 "{}"
	b, _ := hex.DecodeString("01" + "0000000000000001" + "0000000000000002" + "0007" + hex.EncodeToString([]byte("Account")) +
		"0000" + "0001" + "61" + "0001" + "6e" + "00000002" + "7b7d")
	l, err := ParseLeaf(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Leaf{Seq: 1, Time: time.Unix(0, 2).UTC(), Kind: "Account", Account: "a", Origin: "n", Payload: []byte("{}")}
	if fmt.Sprint(l) != fmt.Sprint(want) {
		t.Fatalf("got %+v, want %+v", l, want)
	}
	rec := log.Record{Seq: 1, Time: time.Unix(0, 2), Kind: portal.KindAccount, Account: "a", Payload: []byte("{}"), Origin: "n"}
	if !bytes.Equal(rec.MarshalLeaf(), b) {
		t.Fatalf("the documented example is not what MarshalLeaf writes")
	}
}

func TestParseLeafReadsWhatTheLogWrites(t *testing.T) {
	for _, rec := range []log.Record{
		{Seq: 0, Time: time.Unix(1767225600, 123456789), Kind: portal.KindProfile, Identifier: "MDDK-7N6A-727A-JZNO-STRX", Payload: []byte(`{"ProfileMesh":[]}`), Origin: "testnet/node0"},
		{Seq: 1 << 40, Time: time.Unix(0, 0), Kind: intermesh.KindMasterHash, Identifier: "round/7", Payload: []byte(`{"round":7}`), Origin: "x"},
		{Seq: 3, Time: time.Unix(-5, 0), Kind: portal.KindEscrow, Account: "alice@example.com", Payload: bytes.Repeat([]byte{0xff}, 60000)},
		{Seq: 4, Time: time.Unix(1, 0), Kind: intermesh.KindEvidence},
	} {
		l, err := ParseLeaf(rec.MarshalLeaf())
		if err != nil {
			t.Fatalf("record %d: %v", rec.Seq, err)
		}
		if l.Seq != rec.Seq || !l.Time.Equal(rec.Time) || l.Kind != string(rec.Kind) || l.Identifier != rec.Identifier ||
			l.Account != rec.Account || l.Origin != rec.Origin || !bytes.Equal(l.Payload, rec.Payload) {
			t.Errorf("record %d: decoded %+v", rec.Seq, l)
		}
	}
}

func TestParseLeafRejectsWhatTheLogWouldNotWrite(t *testing.T) {
	good := (&log.Record{Seq: 1, Time: time.Unix(0, 2), Kind: portal.KindAccount, Account: "a", Payload: []byte("{}"), Origin: "n"}).MarshalLeaf()
	for name, b := range map[string][]byte{
		"empty":            nil,
		"version 2":        append([]byte{2}, good[1:]...),
		"cut short":        good[:len(good)-1],
		"a trailing byte":  append(bytes.Clone(good), 0),
		"an empty kind":    (func() []byte { b := bytes.Clone(good[:17]); return append(b, good[17+2+7:]...) })(),
		"a huge payload":   append(bytes.Clone(good[:len(good)-6]), 0x01, 0, 0, 1),
		"only the header":  good[:17],
		"a length too big": append(bytes.Clone(good[:17]), 0xff, 0xff),
	} {
		if l, err := ParseLeaf(b); err == nil {
			t.Errorf("%s: accepted as %+v", name, l)
		}
	}
}

// FuzzParseLeaf checks the auditor's reader against the log's: both accept
// the same bytes and read the same fields.
func FuzzParseLeaf(f *testing.F) {
	f.Add((&log.Record{Seq: 1, Time: time.Unix(0, 2), Kind: portal.KindAccount, Account: "a", Payload: []byte("{}"), Origin: "n"}).MarshalLeaf())
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		mine, err1 := ParseLeaf(b)
		theirs, err2 := log.UnmarshalLeaf(b)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("auditor: %v, log: %v", err1, err2)
		}
		if err1 == nil && (mine.Seq != theirs.Seq || !mine.Time.Equal(theirs.Time) || mine.Kind != string(theirs.Kind) ||
			mine.Origin != theirs.Origin || !bytes.Equal(mine.Payload, theirs.Payload)) {
			t.Fatalf("auditor %+v, log %+v", mine, theirs)
		}
	})
}

// The checkpoint vector of merkle.SignCheckpoint's doc comment: signed with
// the Ed25519 key whose seed is 32 zero bytes.
const (
	vectorKey        = "example.org/node1+05237aab+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
	vectorCheckpoint = "example.org/node1\n4\nMzdqO9Y+mZNwioTd/mworli4NQXdH+1xG9kk7FpiOfA=\nround 172800000\ntime 1728000000\nprev baBjNSjeqgFE57BYMV8LdT7AuUUWOnK/lqDRgYD53g0=\n\n" +
		"— example.org/node1 BSN6q9TaYo+DFoC7OYBDaDm6WbbYvnVeAM2bC5OnZAM6R99M/dGzHYVBa4KIAuZwjBYoKi/zXooBiG+xllLaPR47PgM=\n"
)

func TestOpenCheckpointVerifiesTheDocumentedVector(t *testing.T) {
	keys := mustKeys(t, &config.Federation{Name: "example", Members: []config.Member{{Origin: "example.org/node1", Key: vectorKey}}})
	cp, err := keys.OpenCheckpoint(vectorCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Origin != "example.org/node1" || cp.Size != 4 || cp.Round != 172800000 || cp.Time != 1728000000 ||
		b64(cp.Root) != "MzdqO9Y+mZNwioTd/mworli4NQXdH+1xG9kk7FpiOfA=" || b64(cp.Prev) != "baBjNSjeqgFE57BYMV8LdT7AuUUWOnK/lqDRgYD53g0=" {
		t.Fatalf("parsed %+v", cp)
	}
	// merkle.SignCheckpoint still writes exactly the vector.
	signer, err := merkle.NewSigner("example.org/node1", ed25519.NewKeyFromSeed(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := merkle.SignCheckpoint(merkle.Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: cp.Root, Round: cp.Round, Time: int64(cp.Time), Prev: cp.Prev}, signer)
	if err != nil || string(signed) != vectorCheckpoint {
		t.Fatalf("merkle signs the vector as\n%s(%v)", signed, err)
	}
}

func TestOpenCheckpointRejectsForgeriesAndMalformedText(t *testing.T) {
	keys := mustKeys(t, &config.Federation{Name: "example", Members: []config.Member{{Origin: "example.org/node1", Key: vectorKey}}})
	signer, _ := merkle.NewSigner("example.org/node1", ed25519.NewKeyFromSeed(make([]byte, 32)))
	sign := func(text string) string {
		b, err := note.Sign(&note.Note{Text: text}, signer)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	root := "MzdqO9Y+mZNwioTd/mworli4NQXdH+1xG9kk7FpiOfA="
	for name, signed := range map[string]string{
		"a changed root":      strings.Replace(vectorCheckpoint, "MzdqO9Y", "NzdqO9Y", 1),
		"a stranger's origin": sign("example.org/node2\n4\n" + root + "\nround 1\ntime 1\n"),
		"a size with a zero":  sign("example.org/node1\n04\n" + root + "\nround 1\ntime 1\n"),
		"no round line":       sign("example.org/node1\n4\n" + root + "\ntime 1\n"),
		"an extra line":       sign("example.org/node1\n4\n" + root + "\nround 1\ntime 1\nprev " + root + "\nmore\n"),
		"a short root":        sign("example.org/node1\n4\nMzdq\nround 1\ntime 1\n"),
		"a bad prev line":     sign("example.org/node1\n4\n" + root + "\nround 1\ntime 1\nnext " + root + "\n"),
		"map before prev":     sign("example.org/node1\n4\n" + root + "\nround 1\ntime 1\nmap " + root + "\nprev " + root + "\n"),
		"two map lines":       sign("example.org/node1\n4\n" + root + "\nround 1\ntime 1\nmap " + root + "\nmap " + root + "\n"),
		"a line after map":    sign("example.org/node1\n4\n" + root + "\nround 1\ntime 1\nprev " + root + "\nmap " + root + "\nmore\n"),
		"a short map":         sign("example.org/node1\n4\n" + root + "\nround 1\ntime 1\nprev " + root + "\nmap Mzdq\n"),
		"a map, two spaces":   sign("example.org/node1\n4\n" + root + "\nround 1\ntime 1\nmap  " + root + "\n"),
	} {
		if _, err := keys.OpenCheckpoint(signed); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, text := range map[string]string{
		"prev and map": "example.org/node1\n4\n" + root + "\nround 1\ntime 1\nprev " + root + "\nmap " + root + "\n",
		"map alone":    "example.org/node1\n4\n" + root + "\nround 1\ntime 1\nmap " + root + "\n",
	} {
		c, err := keys.OpenCheckpoint(sign(text))
		if err != nil || base64.StdEncoding.EncodeToString(c.Map) != root {
			t.Errorf("%s: map %x, %v; want the map line's root", name, c.Map, err)
		}
	}
}

// testMembers is a federation of n members with fixed keys, and their
// signers.
func testMembers(t *testing.T, n int) (*config.Federation, []note.Signer) {
	t.Helper()
	fed := &config.Federation{Name: "fed"}
	var signers []note.Signer
	for i := range n {
		priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{byte(i + 1)}, 32))
		origin := fmt.Sprintf("fed/node%d", i)
		vkey, err := merkle.VerifierKey(origin, priv.Public().(ed25519.PublicKey))
		if err != nil {
			t.Fatal(err)
		}
		s, err := merkle.NewSigner(origin, priv)
		if err != nil {
			t.Fatal(err)
		}
		fed.Members = append(fed.Members, config.Member{Origin: origin, Key: vkey})
		signers = append(signers, s)
	}
	return fed, signers
}

// testCertificate makes round's checkpoints of every member with the node's
// code, and the vote note signed by the first `signed` members.
func testCertificate(t *testing.T, signers []note.Signer, round uint64, signed int) (string, []string, []byte) {
	t.Helper()
	var origins []string
	var notes [][]byte
	for i, s := range signers {
		root := bytes.Repeat([]byte{byte(i)}, 32)
		cp, err := merkle.SignCheckpoint(merkle.Checkpoint{Origin: s.Name(), Size: uint64(10 + i), Root: root, Round: round, Time: int64(round)}, s)
		if err != nil {
			t.Fatal(err)
		}
		origins = append(origins, s.Name())
		notes = append(notes, cp)
	}
	mh, err := intermesh.MasterHash(origins, notes)
	if err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf("fed/master\n%d\n%s\nround %d\n", len(notes), b64(mh), round)
	msg, err := note.Sign(&note.Note{Text: text}, signers[:signed]...)
	if err != nil {
		t.Fatal(err)
	}
	var cps []string
	for _, n := range notes {
		cps = append(cps, string(n))
	}
	return string(msg), cps, mh
}

func TestVerifyMasterNoteAgreesWithTheNodesCertificateCheck(t *testing.T) {
	fed, signers := testMembers(t, 4)
	keys := mustKeys(t, fed)
	msg, cps, mh := testCertificate(t, signers, 42, 3)
	cert, err := keys.verifyMasterNote(msg, cps, 42, true)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cert.MasterHash, mh) || cert.Count != 4 || len(cert.Signers) != 3 || cert.Index("fed/node2") != 2 {
		t.Fatalf("certificate %+v", cert)
	}
	// The node's JSON form (a MasterHash record's payload) reads back.
	payload, err := json.Marshal(intermesh.RoundResult{Round: 42, Outcome: intermesh.OutcomeCertificate, Note: []byte(msg), Checkpoints: stringsToBytes(cps)})
	if err != nil {
		t.Fatal(err)
	}
	rr, err := ParseRoundResult(payload)
	if err != nil || rr.Round != 42 || rr.Outcome != OutcomeCertificate || rr.Note != msg || len(rr.Checkpoints) != 4 {
		t.Fatalf("round result %+v (%v)", rr, err)
	}
	ic := intermesh.Certificate{Round: 42, Note: []byte(msg), Checkpoints: stringsToBytes(cps)}
	if err := intermesh.VerifyCertificate(&ic, fed); err != nil {
		t.Fatalf("the node's check rejects what the auditor accepts: %v", err)
	}

	below, _, _ := testCertificate(t, signers, 42, 2)
	if _, err := keys.verifyMasterNote(below, cps, 42, true); err == nil {
		t.Error("2 signatures accepted with quorum 3")
	}
	if _, err := keys.verifyMasterNote(below, cps, 42, false); err != nil {
		t.Errorf("a vote with 2 signatures: %v", err)
	}
	if _, err := keys.verifyMasterNote(msg, cps, 43, true); err == nil {
		t.Error("the certificate of round 42 accepted for round 43")
	}
	if _, err := keys.verifyMasterNote(msg, cps[:3], 42, true); err == nil {
		t.Error("a missing checkpoint accepted")
	}
	swapped := []string{cps[1], cps[0], cps[2], cps[3]}
	if _, err := keys.verifyMasterNote(msg, swapped, 42, true); err == nil {
		t.Error("checkpoints out of origin order accepted")
	}
	_, other, _ := testCertificate(t, signers, 41, 1)
	if _, err := keys.verifyMasterNote(msg, append(cps[:3:3], other[3]), 42, true); err == nil {
		t.Error("a checkpoint of another round accepted")
	}
}

func TestVerifyEvidenceAcceptsOnlyRealConflicts(t *testing.T) {
	fed, signers := testMembers(t, 2)
	keys := mustKeys(t, fed)
	s := signers[1]
	sign := func(size uint64, rootByte byte, round uint64, prev []byte) string {
		b, err := merkle.SignCheckpoint(merkle.Checkpoint{Origin: s.Name(), Size: size, Root: bytes.Repeat([]byte{rootByte}, 32), Round: round, Time: 1, Prev: prev}, s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	r5 := sign(10, 1, 5, nil)
	withMap := func(size, round uint64, mapByte byte) string {
		b, err := merkle.SignCheckpoint(merkle.Checkpoint{Origin: s.Name(), Size: size, Root: bytes.Repeat([]byte{1}, 32), Round: round, Time: 1,
			Map: bytes.Repeat([]byte{mapByte}, 32)}, s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, tc := range []struct {
		name  string
		notes [2]string
		ok    bool
	}{
		{"two roots for one size", [2]string{r5, sign(10, 2, 6, noteDigest(r5))}, true},
		{"two checkpoints for one round", [2]string{r5, sign(11, 1, 5, nil)}, true},
		{"a tree that shrank", [2]string{r5, sign(9, 1, 7, nil)}, true},
		{"a prev line that skips round 5", [2]string{r5, sign(12, 1, 6, noteDigest("other"))}, true},
		{"the next round, chained", [2]string{r5, sign(12, 1, 6, noteDigest(r5))}, false},
		{"the same note twice", [2]string{r5, r5}, false},
		{"two map lines for one size", [2]string{withMap(10, 5, 1), withMap(10, 7, 2)}, true},
		{"one map line for one size, twice", [2]string{withMap(10, 5, 1), withMap(10, 7, 1)}, false},
		{"a map line after none", [2]string{r5, withMap(10, 7, 2)}, false},
	} {
		why, err := keys.verifyEvidence(evidencePayload{Origin: s.Name(), Notes: tc.notes})
		if (err == nil) != tc.ok {
			t.Errorf("%s: reason %q, error %v", tc.name, why, err)
		}
	}
	// The node's JSON form of evidence reads back.
	payload, _ := json.Marshal(intermesh.Evidence{Origin: s.Name(), Reason: "r", Notes: [2][]byte{[]byte(r5), []byte(r5)}})
	if e, err := parseEvidence(payload); err != nil || e.Origin != s.Name() || e.Notes[1] != r5 {
		t.Fatalf("evidence %+v (%v)", e, err)
	}
	if _, err := keys.verifyEvidence(evidencePayload{Origin: "fed/node0", Notes: [2]string{r5, sign(10, 2, 6, nil)}}); err == nil {
		t.Error("evidence naming the wrong origin accepted")
	}
}

func TestRootsAtMatchesTheTreeAtEverySize(t *testing.T) {
	var leaves [][]byte
	for i := range 9 {
		leaves = append(leaves, []byte{byte(i)})
	}
	var hashes [][]byte
	for _, l := range leaves {
		hashes = append(hashes, rfc6962.DefaultHasher.HashLeaf(l))
	}
	roots, err := RootsAt(hashes, []uint64{9, 0, 4, 1, 4, 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 4 {
		t.Fatalf("roots at %d sizes, want 4 (0, 1, 4, 9)", len(roots))
	}
	for size, root := range roots {
		want, _ := treeRoot(hashes[:size])
		if !bytes.Equal(root, want) {
			t.Errorf("size %d: %x, want %x", size, root, want)
		}
	}
	// The documented checkpoint vector: 4 leaves "a", "b", "c", "d".
	var abcd [][]byte
	for _, l := range []string{"a", "b", "c", "d"} {
		abcd = append(abcd, rfc6962.DefaultHasher.HashLeaf([]byte(l)))
	}
	if root, _ := treeRoot(abcd); b64(root) != "MzdqO9Y+mZNwioTd/mworli4NQXdH+1xG9kk7FpiOfA=" {
		t.Errorf("root of a, b, c, d: %s", b64(root))
	}
}

func mustKeys(t *testing.T, fed *config.Federation) *Keys {
	t.Helper()
	k, err := NewKeys(fed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func stringsToBytes(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func TestVerifyEvidenceChecksConsistencyProofs(t *testing.T) {
	fed, signers := testMembers(t, 2)
	keys := mustKeys(t, fed)
	s := signers[1]
	leaves := func(tag string, n int) [][]byte {
		var hs [][]byte
		for i := range n {
			hs = append(hs, rfc6962.DefaultHasher.HashLeaf(fmt.Appendf(nil, "%s %d", tag, i)))
		}
		return hs
	}
	honest, forked := leaves("honest", 5), leaves("forked", 9)
	extended := append(append([][]byte{}, honest...), leaves("more", 4)...)
	checkpoint := func(hs [][]byte, round uint64) string {
		root, err := merkle.LeafRoot(hs, uint64(len(hs)))
		if err != nil {
			t.Fatal(err)
		}
		b, err := merkle.SignCheckpoint(merkle.Checkpoint{Origin: s.Name(), Size: uint64(len(hs)), Root: root, Round: round, Time: 1}, s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	evidence := func(later [][]byte) evidencePayload {
		root1, err := merkle.LeafRoot(later, 5)
		if err != nil {
			t.Fatal(err)
		}
		p, err := merkle.LeafConsistencyProof(later, 5, uint64(len(later)))
		if err != nil {
			t.Fatal(err)
		}
		return evidencePayload{Origin: s.Name(), Notes: [2]string{checkpoint(honest, 5), checkpoint(later, 9)}, Root1: root1, Proof: p}
	}
	valid := evidence(forked)
	if why, err := keys.verifyEvidence(valid); err != nil || !strings.Contains(why, "at size 5") {
		t.Fatalf("valid consistency evidence: %q, %v", why, err)
	}
	tampered := evidence(forked)
	tampered.Proof[0] = bytes.Repeat([]byte{7}, 32)
	swapped := evidence(forked)
	swapped.Notes[0], swapped.Notes[1] = swapped.Notes[1], swapped.Notes[0]
	for _, tc := range []struct {
		name string
		e    evidencePayload
	}{
		{"an honest extension (root1 is the first root)", evidence(extended)},
		{"a tampered proof", tampered},
		{"the larger tree first", swapped},
		{"a short root1", evidencePayload{Origin: s.Name(), Notes: valid.Notes, Root1: []byte{1}, Proof: valid.Proof}},
		{"no proof", evidencePayload{Origin: s.Name(), Notes: valid.Notes, Root1: valid.Root1}},
	} {
		if why, err := keys.verifyEvidence(tc.e); err == nil {
			t.Errorf("%s: accepted (%s)", tc.name, why)
		}
	}
	// The node's JSON form of consistency evidence reads back whole.
	payload, err := json.Marshal(intermesh.Evidence{Origin: s.Name(), Reason: "not-consistent", Notes: [2][]byte{[]byte(valid.Notes[0]), []byte(valid.Notes[1])}, Root1: valid.Root1, Proof: valid.Proof})
	if err != nil {
		t.Fatal(err)
	}
	e, err := parseEvidence(payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.verifyEvidence(e); err != nil {
		t.Fatalf("the node's consistency evidence, read back: %v", err)
	}
}

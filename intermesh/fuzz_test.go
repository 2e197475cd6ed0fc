package intermesh

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/merkle"
)

// The fuzz targets of this file reach the parsers that run behind a
// signature check directly, so that the fuzzer need not forge signatures:
// the records batch decoder, the Transfer page reader, the vote and
// certificate decoder, and the evidence checks. Each is seeded with real
// messages.

func FuzzDecodeBatch(f *testing.F) {
	_, keys := testFederation(f, 2)
	origin := "test/node1"
	f.Add(encodeBatch("test", batchesOf(origin, testRecords(origin, 0, 2, 5))[0], keys[1]))
	f.Add(encodeBatch("test", batchesOf(origin, testRecords(origin, 7, 1, 300))[0], keys[1]))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, body, sig, err := decodeBatch(data)
		if err != nil {
			return
		}
		if !bytes.Equal(append(b.body(), sig...), data) || !bytes.Equal(body, b.body()) {
			t.Fatal("a batch that decodes does not encode back to its bytes")
		}
		for i, r := range b.recs {
			if r.Seq != b.first+uint64(i) || r.Origin != b.origin {
				t.Fatalf("record %d is seq %d of %q", i, r.Seq, r.Origin)
			}
		}
	})
}

// framesOf is the wire form of a Transfer page after its header.
func framesOf(leaves ...[]byte) []byte {
	var buf bytes.Buffer
	for _, l := range leaves {
		_ = writeFrame(&buf, l)
	}
	_ = writeFrame(&buf, nil)
	return buf.Bytes()
}

func FuzzReadRecords(f *testing.F) {
	origin := "test/node1"
	recs := testRecords(origin, 3, 4, 20)
	var leaves [][]byte
	for _, r := range recs {
		leaves = append(leaves, r.MarshalLeaf())
	}
	f.Add(framesOf(leaves...), uint64(3), 10, 1<<20)
	f.Add(framesOf(leaves...), uint64(3), 2, 1<<20)
	f.Add(framesOf(leaves...), uint64(3), 10, 30)
	f.Add(framesOf(leaves[:1]...), uint64(3), 1, 1)
	f.Fuzz(func(t *testing.T, data []byte, from uint64, maxEntries, maxBytes int) {
		if maxEntries <= 0 || maxBytes <= 0 {
			return
		}
		req := transferRequest{Origin: origin, From: from, MaxEntries: maxEntries, MaxBytes: maxBytes}
		page, err := readRecords(bytes.NewReader(data), req, 0)
		if err != nil {
			if page.records != nil {
				t.Fatal("records kept from a failed page")
			}
			return
		}
		if len(page.records) > maxEntries {
			t.Fatalf("%d records, asked for at most %d", len(page.records), maxEntries)
		}
		if n := len(page.records); n > 0 && page.bytes-len(page.records[0].MarshalLeaf()) > maxBytes {
			t.Fatalf("%d bytes past the first record, asked for at most %d", page.bytes, maxBytes)
		}
		for i, r := range page.records {
			if r.Seq != from+uint64(i) || r.Origin != origin {
				t.Fatalf("record %d is seq %d of %q", i, r.Seq, r.Origin)
			}
		}
	})
}

// noteBody splits a signed note into its text; ok false if it has no
// signature block.
func noteBody(signed string) (string, bool) {
	i := strings.LastIndex(signed, "\n\n")
	if i < 0 {
		return "", false
	}
	return signed[:i+1], true
}

// FuzzDecodeVote feeds parseVote arbitrary messages: it never panics, and a
// vote it accepts re-encodes to a vote it accepts again, covering as many
// members' checkpoints as its note counts, in origin order.
func FuzzDecodeVote(f *testing.F) {
	fed, keys := testFederation(f, 3)
	var cps [][]byte
	for i := range 3 {
		cps = append(cps, newTestLog(f, fed.Members[i].Origin, keys[i]).close(f, 100, 4))
	}
	s, err := newNoteSigner(fed.Members[0].Origin, keys[0])
	if err != nil {
		f.Fatal(err)
	}
	vote, err := SignVote(fed.Name, 100, cps, s)
	if err != nil {
		f.Fatal(err)
	}
	m, err := newMesh(Config{Federation: fed, Origin: fed.Members[1].Origin, Key: keys[1], Listen: testListen,
		Now: func() time.Time { return time.Unix(100, 0) }})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := m.parseVote(vote); err != nil {
		f.Fatalf("a signed vote does not parse: %v", err)
	}
	f.Add(vote)
	f.Add([]byte(`{"round":1,"note":"test/master\n1\n","covers":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := m.parseVote(data)
		if err != nil {
			return
		}
		if v.count != len(v.covers) || v.count > len(fed.Members) {
			t.Fatalf("vote counts %d, covers %d", v.count, len(v.covers))
		}
		msg, err := note.Sign(&note.Note{Text: v.text, Sigs: v.sigs})
		if err != nil {
			t.Fatal(err)
		}
		again, err := encodeVote(v.round, msg, v.covers)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.parseVote(again); err != nil {
			t.Fatalf("an accepted vote re-encodes to one refused: %v", err)
		}
	})
}

func FuzzEvidenceChecks(f *testing.F) {
	_, keys := testFederation(f, 1)
	l := newTestLog(f, "test/node0", keys[0])
	a, b := l.close(f, 10, 2), l.close(f, 11, 3)
	at, _ := noteBody(string(a))
	bt, _ := noteBody(string(b))
	f.Add([]byte(at), []byte(bt), make([]byte, 32), []byte(`["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]`))
	f.Add([]byte(bt), []byte(at), []byte{}, []byte(`[]`))
	f.Fuzz(func(t *testing.T, t1, t2, root1, proofJSON []byte) {
		c1, err1 := merkle.ParseCheckpoint(t1)
		c2, err2 := merkle.ParseCheckpoint(t2)
		if err1 != nil || err2 != nil {
			return
		}
		h1 := heldCheckpoint{cp: c1, note: t1, hash: sha256.Sum256(t1)}
		h2 := heldCheckpoint{cp: c2, note: t2, hash: sha256.Sum256(t2)}
		_ = conflict(h1, h2)
		var proof [][]byte
		if json.Unmarshal(proofJSON, &proof) != nil {
			return
		}
		e := Evidence{Origin: c1.Origin, Root1: root1, Proof: proof}
		if why, err := verifyNotConsistent(e, c1, c2); err == nil && !strings.HasPrefix(why, reasonNotConsistent) {
			t.Fatalf("accepted consistency evidence with reason %q", why)
		}
	})
}

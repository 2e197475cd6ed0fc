package intermesh

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// testCertificate builds a certificate of round r over the checkpoints of
// all members of a 4-member federation, signed by the given members.
func testCertificate(t *testing.T, signers ...int) (Certificate, func(*Certificate) error) {
	t.Helper()
	fed, keys := testFederation(t, 4)
	const r = 1000
	var cps [][]byte
	var origins []string
	var ss []note.Signer
	for i := range 4 {
		l := newTestLog(t, fed.Members[i].Origin, keys[i])
		cps = append(cps, l.close(t, r, uint64(i+1)))
		origins = append(origins, l.origin)
		if slices.Contains(signers, i) {
			ss = append(ss, l.signer)
		}
	}
	mh, err := MasterHash(origins, cps)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: voteText(fed.Name, r, 4, mh)}, ss...)
	if err != nil {
		t.Fatal(err)
	}
	return Certificate{Round: r, Note: msg, Checkpoints: cps}, func(c *Certificate) error { return VerifyCertificate(c, fed) }
}

func TestVerifyCertificate(t *testing.T) {
	good, _ := testCertificate(t, 0, 1, 2)
	tests := []struct {
		name   string
		signer []int
		change func(c *Certificate)
		ok     bool
	}{
		{"a quorum of signatures over the recomputed master hash verifies", []int{0, 1, 2}, nil, true},
		{"all members' signatures verify", []int{0, 1, 2, 3}, nil, true},
		{"fewer signatures than the quorum fail", []int{0, 1}, nil, false},
		{"a missing checkpoint fails", []int{0, 1, 2}, func(c *Certificate) { c.Checkpoints = c.Checkpoints[1:] }, false},
		{"checkpoints out of origin order fail", []int{0, 1, 2}, func(c *Certificate) {
			c.Checkpoints[0], c.Checkpoints[1] = c.Checkpoints[1], c.Checkpoints[0]
		}, false},
		{"a checkpoint of another member's log fails", []int{0, 1, 2}, func(c *Certificate) { c.Checkpoints[3] = good.Checkpoints[3] }, false},
		{"another round fails", []int{0, 1, 2}, func(c *Certificate) { c.Round++ }, false},
		{"a forged signature fails", []int{0, 1, 2}, func(c *Certificate) { c.Note = forge(t, c.Note) }, false},
		{"a tampered checkpoint fails", []int{0, 1, 2}, func(c *Certificate) {
			c.Checkpoints[2] = bytes.Replace(c.Checkpoints[2], []byte("round"), []byte("Round"), 1)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, verify := testCertificate(t, tt.signer...)
			if tt.change != nil {
				tt.change(&c)
			}
			err := verify(&c)
			if (err == nil) != tt.ok {
				t.Fatalf("VerifyCertificate: %v, want ok=%v", err, tt.ok)
			}
			if err == nil && len(c.MasterHash) != 32 {
				t.Fatal("MasterHash not set")
			}
		})
	}
}

func TestRoundResultJSONForm(t *testing.T) {
	res := RoundResult{Round: 7, Outcome: OutcomeCertificate, Note: []byte("test/master\n1\n...\n"), Checkpoints: [][]byte{[]byte("cp\n")}}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"round":7,"outcome":"certificate","note":"test/master\n1\n...\n","checkpoints":["cp\n"]}`
	if string(b) != want {
		t.Fatalf("JSON form\n%s\nwant\n%s", b, want)
	}
	var back RoundResult
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Round != 7 || back.Outcome != OutcomeCertificate || string(back.Note) != string(res.Note) || len(back.Checkpoints) != 1 {
		t.Fatalf("round trip gave %+v", back)
	}
	c, _ := testCertificate(t, 0, 1, 2)
	cb, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(cb), `{"round":1000,"note":"test/master\n4\n`) {
		t.Fatalf("certificate JSON form %s", cb)
	}
}

func TestMasterHashIsRFC6962OverOriginAndNoteHash(t *testing.T) {
	got, err := MasterHash([]string{"a", "b"}, [][]byte{[]byte("x"), []byte("y")})
	if err != nil {
		t.Fatal(err)
	}
	// Recompute by the RFC 6962 definition: leaf = H(0x00 || origin ||
	// SHA-256(note)), root of two leaves = H(0x01 || left || right).
	leaf := func(origin, n string) []byte {
		nh := sha256.Sum256([]byte(n))
		h := sha256.Sum256(append(append([]byte{0}, origin...), nh[:]...))
		return h[:]
	}
	want := sha256.Sum256(append(append([]byte{1}, leaf("a", "x")...), leaf("b", "y")...))
	if !bytes.Equal(got, want[:]) {
		t.Fatalf("master hash %x, want %x", got, want)
	}
	if _, err := MasterHash([]string{"b", "a"}, [][]byte{[]byte("x"), []byte("y")}); err == nil {
		t.Fatal("unsorted origins accepted")
	}
	if _, err := MasterHash([]string{"a", "a"}, [][]byte{[]byte("x"), []byte("y")}); err == nil {
		t.Fatal("a repeated origin accepted")
	}
}

func FuzzParseVoteText(f *testing.F) {
	f.Add("test/master\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nround 12\n")
	f.Add("test/master\n03\n\nround 1\n")
	f.Fuzz(func(t *testing.T, text string) {
		b, err := parseVoteText("test", text)
		if err != nil {
			return
		}
		if again := voteText("test", b.round, b.count, b.masterHash); again != text {
			t.Fatalf("parse then format gives %q, want %q", again, text)
		}
	})
}

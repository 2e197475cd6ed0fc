package witness

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/merkle"
)

// mapRoot is a made-up map root.
func mapRoot(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// mapped signs the checkpoint of the first size leaves closed in round with
// map root m (none if nil), and returns an add-checkpoint body from old.
func (l *testLog) mapped(t testing.TB, old, size, round uint64, m []byte) string {
	t.Helper()
	root, err := merkle.LeafRoot(l.leaves, size)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := merkle.SignCheckpoint(merkle.Checkpoint{Origin: l.origin, Size: size, Root: root, Round: round, Time: 1728000000 + int64(round), Map: m}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return l.withBody(t, old, size, signed)
}

// withBody is the add-checkpoint body from old for a signed checkpoint of
// size.
func (l *testLog) withBody(t testing.TB, old, size uint64, signed []byte) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "old %d\n", old)
	if old > 0 && old < size {
		p, err := merkle.LeafConsistencyProof(l.leaves, old, size)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range p {
			b.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
		}
	}
	b.WriteString("\n")
	b.Write(signed)
	return b.String()
}

// rawState is the stored state of origin, nil if none.
func rawState(t testing.TB, db *badger.DB, origin string) []byte {
	t.Helper()
	var v []byte
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(stateKey(origin))
		if err == badger.ErrKeyNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// wantState checks the stored state of l: size, the root of size leaves,
// then the map root m if not nil.
func wantState(t testing.TB, db *badger.DB, l *testLog, size uint64, m []byte) {
	t.Helper()
	root, err := merkle.LeafRoot(l.leaves, size)
	if err != nil {
		t.Fatal(err)
	}
	want := append(binary.BigEndian.AppendUint64(nil, size), root...)
	want = append(want, m...)
	if got := rawState(t, db, l.origin); !bytes.Equal(got, want) {
		t.Fatalf("stored state %x, want %x", got, want)
	}
}

func TestTheMapRootAtASizeIsCosignedOnce(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	_, key, _ := ed25519.GenerateKey(nil)
	a := newTestLog(t, "log.example/a")
	_, srv := newTestWitness(t, db, key, a)
	a.grow(20)
	verifier, _ := NewCosignatureVerifier(mustCosigner(t, key).VerifierKey())

	cosigns := func(name, body string) {
		t.Helper()
		status, answer, _ := post(t, srv.URL, body)
		if status != http.StatusOK {
			t.Fatalf("%s: %d %q, want 200", name, status, answer)
		}
		signed := body[strings.Index(body, "\n\n")+2:]
		if _, err := note.Open([]byte(signed+answer), note.VerifierList(verifier)); err != nil {
			t.Fatalf("%s: the cosignature does not verify: %v", name, err)
		}
	}
	refused := func(name, body string, known uint64) {
		t.Helper()
		before := rawState(t, db, a.origin)
		status, answer, ctype := post(t, srv.URL, body)
		if want := fmt.Sprintf("%d\n", known); status != http.StatusConflict || answer != want || ctype != "text/x.tlog.size" {
			t.Fatalf("%s: %d %q %q, want 409 %q text/x.tlog.size", name, status, answer, ctype, want)
		}
		if after := rawState(t, db, a.origin); !bytes.Equal(before, after) {
			t.Fatalf("%s: the stored state changed from %x to %x", name, before, after)
		}
	}

	cosigns("size 5 with map 1", a.mapped(t, 0, 5, 1, mapRoot(1)))
	wantState(t, db, a, 5, mapRoot(1))
	refused("size 5 in a later round with map 2", a.mapped(t, 5, 5, 2, mapRoot(2)), 5)
	refused("size 5 in a later round without a map", a.mapped(t, 5, 5, 2, nil), 5)
	cosigns("size 5 in a later round with map 1", a.mapped(t, 5, 5, 3, mapRoot(1)))
	wantState(t, db, a, 5, mapRoot(1))
	cosigns("size 12 with map 3", a.mapped(t, 5, 12, 4, mapRoot(3)))
	wantState(t, db, a, 12, mapRoot(3))
	refused("size 20 without a map", a.mapped(t, 12, 20, 5, nil), 12)
	refused("size 12 with map 1 (the map of size 5)", a.mapped(t, 12, 12, 5, mapRoot(1)), 12)

	// The map root survives a restart.
	srv.Close()
	db.Close()
	db = openDB(t, dir)
	defer db.Close()
	_, srv = newTestWitness(t, db, key, a)
	refused("after a restart, size 12 with map 4", a.mapped(t, 12, 12, 6, mapRoot(4)), 12)
	cosigns("after a restart, size 20 with map 4", a.mapped(t, 12, 20, 6, mapRoot(4)))
	wantState(t, db, a, 20, mapRoot(4))
}

func TestStateWithoutAMapKeepsWorking(t *testing.T) {
	db := openDB(t, t.TempDir())
	t.Cleanup(func() { _ = db.Close() })
	_, key, _ := ed25519.GenerateKey(nil)
	a, b := newTestLog(t, "log.example/a"), newTestLog(t, "log.example/b")
	_, srv := newTestWitness(t, db, key, a, b)
	a.grow(12)
	b.grow(12)
	// The state a witness wrote before it read map lines: size and root.
	for _, l := range []*testLog{a, b} {
		root, _ := merkle.LeafRoot(l.leaves, 5)
		old := append(binary.BigEndian.AppendUint64(nil, 5), root...)
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set(stateKey(l.origin), old) }); err != nil {
			t.Fatal(err)
		}
	}
	check := func(name, body string, want int) {
		t.Helper()
		if status, answer, _ := post(t, srv.URL, body); status != want {
			t.Fatalf("%s: %d %q, want %d", name, status, answer, want)
		}
	}
	// a: a map line shows up at the same size, is remembered, and holds.
	check("a: size 5 with map 1", a.mapped(t, 5, 5, 1, mapRoot(1)), 200)
	wantState(t, db, a, 5, mapRoot(1))
	check("a: size 5 with map 2", a.mapped(t, 5, 5, 2, mapRoot(2)), 409)
	check("a: size 5 without a map", a.mapped(t, 5, 5, 2, nil), 409)
	wantState(t, db, a, 5, mapRoot(1))
	// b: checkpoints without a map still cosign, then a map starts at a
	// larger size and may not go away.
	check("b: size 5 without a map", b.mapped(t, 5, 5, 1, nil), 200)
	check("b: size 8 without a map", b.mapped(t, 5, 8, 2, nil), 200)
	wantState(t, db, b, 8, nil)
	check("b: size 12 with map 1", b.mapped(t, 8, 12, 3, mapRoot(1)), 200)
	wantState(t, db, b, 12, mapRoot(1))
	check("b: size 12 without a map", b.mapped(t, 12, 12, 4, nil), 409)
	wantState(t, db, b, 12, mapRoot(1))
}

func TestMalformedMapLinesAreRefused(t *testing.T) {
	db := openDB(t, t.TempDir())
	t.Cleanup(func() { _ = db.Close() })
	_, key, _ := ed25519.GenerateKey(nil)
	a := newTestLog(t, "log.example/a")
	_, srv := newTestWitness(t, db, key, a)
	a.grow(5)
	if status, answer, _ := post(t, srv.URL, a.mapped(t, 0, 5, 1, mapRoot(1))); status != 200 {
		t.Fatalf("size 5 with map 1: %d %q", status, answer)
	}
	root, _ := merkle.LeafRoot(a.leaves, 5)
	head := fmt.Sprintf("%s\n5\n%s\nround 2\ntime 1728000002\n", a.origin, base64.StdEncoding.EncodeToString(root))
	m1 := base64.StdEncoding.EncodeToString(mapRoot(1))
	nonCanonical := m1[:42] + "F="                              // other trailing bits, same bytes
	long := base64.StdEncoding.EncodeToString(make([]byte, 33)) // 33 bytes
	for _, c := range []struct{ name, ext string }{
		{"a bare map keyword", "map\n"},
		{"an empty map", "map \n"},
		{"a short map", "map AAAA\n"},
		{"a 33-byte map", "map " + long + "\n"},
		{"a map in URL base64", "map " + strings.Repeat("_", 43) + "=\n"},
		{"a map without padding", "map " + strings.TrimSuffix(m1, "=") + "\n"},
		{"non-canonical base64", "map " + nonCanonical + "\n"},
		{"two spaces after map", "map  " + m1 + "\n"},
		{"a tab after map", "map\t" + m1 + "\n"},
		{"a trailing space", "map " + m1 + " \n"},
		{"two map lines", "map " + m1 + "\nmap " + m1 + "\n"},
		{"a map line that is not last", "map " + m1 + "\nextra line\n"},
		{"a bad map line before a good one", "map AAAA\nmap " + m1 + "\n"},
	} {
		signed, err := note.Sign(&note.Note{Text: head + c.ext}, a.signer)
		if err != nil {
			t.Fatal(err)
		}
		before := rawState(t, db, a.origin)
		if status, answer, _ := post(t, srv.URL, a.withBody(t, 5, 5, signed)); status != http.StatusBadRequest {
			t.Errorf("%s: %d %q, want 400", c.name, status, answer)
		}
		if after := rawState(t, db, a.origin); !bytes.Equal(before, after) {
			t.Fatalf("%s: the stored state changed", c.name)
		}
	}
	// The same checkpoint with its map line well formed is cosigned.
	signed, _ := note.Sign(&note.Note{Text: head + "map " + m1 + "\n"}, a.signer)
	if status, answer, _ := post(t, srv.URL, a.withBody(t, 5, 5, signed)); status != 200 {
		t.Fatalf("the well-formed control: %d %q", status, answer)
	}
}

// FuzzReadMap checks that the witness reads a map line exactly as
// merkle.ParseCheckpoint does, and that any map it reads is the last line.
func FuzzReadMap(f *testing.F) {
	f.Add([]byte("log.example/a\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nround 1\ntime 2\nmap BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n"))
	f.Add([]byte("log.example/a\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nround 1\ntime 2\nprev BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\nmap BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n"))
	f.Add([]byte("log.example/a\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nmap AAAA\n"))
	f.Add([]byte("log.example/a\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nmap\t\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		if _, err := parseCheckpoint(text); err != nil {
			return // the witness refuses it before reading the map
		}
		m, err := readMap(text)
		if c, perr := merkle.ParseCheckpoint(text); perr == nil {
			if err != nil || !bytes.Equal(m, c.Map) {
				t.Fatalf("merkle reads map %x, the witness %x (%v)", c.Map, m, err)
			}
		}
		if err == nil && m != nil {
			last := text[bytes.LastIndexByte(text[:len(text)-1], '\n')+1:]
			if string(last) != "map "+base64.StdEncoding.EncodeToString(m)+"\n" {
				t.Fatalf("map %x read from %q, whose last line is %q", m, text, last)
			}
		}
	})
}

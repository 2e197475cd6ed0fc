package witness

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"filippo.io/torchwood"
	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/merkle"
)

// testLog is a log of n leaves whose checkpoints a test signs.
type testLog struct {
	origin string
	signer note.Signer
	vkey   note.Verifier
	leaves [][]byte // leaf hashes
}

func newTestLog(t testing.TB, origin string) *testLog {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(nil)
	s, err := merkle.NewSigner(origin, key)
	if err != nil {
		t.Fatal(err)
	}
	v, err := merkle.NewVerifier(origin, key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{origin: origin, signer: s, vkey: v}
}

func (l *testLog) grow(n int) {
	for range n {
		h := sha256.Sum256(fmt.Appendf(nil, "leaf %d", len(l.leaves)))
		l.leaves = append(l.leaves, h[:])
	}
}

// checkpoint signs the checkpoint of the first size leaves.
func (l *testLog) checkpoint(t testing.TB, size uint64) []byte {
	t.Helper()
	root, err := merkle.LeafRoot(l.leaves, size)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := merkle.SignCheckpoint(merkle.Checkpoint{Origin: l.origin, Size: size, Root: root, Round: size + 1, Time: 1728000000}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// request builds an add-checkpoint body.
func (l *testLog) request(t testing.TB, old, size uint64) string {
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
	b.Write(l.checkpoint(t, size))
	return b.String()
}

func openDB(t testing.TB, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func newTestWitness(t testing.TB, db *badger.DB, key ed25519.PrivateKey, logs ...*testLog) (*Witness, *httptest.Server) {
	t.Helper()
	c, err := NewCosigner("witness.example/w1", key)
	if err != nil {
		t.Fatal(err)
	}
	var vs []note.Verifier
	for _, l := range logs {
		vs = append(vs, l.vkey)
	}
	w, err := New(Config{DB: db, Cosigner: c, Logs: vs})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /add-checkpoint", w)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return w, srv
}

func post(t testing.TB, url, body string) (int, string, string) {
	t.Helper()
	resp, err := http.Post(url+"/add-checkpoint", "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("Content-Type")
}

func TestCosignaturesVerifyWithTorchwoodAndTorchwoodsWithOurs(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	ours, err := NewCosigner("witness.example/w1", key)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := torchwood.NewCosignatureSigner("witness.example/w1", key)
	if err != nil {
		t.Fatal(err)
	}
	if ours.VerifierKey() != theirs.Verifier().String() || ours.KeyHash() != theirs.KeyHash() {
		t.Fatalf("vkey %s, torchwood says %s", ours.VerifierKey(), theirs.Verifier().String())
	}
	v, err := NewCosignatureVerifier(theirs.Verifier().String())
	if err != nil {
		t.Fatal(err)
	}
	l := newTestLog(t, "log.example/a")
	l.grow(5)
	signed := l.checkpoint(t, 5)
	n, err := note.Open(signed, note.VerifierList(l.vkey))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		signer note.Signer
		verify note.Verifier
	}{{"ours, verified by torchwood", ours, theirs.Verifier()}, {"torchwood's, verified by ours", theirs, v}} {
		cosigned, err := note.Sign(&note.Note{Text: n.Text}, c.signer)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := note.Open(cosigned, note.VerifierList(c.verify)); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		// One changed byte of the text or the signature fails.
		changed := bytes.Replace(cosigned, []byte("\n5\n"), []byte("\n6\n"), 1)
		if _, err := note.Open(changed, note.VerifierList(c.verify)); err == nil {
			t.Errorf("%s: a cosignature of size 5 verified for size 6", c.name)
		}
		sig := cosigned[bytes.LastIndex(cosigned, []byte(" "))+1:]
		raw, _ := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(sig)))
		raw[len(raw)-1] ^= 1
		bad := append(cosigned[:bytes.LastIndex(cosigned, []byte(" "))+1:bytes.LastIndex(cosigned, []byte(" "))+1], base64.StdEncoding.EncodeToString(raw)+"\n"...)
		if _, err := note.Open(bad, note.VerifierList(c.verify)); err == nil {
			t.Errorf("%s: a changed cosignature verified", c.name)
		}
	}
	for _, vk := range []string{"", "a+b+c", theirs.Verifier().String() + "A", strings.Replace(theirs.Verifier().String(), "w1", "w2", 1), l.vkey.Name()} {
		if _, err := NewCosignatureVerifier(vk); err == nil {
			t.Errorf("NewCosignatureVerifier(%q) accepted it", vk)
		}
	}
}

func TestAddCheckpointFollowsTheSpec(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir)
	_, key, _ := ed25519.GenerateKey(nil)
	a, other := newTestLog(t, "log.example/a"), newTestLog(t, "log.example/unknown")
	_, srv := newTestWitness(t, db, key, a)
	a.grow(20)
	other.grow(3)
	verifier, _ := NewCosignatureVerifier(mustCosigner(t, key).VerifierKey())

	cosigns := func(body string, size uint64) {
		t.Helper()
		status, answer, _ := post(t, srv.URL, body)
		if status != http.StatusOK {
			t.Fatalf("add-checkpoint of size %d: %d %s", size, status, answer)
		}
		if _, err := note.Open(append(a.checkpoint(t, size), answer...), note.VerifierList(verifier)); err != nil {
			t.Fatalf("the cosignature of size %d does not verify: %v", size, err)
		}
		if ts, _ := Timestamp(note.Signature{Base64: answer[strings.LastIndex(answer, " ")+1 : len(answer)-1]}); time.Since(ts) > time.Minute {
			t.Fatalf("cosignature time %v", ts)
		}
	}
	// A log's first checkpoints may be of the empty tree (a node's first
	// rounds): the witness knows size 0 with the empty tree's root.
	cosigns(a.request(t, 0, 0), 0)
	cosigns(a.request(t, 0, 0), 0)
	cosigns(a.request(t, 0, 5), 5)
	cosigns(a.request(t, 5, 12), 12)
	cosigns(a.request(t, 12, 12), 12)

	type want struct {
		status int
		body   string
	}
	for _, c := range []struct {
		name string
		body string
		want want
	}{
		{"an old size that is not the known one", a.request(t, 5, 20), want{409, "12\n"}},
		{"an old size of zero once a size is known", a.request(t, 0, 20), want{409, "12\n"}},
		{"the known size with another root", sameSizeOtherRoot(t, a, 12), want{409, "12\n"}},
		{"a bad consistency proof", badProof(t, a, 12, 20), want{422, ""}},
		{"an unknown origin", other.request(t, 0, 3), want{404, ""}},
		{"a checkpoint not signed by the log's key", forged(t, a, 20), want{403, ""}},
		{"an old size above the checkpoint's", strings.Replace(a.request(t, 12, 12), "old 12", "old 13", 1), want{400, ""}},
		{"no blank line", "old 0\n", want{400, ""}},
		{"a non-canonical old size", strings.Replace(a.request(t, 12, 20), "old 12", "old 012", 1), want{400, ""}},
		{"a proof line that is not a hash", strings.Replace(a.request(t, 12, 20), "old 12\n", "old 12\nAAAA\n", 1), want{400, ""}},
		{"64 proof lines", "old 12\n" + strings.Repeat(base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n", 64) + "\n" + string(a.checkpoint(t, 20)), want{400, ""}},
		{"a body over 16 KiB", strings.Repeat("x", 17<<10), want{413, ""}},
	} {
		status, answer, ctype := post(t, srv.URL, c.body)
		if status != c.want.status || (c.want.body != "" && answer != c.want.body) {
			t.Errorf("%s: %d %q, want %d %q", c.name, status, answer, c.want.status, c.want.body)
		}
		if status == 409 && ctype != "text/x.tlog.size" {
			t.Errorf("%s: 409 with Content-Type %q", c.name, ctype)
		}
	}

	// The state survives a restart: it was persisted before the answer.
	srv.Close()
	db.Close()
	db = openDB(t, dir)
	defer db.Close()
	_, srv = newTestWitness(t, db, key, a)
	if status, answer, _ := post(t, srv.URL, a.request(t, 5, 20)); status != 409 || answer != "12\n" {
		t.Fatalf("after a restart: %d %q, want 409 12", status, answer)
	}
	cosigns(a.request(t, 12, 20), 20)
}

func mustCosigner(t testing.TB, key ed25519.PrivateKey) *Cosigner {
	t.Helper()
	c, err := NewCosigner("witness.example/w1", key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sameSizeOtherRoot is a request for a checkpoint of size with another
// root, signed by the log.
func sameSizeOtherRoot(t *testing.T, l *testLog, size uint64) string {
	t.Helper()
	root := make([]byte, 32)
	root[0] = 1
	signed, err := merkle.SignCheckpoint(merkle.Checkpoint{Origin: l.origin, Size: size, Root: root, Round: 99, Time: 1}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("old %d\n\n%s", size, signed)
}

// badProof is a request whose first proof hash is changed.
func badProof(t *testing.T, l *testLog, old, size uint64) string {
	t.Helper()
	lines := strings.SplitN(l.request(t, old, size), "\n", 3)
	h, _ := base64.StdEncoding.DecodeString(lines[1])
	h[0] ^= 1
	return lines[0] + "\n" + base64.StdEncoding.EncodeToString(h) + "\n" + lines[2]
}

// forged is a request for a checkpoint of l signed by another key.
func forged(t *testing.T, l *testLog, size uint64) string {
	t.Helper()
	f := newTestLog(t, l.origin)
	f.leaves = l.leaves
	return f.request(t, 12, size)
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("old 0\n\nlog.example/a\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— x y\n"))
	f.Add([]byte("old 5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := parseRequest(b)
		if err != nil {
			return
		}
		if len(req.proof) > maxProof {
			t.Fatalf("%d proof lines accepted", len(req.proof))
		}
		for _, h := range req.proof {
			if len(h) != 32 {
				t.Fatalf("a %d-byte proof hash accepted", len(h))
			}
		}
		if !bytes.HasPrefix(b, fmt.Appendf(nil, "old %d\n", req.old)) {
			t.Fatalf("old size %d is not the first line of %q", req.old, b)
		}
	})
}

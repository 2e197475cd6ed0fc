package witness

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/merkle"
)

// leafProver gives a testLog's consistency proofs.
type leafProver struct{ l *testLog }

func (p leafProver) ConsistencyProof(size1, size2 uint64) ([][]byte, error) {
	return merkle.LeafConsistencyProof(p.l.leaves, size1, size2)
}

func policyFor(t *testing.T, quorum int, ws ...*httptest.Server) (*Policy, []string) {
	t.Helper()
	var text strings.Builder
	var names []string
	for i, s := range ws {
		fmt.Fprintf(&text, "witness w%d %s %s\n", i, s.Config.Handler.(*namedWitness).w.VerifierKey(), s.URL)
		names = append(names, s.Config.Handler.(*namedWitness).w.signer.Name())
	}
	fmt.Fprintf(&text, "quorum %d\n", quorum)
	p, err := ParsePolicy([]byte(text.String()))
	if err != nil {
		t.Fatal(err)
	}
	return p, names
}

// namedWitness serves a Witness's add-checkpoint, optionally corrupting
// its answers.
type namedWitness struct {
	w       *Witness
	corrupt bool
}

func (n *namedWitness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if !n.corrupt {
		n.w.ServeHTTP(rw, r)
		return
	}
	rec := httptest.NewRecorder()
	n.w.ServeHTTP(rec, r)
	b := rec.Body.Bytes()
	if rec.Code == http.StatusOK {
		b[len(b)-3] ^= 1
	}
	rw.WriteHeader(rec.Code)
	_, _ = rw.Write(b)
}

func startWitness(t *testing.T, name string, corrupt bool, logs ...*testLog) *httptest.Server {
	t.Helper()
	db := openDB(t, t.TempDir())
	t.Cleanup(func() { db.Close() })
	_, key, _ := ed25519.GenerateKey(nil)
	c, err := NewCosigner(name, key)
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
	s := httptest.NewServer(&namedWitness{w: w, corrupt: corrupt})
	t.Cleanup(s.Close)
	return s
}

func TestSubmitterGathersAQuorumRecoversFrom409AndRejectsBadCosignatures(t *testing.T) {
	l := newTestLog(t, "log.example/a")
	l.grow(30)
	good := startWitness(t, "w.example/good", false, l)
	unknown := startWitness(t, "w.example/unknown", false) // knows no log: 404
	liar := startWitness(t, "w.example/liar", true, l)     // cosignatures that do not verify
	policy, _ := policyFor(t, 1, good, unknown, liar)

	s := NewSubmitter(SubmitterConfig{Policy: policy, Proofs: leafProver{l}, Logger: quiet})
	out, count, err := s.Submit(t.Context(), l.checkpoint(t, 10))
	if err != nil || count != 1 {
		t.Fatalf("Submit = %d cosignatures, %v; want 1 (good)", count, err)
	}
	if !bytes.Equal(s.Cosigned(), out) {
		t.Fatal("a checkpoint that met the quorum is not served as cosigned")
	}
	goodV := policy.Witnesses[0].Verifier
	if _, err := note.Open(out, note.VerifierList(goodV)); err != nil {
		t.Fatalf("the cosigned checkpoint: %v", err)
	}
	if _, err := note.Open(out, note.VerifierList(policy.Witnesses[2].Verifier)); err == nil {
		t.Fatal("the liar's corrupted cosignature was kept")
	}

	// A new submitter (a restarted node) starts from size 0: the good
	// witness answers 409 with size 10, and the submitter retries with a
	// consistency proof from 10.
	s2 := NewSubmitter(SubmitterConfig{Policy: policy, Proofs: leafProver{l}, Logger: quiet})
	if _, count, err := s2.Submit(t.Context(), l.checkpoint(t, 20)); err != nil || count != 1 {
		t.Fatalf("after a restart: %d cosignatures, %v; want 1", count, err)
	}

	// Quorum 2 is not met: nothing new is served as cosigned.
	strict, _ := policyFor(t, 2, good, unknown, liar)
	s3 := NewSubmitter(SubmitterConfig{Policy: strict, Proofs: leafProver{l}, Logger: quiet})
	if _, count, _ := s3.Submit(t.Context(), l.checkpoint(t, 25)); count != 1 || s3.Cosigned() != nil {
		t.Fatalf("quorum 2 with one cosignature: count %d, cosigned %q", count, s3.Cosigned())
	}
}

func TestSubmitterToleratesAWitnessThatAnswers403(t *testing.T) {
	l := newTestLog(t, "log.example/a")
	l.grow(3)
	// litewitness answers 403 for a log it does not know (tlog-witness says 404).
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "unknown log", http.StatusForbidden)
	}))
	defer proxy.Close()
	policy, err := ParsePolicy(fmt.Appendf(nil, "witness w %s %s\nquorum 0\n", mustVerifierKey(t), proxy.URL))
	if err != nil {
		t.Fatal(err)
	}
	s := NewSubmitter(SubmitterConfig{Policy: policy, Proofs: leafProver{l}, Logger: quiet})
	if _, count, err := s.Submit(t.Context(), l.checkpoint(t, 3)); err != nil || count != 0 {
		t.Fatalf("Submit = %d, %v; want 0 cosignatures and no error", count, err)
	}
	if _, err := s.submitOne(t.Context(), policy.Witnesses[0], l.checkpoint(t, 3), checkpoint{size: 3}); !isUnknownLog(err) {
		t.Fatalf("a 403 gives %v, want ErrUnknownLog", err)
	}
}

func mustVerifierKey(t *testing.T) string {
	_, key, _ := ed25519.GenerateKey(nil)
	c, err := NewCosigner("w.example/w", key)
	if err != nil {
		t.Fatal(err)
	}
	return c.VerifierKey()
}

func isUnknownLog(err error) bool {
	return err != nil && strings.Contains(err.Error(), ErrUnknownLog.Error())
}

func TestPoliciesAreParsedOrRefusedNamingTheLine(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	c, _ := NewCosigner("w.example/w", key)
	vk := c.VerifierKey()
	p, err := ParsePolicy([]byte("# witnesses\nwitness a " + vk + " https://w.example/a/\n\nwitness b " + vk + " http://127.0.0.1:7380 # local\n"))
	if err != nil || len(p.Witnesses) != 2 || p.Quorum != 2 || p.Witnesses[0].URL != "https://w.example/a" {
		t.Fatalf("ParsePolicy = %+v, %v", p, err)
	}
	for text, want := range map[string]string{
		"witness a " + vk:              "line 1",
		"witness a " + vk + " ftp://x": "not an http(s) URL",
		"witness a nokey https://x":    "malformed verifier key",
		"witness a " + vk + " https://x\nwitness a " + vk + " https://y": "listed twice",
		"quorum 1":           "quorum 1 of only 0",
		"quorum x":           "want: quorum N",
		"quorum 0\nquorum 0": "second quorum",
		"log x":              "unknown statement",
	} {
		if _, err := ParsePolicy([]byte(text)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePolicy(%q) = %v, want an error saying %q", text, err, want)
		}
	}
}

// quiet discards the submitters' warnings about the test's bad witnesses.
var quiet = slog.New(slog.DiscardHandler)

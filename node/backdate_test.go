package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/intermesh"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
)

// joinerUpdate returns version 1 of n's federation, in force from round
// effective, adding a member, signed by n's member (the whole quorum of
// its federation of one) and by the new member: a certified update.
func joinerUpdate(t *testing.T, n *Node, effective uint64) []byte {
	t.Helper()
	genesis := n.FederationChain()[0]
	pub, newKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	vkey, _ := config.VerifierKey("test.example/joiner", pub)
	id, _ := config.PeerIDFromKey(pub)
	next := genesis.Federation
	next.Quorum = 0
	next.Members = append(append([]config.Member(nil), genesis.Members...), config.Member{Origin: "test.example/joiner", PeerID: id.String(), Key: vkey})
	v1, err := genesis.Next(&next, effective)
	if err != nil {
		t.Fatal(err)
	}
	return signUpdate(t, v1.Text(), map[string]ed25519.PrivateKey{n.cfg.Origin: n.key, "test.example/joiner": newKey})
}

// signUpdate signs a federation update's text with each of keys (by
// origin) and merges the signatures into one note.
func signUpdate(t *testing.T, text []byte, keys map[string]ed25519.PrivateKey) []byte {
	t.Helper()
	var signed []byte
	for origin, key := range keys {
		s, err := merkle.NewSigner(origin, key)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := config.SignFederationUpdate(text, s)
		if err != nil {
			t.Fatal(err)
		}
		if signed == nil {
			signed = sig
		} else if signed, err = config.MergeFederationSignatures(signed, sig); err != nil {
			t.Fatal(err)
		}
	}
	return signed
}

func TestABackdatedUpdateFromAPeersLogIsRefusedAndKeptAsEvidence(t *testing.T) {
	c := newSoloNode(t)
	n, err := New(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	runNode(t, n)
	var certified intermesh.Certificate
	waitFor(t, 15*time.Second, "two certified rounds", func() bool {
		cert, ok, err := intermesh.LatestCertificate(n.Log().DB())
		certified = cert
		return err == nil && ok && cert.Round > 1
	})
	// The quorum signs a new member in force from a round already
	// certified; the update reaches the node the way a peer's log hands it.
	signed := joinerUpdate(t, n, certified.Round)
	n.fedInbox <- signed
	waitFor(t, 10*time.Second, "the learner to judge the update", func() bool {
		return len(n.BackdatedUpdates()) > 0 || len(n.FederationChain()) > 1
	})
	if chain := n.FederationChain(); len(chain) != 1 {
		t.Fatalf("the node took a backdated update: its chain has %d versions", len(chain))
	}
	if k := updateRecords(t, n); k != 0 {
		t.Fatalf("%d FederationUpdate records after a refused update", k)
	}
	ev := n.BackdatedUpdates()
	if len(ev) != 1 || ev[0].Version != 1 || ev[0].Effective != certified.Round || ev[0].Round < certified.Round ||
		ev[0].Update != string(signed) || ev[0].Certificate == "" || len(ev[0].Signers) != 1 {
		t.Fatalf("evidence: %+v", ev)
	}
	// The same update again (from another peer, or /federation/updates)
	// is refused the same way and kept once.
	if _, err := n.learnFederationUpdate(t.Context(), signed); !errors.Is(err, ErrFederationBackdated) {
		t.Fatalf("the update again: %v, want ErrFederationBackdated", err)
	}
	if len(n.BackdatedUpdates()) != 1 {
		t.Fatalf("%d pieces of evidence for one update", len(n.BackdatedUpdates()))
	}
	if body := getText(t, "http://"+n.HTTPAddr()+"/metrics"); !strings.Contains(body, `intermesh_federation_updates_refused_total{reason="backdated"} 2`) {
		t.Errorf("metrics:\n%s", grepLines(body, "intermesh_federation"))
	}
	// The status page and /status.json show it, naming the signers.
	var st struct {
		Federation struct{ Backdated []portal.BackdatedUpdate }
	}
	getJSON(t, "http://"+n.HTTPAddr()+"/status.json", &st)
	if b := st.Federation.Backdated; len(b) != 1 || b[0].Update != string(signed) || b[0].Signers[0] != c.Origin {
		t.Errorf("/status.json shows %+v", b)
	}
	if page := getText(t, "http://"+n.HTTPAddr()+"/"); !strings.Contains(page, "Backdated federation updates refused") || !strings.Contains(page, `<b class="accused">`+c.Origin) {
		t.Errorf("the status page does not show the backdated update:\n%s", page)
	}
}

func TestANodeOfflineThroughTheEffectiveRoundLearnsTheUpdate(t *testing.T) {
	c := newSoloNode(t)
	n, err := New(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runNode(t, n)
	waitFor(t, 15*time.Second, "a certified round", func() bool {
		_, ok, err := intermesh.LatestCertificate(n.Log().DB())
		return err == nil && ok
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// Offline, the node certifies nothing; meanwhile the federation took
	// an update in force from the round after its last certificate.
	n2, err := New(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	last, _, err := intermesh.LatestCertificate(n2.Log().DB())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the effective round to pass", func() bool { return n2.Epoch() > last.Round+1 })
	grew, err := n2.learnFederationUpdate(t.Context(), joinerUpdate(t, n2, last.Round+1))
	if err != nil || !grew {
		t.Fatalf("an update in force from round %d (certified up to %d, now %d): %v, %v", last.Round+1, last.Round, n2.Epoch(), grew, err)
	}
	if len(n2.BackdatedUpdates()) != 0 || updateRecords(t, n2) != 1 {
		t.Fatalf("evidence %+v; %d FederationUpdate records", n2.BackdatedUpdates(), updateRecords(t, n2))
	}
}

package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/intermesh/intermesh/config"
)

// chainFixture is a federation of the test node and two members whose GET
// /federation/updates the test serves, with the keys to certify updates.
type chainFixture struct {
	c       config.Config
	keys    map[string]ed25519.PrivateKey // origin → key, the node's included
	serve   map[string]*string            // origin → the body its server answers
	genesis *config.FederationVersion
	asked   atomic.Int64 // GET /federation/updates the members' servers answered
}

func newChainFixture(t *testing.T) *chainFixture {
	t.Helper()
	f := &chainFixture{c: newTestNode(t, t.TempDir()), keys: map[string]ed25519.PrivateKey{}, serve: map[string]*string{}}
	nodeKey, err := config.LoadKey(f.c.KeyPath())
	if err != nil {
		t.Fatal(err)
	}
	f.keys[f.c.Origin] = nodeKey
	fed := &config.Federation{Name: "test", Quorum: 2, EpochPeriod: config.Duration{Duration: time.Second}}
	for _, origin := range []string{f.c.Origin, "test.example/liar", "test.example/honest"} {
		key := f.keys[origin]
		if key == nil {
			_, key, _ = ed25519.GenerateKey(rand.Reader)
			f.keys[origin] = key
		}
		pub := key.Public().(ed25519.PublicKey)
		vkey, _ := config.VerifierKey(origin, pub)
		id, _ := config.PeerIDFromKey(pub)
		m := config.Member{Origin: origin, PeerID: id.String(), Key: vkey, Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}
		if origin != f.c.Origin {
			body := `{"Updates":[]}`
			f.serve[origin] = &body
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/federation/updates" { // not the witness submissions
					f.asked.Add(1)
				}
				_, _ = w.Write([]byte(*f.serve[origin]))
			}))
			t.Cleanup(srv.Close)
			m.HTTP = srv.URL
		}
		fed.Members = append(fed.Members, m)
	}
	path := filepath.Join(f.c.Dir, "federation.toml")
	if err := fed.Write(path); err != nil {
		t.Fatal(err)
	}
	f.c.P2P.Federation = "federation.toml"
	f.c.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	f.genesis = config.Genesis(fed)
	return f
}

// certified returns version 1 (the same members, in force from round
// effective) signed by the node and the honest member: a quorum.
func (f *chainFixture) certified(t *testing.T, effective uint64) []byte {
	t.Helper()
	v1, err := f.genesis.Next(&f.genesis.Federation, effective)
	if err != nil {
		t.Fatal(err)
	}
	return signUpdate(t, v1.Text(), map[string]ed25519.PrivateKey{
		f.c.Origin: f.keys[f.c.Origin], "test.example/honest": f.keys["test.example/honest"]})
}

func body(t *testing.T, updates ...string) string {
	t.Helper()
	b, err := json.Marshal(FederationUpdates{Updates: updates})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestALyingMemberCannotHideTheCertifiedChain(t *testing.T) {
	junk := make([]string, 10)
	for i := range junk {
		junk[i] = "junk"
	}
	tests := []struct {
		name string
		liar func(v1 []byte) string
	}{
		{"a longer list of junk", func([]byte) string { return body(t, junk...) }},
		{"the update, then junk after it", func(v1 []byte) string { return body(t, string(v1), "junk", "junk") }},
		{"entries that are not strings", func([]byte) string { return `{"Updates":[1,2,3]}` }},
		{"an oversized entry", func([]byte) string { return body(t, strings.Repeat("x", config.MaxFederationNote+1)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newChainFixture(t)
			v1 := f.certified(t, Schedule{Period: time.Second}.Round(time.Now())+100)
			*f.serve["test.example/liar"] = tt.liar(v1)
			*f.serve["test.example/honest"] = body(t, string(v1))
			// At start the node asks both members for the chain.
			n, err := New(context.Background(), f.c, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			chain := n.FederationChain()
			if len(chain) != 2 || string(chain[1].Text()) != string(noteText(v1)) {
				t.Fatalf("the node's chain has %d versions; want the honest member's version 1", len(chain))
			}
			var m dto.Metric
			if err := n.fedRefused.WithLabelValues("unverified").Write(&m); err != nil {
				t.Fatal(err)
			}
			if got := m.GetCounter().GetValue(); got != 1 {
				t.Errorf("%v answers counted as unverified, want 1 (the liar's)", got)
			}
		})
	}
}

func TestAChainAnswerIsBoundedAndReadAsAStream(t *testing.T) {
	f := newChainFixture(t)
	genesis := []*config.FederationVersion{f.genesis}
	huge := `{"Updates":["` + strings.Repeat("x", 64<<20) + `"]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(huge)) }))
	defer srv.Close()
	_, err := fetchChain(t.Context(), srv.Client(), srv.URL, genesis)
	if err == nil {
		t.Fatal("a 64 MiB answer was read whole")
	}
	// The entries after the node's chain stop at maxUpdatesAhead; the
	// rest of the answer is not read.
	v1 := f.certified(t, 1000)
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(body(t, string(v1), "junk")))
	}))
	defer srv2.Close()
	got, err := fetchChain(t.Context(), srv2.Client(), srv2.URL, genesis)
	if len(got) != 1 || !errors.Is(err, errBadChain) {
		t.Fatalf("the update then junk: %d verified, %v; want 1 and errBadChain", len(got), err)
	}
}

func TestTheLearnerStopsAskingForAVersionNobodyServes(t *testing.T) {
	f := newChainFixture(t)
	n, err := New(context.Background(), f.c, nil)
	if err != nil {
		t.Fatal(err)
	}
	runNode(t, n)
	// A member's log names version 3, which no member serves: the node asks
	// the members each period, then gives up.
	far := Schedule{Period: time.Second}.Round(time.Now()) + 100
	v := f.genesis
	for i := range 3 {
		if v, err = v.Next(&v.Federation, far+uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	start := f.asked.Load()
	n.fedInbox <- append(v.Text(), "\n— test.example/liar AAAA\n"...)
	const perFetch = 2 // the two other members
	last, since := int64(-1), time.Now()
	waitFor(t, 30*time.Second, "the node to stop asking for version 3", func() bool {
		if got := f.asked.Load(); got != last {
			last, since = got, time.Now()
			return false
		}
		// Three periods without a request, after the fruitless fetches.
		return time.Since(since) >= 3*time.Second && last > start
	})
	// The learner's first fetch at start may fall after start was read.
	if asked := last - start; asked > perFetch*(maxFruitlessFetches+1) {
		t.Errorf("%d requests for a version nobody serves, want at most %d", asked, perFetch*(maxFruitlessFetches+1))
	}
	if len(n.FederationChain()) != 1 {
		t.Fatal("the chain grew from a version nobody serves")
	}
}

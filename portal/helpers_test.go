package portal_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/portal/mesh"
)

const testOrigin = "portal.test/log"

// testService is the service name of a test portal without one of its own:
// what its Hello answers and its AccountProofs name.
const testService = "portal.test"

var treePrefix = []byte{'T'}

// testPortal is a real portal: a log on Badger in a temporary directory with
// the portal state and the Merkle tree as indexers, served over HTTP.
type testPortal struct {
	origin   string
	log      *log.Log
	state    *portal.State
	tree     *merkle.Tree
	srv      *portal.Server
	url      string
	client   *client.Client
	signer   note.Signer
	verifier note.Verifier
	reg      *prometheus.Registry
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestPortal(t testing.TB, cfg portal.Config) *testPortal {
	t.Helper()
	return newPortalAt(t, testOrigin, cfg)
}

// newPortalAt is newTestPortal for a portal whose log is named origin. Its
// replica logs of peers are indexed as a node indexes them: the portal's
// replicated state and a Merkle tree per replica.
func newPortalAt(t testing.TB, origin string, cfg portal.Config) *testPortal {
	t.Helper()
	return openPortalAt(t, origin, t.TempDir(), cfg)
}

// openPortalAt is newPortalAt on the log in dir: a portal restarted on the
// data of one closed before (close its log first).
func openPortalAt(t testing.TB, origin, dir string, cfg portal.Config) *testPortal {
	t.Helper()
	ctx := context.Background()
	state := portal.NewState()
	l, err := log.Open(ctx, log.Options{
		Dir: dir, Logger: quietLogger(), Origin: origin,
		Indexers:      []log.Indexer{state},
		BatchIndexers: []log.BatchIndexer{merkle.NewTree(nil, treePrefix)}, // IndexBatch only uses its txn
		ReplicaIndexers: func(peer string) log.ReplicaOptions {
			return log.ReplicaOptions{
				Indexers:      []log.Indexer{state.ReplicaIndexer(peer)},
				BatchIndexers: []log.BatchIndexer{merkle.NewTree(nil, merkle.ReplicaPrefix(peer))},
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := merkle.NewSigner(origin, priv)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := merkle.NewVerifier(origin, pub)
	if err != nil {
		t.Fatal(err)
	}
	tree := merkle.NewTree(l.DB(), treePrefix)
	reg := prometheus.NewRegistry()
	if cfg.Service == "" {
		cfg.Service = testService
	}
	srv, err := portal.New(cfg, portal.Deps{
		Log: l, State: state, Checkpoints: tree, Schedule: portal.PeriodSchedule{Period: 10 * time.Second},
		Registerer: reg, Logger: quietLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	c, err := client.New(hs.URL, client.WithToken(cfg.TransferToken))
	if err != nil {
		t.Fatal(err)
	}
	return &testPortal{origin: origin, log: l, state: state, tree: tree, srv: srv, url: hs.URL, client: c, signer: signer, verifier: verifier, reg: reg}
}

// closeEpoch makes a checkpoint of the log as it is.
func (p *testPortal) closeEpoch(t testing.TB, round uint64) []byte {
	t.Helper()
	signed, _, err := p.tree.CloseEpoch(context.Background(), round, time.Now(), p.signer, p.origin)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// post sends a raw body to the protocol endpoint and returns the HTTP
// status and the decoded response's status fields.
func (p *testPortal) post(t testing.TB, body []byte, header http.Header) (int, portal.MeshResponse) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.url+portal.WellKnownPath, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]portal.MeshResponse
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || len(m) != 1 {
		t.Fatalf("response is not one message: %v %v", m, err)
	}
	for _, v := range m {
		return resp.StatusCode, v
	}
	panic("unreachable")
}

func newKey(t testing.TB, c mesh.Curve) *mesh.PrivateKey {
	t.Helper()
	k, err := mesh.GenerateKey(rand.Reader, c)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// entryOf signs obj with keys and returns the tagged entry. A profile is
// stamped first with an Updated time later than the one it had, so that
// each call makes a newer version.
func entryOf(t testing.TB, obj mesh.Object, keys ...*mesh.PrivateKey) portal.Entry {
	t.Helper()
	if p, ok := obj.(mesh.SignedProfile); ok {
		stampUpdated(p.Base())
	}
	env, err := mesh.SignObject(obj, keys...)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := mesh.MarshalEntry(obj.TypeName(), env)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// stampUpdated sets p.Updated to now, or just after its previous value.
func stampUpdated(p *mesh.Profile) {
	now := time.Now().UTC().Round(0)
	if p.Updated != nil && !now.After(*p.Updated) {
		now = p.Updated.Add(time.Microsecond)
	}
	p.Updated = &now
}

// accountProof signs an AccountProof for a test portal (testService),
// account and tx (and, for Publish, entry) with key, now.
func accountProof(t testing.TB, account, tx string, entry portal.Entry, key *mesh.PrivateKey) portal.Entry {
	t.Helper()
	proof, err := portal.SignAccountProof(testService, account, tx, entry, time.Now(), key)
	if err != nil {
		t.Fatal(err)
	}
	return proof
}

// publishFor publishes an entry for account with a proof signed by key.
func publishFor(t testing.TB, c *client.Client, account string, entry portal.Entry, key *mesh.PrivateKey) error {
	t.Helper()
	_, err := c.Publish(context.Background(), &portal.PublishRequest{Entry: entry, AccountID: account,
		Proof: accountProof(t, account, portal.TxPublish, entry, key)})
	return err
}

func envelopeOf(t testing.TB, obj mesh.Object, keys ...*mesh.PrivateKey) *mesh.Envelope {
	t.Helper()
	env, err := mesh.SignObject(obj, keys...)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// user is a Mesh user with a ProfileMesh and a ProfileAccount and their keys.
type user struct {
	meshOffline, meshOnline *mesh.PrivateKey
	acctOffline, acctOnline *mesh.PrivateKey
	profileMesh             *mesh.ProfileMesh
	profileAccount          *mesh.ProfileAccount
}

func newUser(t testing.TB, address string) *user {
	u := &user{meshOffline: newKey(t, mesh.CurveEd448), meshOnline: newKey(t, mesh.CurveEd448),
		acctOffline: newKey(t, mesh.CurveEd448), acctOnline: newKey(t, mesh.CurveEd448)}
	u.profileMesh = &mesh.ProfileMesh{
		Profile: mesh.Profile{
			KeyOfflineSignature: mesh.NewKeyData(u.meshOffline.Public()),
			KeysOnlineSignature: []mesh.KeyData{*mesh.NewKeyData(u.meshOnline.Public())},
		},
		KeyEncryption: mesh.NewKeyData(newKey(t, mesh.CurveX448).Public()),
	}
	u.profileAccount = &mesh.ProfileAccount{
		Profile: mesh.Profile{
			KeyOfflineSignature: mesh.NewKeyData(u.acctOffline.Public()),
			KeysOnlineSignature: []mesh.KeyData{*mesh.NewKeyData(u.acctOnline.Public())},
		},
		AccountAddresses:  []string{address},
		MeshProfileUDF:    u.meshOffline.UDF().String(),
		KeyEncryption:     mesh.NewKeyData(newKey(t, mesh.CurveX448).Public()),
		KeyAuthentication: mesh.NewKeyData(newKey(t, mesh.CurveX448).Public()),
	}
	return u
}

func (u *user) accountUDF() string { return u.acctOffline.UDF().String() }

// newDevice returns a signed ProfileDevice envelope and its offline key.
func newDevice(t testing.TB, description string) (*mesh.Envelope, *mesh.PrivateKey) {
	off := newKey(t, mesh.CurveEd448)
	dev := &mesh.ProfileDevice{
		Profile:           mesh.Profile{KeyOfflineSignature: mesh.NewKeyData(off.Public())},
		Description:       description,
		KeyEncryption:     mesh.NewKeyData(newKey(t, mesh.CurveX448).Public()),
		KeyAuthentication: mesh.NewKeyData(newKey(t, mesh.CurveX448).Public()),
	}
	return envelopeOf(t, dev, off), off
}

// escrowEntry is the tagged, unsigned entry of an OfflineEscrowEntry.
func escrowEntry(t testing.TB, o *mesh.OfflineEscrowEntry) portal.Entry {
	t.Helper()
	return entryOf(t, o)
}

func mustStatus(t testing.TB, err error, want int) *portal.Error {
	t.Helper()
	var pe *portal.Error
	if want == portal.SuccessOK {
		if err != nil {
			t.Fatalf("got %v, want success", err)
		}
		return nil
	}
	if err == nil {
		t.Fatalf("got success, want status %d", want)
	}
	if !errors.As(err, &pe) || pe.Status != want {
		t.Fatalf("got %v, want status %d", err, want)
	}
	return pe
}

// consented is a CreateRequest binding account to profile with the consent
// of key, one of the profile's keys: an AccountProof it signed.
func consented(t testing.TB, account string, profile portal.Entry, key *mesh.PrivateKey) *portal.CreateRequest {
	t.Helper()
	return &portal.CreateRequest{Account: account, Profile: profile,
		Proof: accountProof(t, account, portal.TxCreateAccount, profile, key)}
}

package intermesh

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// testProfile is a Mesh profile with its offline key, to log versions of.
type testProfile struct {
	profile *mesh.ProfileMesh
	offline *mesh.PrivateKey
}

func newTestProfile(t testing.TB) *testProfile {
	t.Helper()
	off, err := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := mesh.GenerateKey(rand.Reader, mesh.CurveX448)
	if err != nil {
		t.Fatal(err)
	}
	return &testProfile{offline: off, profile: &mesh.ProfileMesh{
		Profile:       mesh.Profile{KeyOfflineSignature: mesh.NewKeyData(off.Public())},
		KeyEncryption: mesh.NewKeyData(enc.Public()),
	}}
}

// id is the profile's identifier.
func (p *testProfile) id() string { return p.offline.Public().UDF().String() }

// record is a Profile record, as a portal logs a Publish, of the version
// of p updated at when, under identifier id.
func (p *testProfile) record(t testing.TB, when time.Time, id string) log.Record {
	t.Helper()
	p.profile.Updated = &when
	env, err := mesh.SignObject(p.profile, p.offline)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := mesh.MarshalEntry(p.profile.TypeName(), env)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := portal.MarshalPortalEntry(&portal.PortalEntry{Transaction: portal.TxPublish, Type: mesh.TypeProfileMesh, Updated: &when, Entry: raw})
	if err != nil {
		t.Fatal(err)
	}
	return log.Record{Kind: portal.KindProfile, Identifier: id, Account: "alice", Payload: payload}
}

// appendRecords appends recs to l.
func appendRecords(t testing.TB, l *log.Log, recs ...log.Record) {
	t.Helper()
	for _, r := range recs {
		if _, err := l.Append(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
}

// appendNotes appends n records that set no key of the map.
func appendNotes(t testing.TB, l *log.Log, n int) {
	t.Helper()
	for range n {
		appendRecords(t, l, log.Record{Kind: "Note", Payload: []byte("{}")})
	}
}

// TestRuleEvidenceIsCheckedWithTheRecordsAlone: evidence that a member's
// checkpoint covers a profile version logged after a newer one verifies
// with the federation file and the portal's rule, and every forgery of it
// (a record swapped, moved or not in the checkpoint, a checkpoint of
// another member, records that keep the rule, no rule to check with) is
// refused.
func TestRuleEvidenceIsCheckedWithTheRecordsAlone(t *testing.T) {
	const n = 2
	fed, keys := testFederationOf(t, n, 10*time.Second)
	l := openTestLog(t, fed.Members[0].Origin)
	alice := newTestProfile(t)
	t0 := time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)
	appendNotes(t, l, 3)
	appendRecords(t, l, alice.record(t, t0.Add(time.Hour), alice.id()), alice.record(t, t0, alice.id()))
	appendNotes(t, l, 2)
	lt := &logAndTree{log: l, tree: merkle.NewTree(l.DB(), []byte("local"))}
	hc := heldNote(t, lt.close(t, fed.Members[0].Origin, keys, 0, 1, 0))
	newer, older, note2 := mustGet(t, l, 3), mustGet(t, l, 4), mustGet(t, l, 2)
	rs := &replicaState{origin: fed.Members[0].Origin, tree: lt.tree}
	e, err := rs.ruleEvidence(hc, &ruleViolation{prev: &newer, rec: &older, err: errors.New("test")})
	if err != nil {
		t.Fatal(err)
	}
	// Through JSON, as it is gossiped and logged.
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var back Evidence
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	why, err := VerifyEvidenceWith(back, fed, portal.CheckMapRecord)
	if err != nil || !strings.HasPrefix(why, reasonMapRule) || !strings.Contains(why, "signed Updated order") {
		t.Fatalf("VerifyEvidenceWith: %q, %v", why, err)
	}
	if _, err := VerifyEvidence(back, fed); !errors.Is(err, ErrInvalidEvidence) {
		t.Errorf("without a rule: %v, want ErrInvalidEvidence", err)
	}
	forge := map[string]func(e *Evidence){
		"records swapped":    func(e *Evidence) { e.Records[0], e.Records[1] = e.Records[1], e.Records[0] },
		"older alone":        func(e *Evidence) { e.Records = e.Records[1:] },
		"a record moved":     func(e *Evidence) { e.Records[1].Index = 5 },
		"a leaf changed":     func(e *Evidence) { e.Records[1].Leaf = note2.MarshalLeaf() },
		"a proof cut":        func(e *Evidence) { e.Records[1].Proof = e.Records[1].Proof[1:] },
		"another origin":     func(e *Evidence) { e.Origin = fed.Members[1].Origin },
		"a second note":      func(e *Evidence) { e.Notes[1] = e.Notes[0] },
		"no records":         func(e *Evidence) { e.Records = nil },
		"three records":      func(e *Evidence) { e.Records = append(e.Records, e.Records[1]) },
		"a note not signed":  func(e *Evidence) { e.Notes[0] = append([]byte(nil), e.Notes[0][:len(e.Notes[0])-10]...) },
		"a record past size": func(e *Evidence) { e.Records[1].Index = 1 << 40 },
		"a proof too long":   func(e *Evidence) { e.Records[1].Proof = make([][]byte, maxProofHashes+1) },
	}
	for name, f := range forge {
		var c Evidence
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		f(&c)
		if why, err := VerifyEvidenceWith(c, fed, portal.CheckMapRecord); !errors.Is(err, ErrInvalidEvidence) {
			t.Errorf("%s: %q, %v, want ErrInvalidEvidence", name, why, err)
		}
	}
}

// mustGet reads record i of l.
func mustGet(t testing.TB, l *log.Log, i uint64) log.Record {
	t.Helper()
	r, err := l.Get(i)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

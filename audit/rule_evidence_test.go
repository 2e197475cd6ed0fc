package audit

import (
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// profileLeaf is the leaf of a Profile record at seq of a version of p,
// signed by key and updated at when.
func profileLeaf(t *testing.T, p *mesh.ProfileMesh, key *mesh.PrivateKey, seq uint64, when time.Time) []byte {
	t.Helper()
	p.Updated = &when
	env, err := mesh.SignObject(p, key)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := mesh.MarshalEntry(p.TypeName(), env)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := portal.MarshalPortalEntry(&portal.PortalEntry{Transaction: portal.TxPublish, Type: mesh.TypeProfileMesh, Entry: raw})
	if err != nil {
		t.Fatal(err)
	}
	r := log.Record{Seq: seq, Time: when, Kind: portal.KindProfile, Identifier: key.Public().UDF().String(), Payload: payload, Origin: "fed/node1"}
	return r.MarshalLeaf()
}

// TestTheAuditChecksRuleEvidence: evidence that a member logged alice's
// older profile version after her newer one holds up in the audit, by the
// auditor's own inclusion check and the portal's rules; the records in
// the other order, or one of them changed, do not.
func TestTheAuditChecksRuleEvidence(t *testing.T) {
	fed, signers := testMembers(t, 2)
	keys := mustKeys(t, fed)
	key, err := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
	if err != nil {
		t.Fatal(err)
	}
	p := &mesh.ProfileMesh{Profile: mesh.Profile{KeyOfflineSignature: mesh.NewKeyData(key.Public())}}
	t0 := time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)
	leaves := [][]byte{[]byte("\x01other"), profileLeaf(t, p, key, 1, t0.Add(time.Hour)), profileLeaf(t, p, key, 2, t0)}
	var hashes [][]byte
	for _, l := range leaves {
		hashes = append(hashes, rfc6962.DefaultHasher.HashLeaf(l))
	}
	root, err := merkle.LeafRoot(hashes, 3)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := merkle.SignCheckpoint(merkle.Checkpoint{Origin: signers[1].Name(), Size: 3, Root: root, Round: 7, Time: 1}, signers[1])
	if err != nil {
		t.Fatal(err)
	}
	record := func(i uint64) evidenceRecord {
		pr, err := merkle.LeafInclusionProof(hashes, i)
		if err != nil {
			t.Fatal(err)
		}
		return evidenceRecord{Index: i, Leaf: leaves[i], Proof: pr}
	}
	valid := evidencePayload{Origin: signers[1].Name(), Reason: "map-rule", Notes: [2]string{string(cp), ""},
		Records: []evidenceRecord{record(1), record(2)}}
	b, err := json.Marshal(valid)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := parseEvidence(b)
	if err != nil {
		t.Fatal(err)
	}
	if why, err := keys.verifyEvidence(parsed); err != nil || !strings.Contains(why, "signed Updated order") {
		t.Fatalf("valid rule evidence: %q, %v", why, err)
	}
	changed := record(2)
	changed.Leaf = leaves[0]
	for name, recs := range map[string][]evidenceRecord{
		"the older version alone":         {record(2)},
		"the newer version alone":         {record(1)},
		"out of order":                    {record(2), record(1)},
		"a leaf not the one at its index": {record(1), changed},
		"three records":                   {record(1), record(2), record(2)},
		"none":                            nil,
	} {
		e := valid
		e.Records = recs
		if why, err := keys.verifyEvidence(e); err == nil {
			t.Errorf("%s: held up: %q", name, why)
		}
	}
	other := valid
	other.Origin = signers[0].Name()
	if _, err := keys.verifyEvidence(other); err == nil {
		t.Error("another member's name on the evidence held up")
	}
}

package portal

import (
	"crypto/rand"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal/mesh"
	"github.com/intermesh/intermesh/vmap"
)

// signedHistory is one profile's versions, each a Publish record signed by
// the offline key ('o') or the administration key ('a'), in a log where
// another identifier's record sits between any two of them.
func signedHistory(t *testing.T, signers string) (source, []log.Record) {
	t.Helper()
	gen := func(c mesh.Curve) *mesh.PrivateKey {
		k, err := mesh.GenerateKey(rand.Reader, c)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	offline, admin, enc := gen(mesh.CurveEd448), gen(mesh.CurveEd448), gen(mesh.CurveX448)
	p := &mesh.ProfileMesh{Profile: mesh.Profile{KeyOfflineSignature: mesh.NewKeyData(offline.Public()),
		KeysOnlineSignature: []mesh.KeyData{*mesh.NewKeyData(admin.Public())}}, KeyEncryption: mesh.NewKeyData(enc.Public())}
	id := offline.Public().UDF().String()
	var all, mine []log.Record
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, s := range signers {
		key := offline
		if s == 'a' {
			key = admin
		}
		when := t0.Add(time.Duration(i) * time.Second)
		p.Updated = &when
		env, err := mesh.SignObject(p, key)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := mesh.MarshalEntry(p.TypeName(), env)
		if err != nil {
			t.Fatal(err)
		}
		payload, err := MarshalPortalEntry(&PortalEntry{Transaction: TxPublish, Type: p.TypeName(), Entry: raw,
			Signer: key.Public().UDF().String(), OfflineKey: id}) // as the portal writes them
		if err != nil {
			t.Fatal(err)
		}
		other := log.Record{Seq: uint64(len(all)), Kind: KindEscrow, Identifier: "OTHER", Origin: "o", Time: when, Payload: []byte("{}")}
		rec := log.Record{Seq: uint64(len(all) + 1), Kind: KindProfile, Identifier: id, Origin: "o", Time: when, Payload: payload}
		all, mine = append(all, other, rec), append(mine, rec)
	}
	src := source{
		seqs: func(name string, from uint64, limit int) ([]uint64, bool, error) {
			var out []uint64
			for _, r := range all {
				if r.Identifier == name && r.Seq >= from {
					if len(out) == limit {
						return out, true, nil
					}
					out = append(out, r.Seq)
				}
			}
			return out, false, nil
		},
		get: func(seq uint64) (log.Record, error) {
			if seq >= uint64(len(all)) {
				return log.Record{}, fmt.Errorf("no record %d", seq)
			}
			return all[seq], nil
		},
	}
	return src, mine
}

// The predecessors of a profile's latest version are the versions before
// it back to the latest one its offline key signed, at most
// MaxPredecessors, and the history value before them continues, over
// them and the latest, into the key's history.
func TestPredecessorsGoBackToTheLatestOfflineSignedVersion(t *testing.T) {
	for _, tc := range []struct {
		name, signers string
		want          int // predecessors; -1: none asked for
	}{
		{"an offline-signed latest needs none", "oao", -1},
		{"an admin-signed second version", "oa", 1},
		{"back to the first version", "oaa", 2},
		{"back to the latest offline-signed version only", "ooaoaa", 2},
		{"an admin-signed first version has none to show", "a", 0},
		{"at most MaxPredecessors", "o" + strings.Repeat("a", MaxPredecessors+4), MaxPredecessors},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, versions := signedHistory(t, tc.signers)
			latest := versions[len(versions)-1]
			chain, err := predecessorsOf(src, &latest)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want < 0 {
				if chain != nil {
					t.Fatalf("%d predecessors of an offline-signed latest version", len(chain.records))
				}
				return
			}
			if chain == nil {
				t.Fatalf("no chain, want %d predecessors", tc.want)
			}
			if len(chain.records) != tc.want {
				t.Fatalf("%d predecessors, want %d", len(chain.records), tc.want)
			}
			var full, h vmap.Hash
			start := len(versions) - 1 - tc.want
			for i, r := range versions {
				full = vmap.NextHistory(full, r.Seq, leafHash(r))
				if i == start-1 {
					h = full
				}
			}
			if chain.before != h {
				t.Errorf("the history value before the predecessors is not the chain over the %d versions before them", start)
			}
			for i, r := range chain.records {
				if r.Seq != versions[start+i].Seq {
					t.Fatalf("predecessor %d is record %d, want %d", i, r.Seq, versions[start+i].Seq)
				}
				h = vmap.NextHistory(h, r.Seq, leafHash(r))
			}
			if vmap.NextHistory(h, latest.Seq, leafHash(latest)) != full {
				t.Error("the predecessors and the latest do not continue the history value into the key's history")
			}
		})
	}
}

func leafHash(r log.Record) vmap.Hash {
	return vmap.Hash(rfc6962.DefaultHasher.HashLeaf(r.MarshalLeaf()))
}

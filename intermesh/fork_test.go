package intermesh

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
)

// leafHashesOf returns the RFC 6962 leaf hashes of recs.
func leafHashesOf(recs []log.Record) [][]byte {
	out := make([][]byte, len(recs))
	for i := range recs {
		out[i] = rfc6962.DefaultHasher.HashLeaf(recs[i].MarshalLeaf())
	}
	return out
}

// offerSigned opens a signed checkpoint and hands it to m's replicator.
func offerSigned(t *testing.T, m *Mesh, signed []byte) {
	t.Helper()
	hc, err := m.verifyCheckpoint(signed)
	if err != nil {
		t.Fatal(err)
	}
	m.repl.offerCheckpoint(hc)
}

func TestAMemberWhoseLogGrewPastARewriteIsProvenToHaveForked(t *testing.T) {
	fed, keys := testFederation(t, 2)
	origin := fed.Members[0].Origin
	la, lb := openTestLog(t, origin), openTestLog(t, fed.Members[1].Origin)
	signer := newTestLog(t, origin, keys[0]).signer
	// Rounds are taken when each checkpoint is signed, so that a slow
	// machine cannot push them out of the round window.
	r := uint64(time.Now().Unix())

	// B verified a checkpoint of 5 records of A's first history.
	honest := testRecords(origin, 0, 5, 3)
	b, _ := startReplicating(t, fed, keys, 1, lb)
	rep, err := lb.Replica(origin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rep.Append(t.Context(), honest); err != nil {
		t.Fatal(err)
	}
	c1 := signedCheckpoint(t, signer, leafHashesOf(honest), r-1)
	offerSigned(t, b, c1)
	waitFor(t, 5*time.Second, "B's replica of A verified", func() bool { return b.Replicas()[origin].VerifiedSize == 5 })

	// A now serves a rewritten log of 12 records and signs it.
	for i := range 12 {
		if _, err := la.Append(t.Context(), log.Record{Kind: "Profile", Identifier: fmt.Sprint("rewritten", i), Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	tree := merkle.NewTree(la.DB(), []byte("local"))
	root, err := tree.Root(12)
	if err != nil {
		t.Fatal(err)
	}
	r = max(r, uint64(time.Now().Unix()))
	c2, err := merkle.SignCheckpoint(merkle.Checkpoint{Origin: origin, Size: 12, Root: root, Round: r, Time: int64(r)}, signer)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := startReplicating(t, fed, keys, 0, la)
	connect(t, []*node{{Mesh: a}, {Mesh: b}})
	offerSigned(t, b, c2)

	ev := (&node{Mesh: b}).waitEvidence(t, 1)
	e := ev[0]
	if e.Origin != origin || string(e.Notes[0]) != string(c1) || string(e.Notes[1]) != string(c2) || e.Root1 == nil {
		t.Fatalf("evidence %+v, want consistency evidence of c1 and c2", e)
	}
	if why, err := VerifyEvidence(e, fed); err != nil || !strings.HasPrefix(why, reasonNotConsistent) {
		t.Fatalf("VerifyEvidence: %q, %v", why, err)
	}
	waitFor(t, 5*time.Second, "the investigation counted", func() bool {
		return counterValue(t, b.metrics.forkChecks.WithLabelValues("evidence")) == 1
	})
	waitFor(t, 5*time.Second, "the Evidence record appended", func() bool {
		_, ok := b.EvidenceRecord(e)
		return ok
	})
}

// counterValue reads a counter.
func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetCounter().GetValue()
}

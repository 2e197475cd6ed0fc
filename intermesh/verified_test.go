package intermesh

import (
	"bytes"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// TestAReplicasVerifiedSizeNeverDecreases: B's replica of A holds A's 8
// records, verified against A's checkpoint of round r. A then signs, in
// each of the next keepVerified rounds, a checkpoint of its first 5
// records (a tree that shrank, signed after the round loop forgot the
// checkpoint of 8); the replica reproduces every one of them. Replicas
// and intermesh_replica_verified_size still say 8, with the checkpoint of
// 8, after the verified checkpoints kept have all been replaced by later
// ones.
func TestAReplicasVerifiedSizeNeverDecreases(t *testing.T) {
	t.Parallel()
	fed, keys := testFederation(t, 2)
	origin := fed.Members[0].Origin
	la, lb := openTestLog(t, origin), openTestLog(t, fed.Members[1].Origin)
	signer := newTestLog(t, origin, keys[0]).signer
	records := appendProfiles(t, la, 8)
	wide := func(c *Config) { c.RoundWindow = 100 }
	a, _ := startReplicating(t, fed, keys, 0, la, wide)
	b, _ := startReplicating(t, fed, keys, 1, lb, wide)
	connect(t, []*node{{Mesh: a}, {Mesh: b}})
	r := uint64(time.Now().Unix()) - 50
	c8 := signedCheckpoint(t, signer, leafHashesOf(records), r)
	offerSigned(t, b, c8)
	waitFor(t, 10*time.Second, "B's replica of A verified up to 8", func() bool { return b.Replicas()[origin].VerifiedSize == 8 })

	var last []byte
	for i := range uint64(keepVerified) {
		last = signedCheckpoint(t, signer, leafHashesOf(records[:5]), r+1+i)
		offerSigned(t, b, last)
	}
	rs := b.repl.origins[origin]
	waitFor(t, 10*time.Second, "the last checkpoint of 5 verified", func() bool {
		for _, hc := range rs.verifiedCheckpoints() {
			if bytes.Equal(hc.note, last) {
				return true
			}
		}
		return false
	})
	st := b.Replicas()[origin]
	if st.VerifiedSize != 8 || !bytes.Equal(st.Verified, c8) {
		t.Errorf("Replicas: verified size %d (checkpoint %q), want 8 (the checkpoint of round %d)", st.VerifiedSize, st.Verified, r)
	}
	var d dto.Metric
	if err := b.metrics.verifiedSize.WithLabelValues(origin).Write(&d); err != nil {
		t.Fatal(err)
	}
	if got := d.GetGauge().GetValue(); got != 8 {
		t.Errorf("intermesh_replica_verified_size = %v, want 8", got)
	}
	if n := len(rs.verifiedCheckpoints()); n != keepVerified {
		t.Errorf("%d verified checkpoints kept, want %d", n, keepVerified)
	}
}

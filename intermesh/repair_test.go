package intermesh

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
)

// TestAPoisonedReplicaIsRepairedFromItsOrigin: B's replica of A holds A's
// first 6 records and 2 forged ones after them, as a lying relay could
// leave it before relayed records had to be proven by a checkpoint. When
// A's checkpoint of its 8 records arrives, B finds its replica does not
// reproduce it (untrusted), and, without a restart, repairs it from A: it
// cuts the 2 forged records (records and Merkle tree), rebuilds what was
// derived from the replica, fetches A's records 6 and 7, and verifies the
// checkpoint. A is not blamed.
func TestAPoisonedReplicaIsRepairedFromItsOrigin(t *testing.T) {
	t.Parallel()
	fed, keys := testFederation(t, 2)
	origin := fed.Members[0].Origin
	la, lb := openTestLog(t, origin), openTestLog(t, fed.Members[1].Origin)
	for i := range 8 {
		if _, err := la.Append(t.Context(), log.Record{Kind: log.KindProfile, Identifier: fmt.Sprint("p", i), Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := la.Range(t.Context(), log.Constraints{From: 0, MaxEntries: 8})
	if err != nil {
		t.Fatal(err)
	}
	poisoned := append([]log.Record(nil), page.Records...)
	for i := 6; i < 8; i++ {
		poisoned[i].Payload = []byte(`{"forged":true}`)
	}
	rep, err := lb.Replica(origin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rep.Append(t.Context(), poisoned); err != nil {
		t.Fatal(err)
	}

	var resets atomic.Int32
	a, _ := startReplicating(t, fed, keys, 0, la)
	b, _ := startReplicating(t, fed, keys, 1, lb, func(c *Config) {
		c.ReplicaReset = func(_ context.Context, o string) error {
			if o == origin {
				resets.Add(1)
			}
			return nil
		}
	})
	connect(t, []*node{{Mesh: a}, {Mesh: b}})
	signer, err := merkle.NewSigner(origin, keys[0])
	if err != nil {
		t.Fatal(err)
	}
	r := uint64(time.Now().Unix()) - 1
	signed, _, err := merkle.NewTree(la.DB(), []byte("local")).CloseEpoch(t.Context(), r, time.Now(), signer, origin)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.PublishCheckpoint(t.Context(), r, signed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "B's replica of A repaired and verified", func() bool {
		st := b.Replicas()[origin]
		return st.VerifiedSize == 8 && st.Untrusted == ""
	})
	if got := counterValue(t, b.metrics.inconsistent.WithLabelValues(origin)); got != 1 {
		t.Fatalf("the replica was found inconsistent %v times, want 1 (before the repair)", got)
	}
	if got := counterValue(t, b.metrics.repairs.WithLabelValues(origin, "repaired")); got != 1 {
		t.Fatalf("%v repairs, want 1", got)
	}
	if resets.Load() != 1 {
		t.Fatalf("ReplicaReset called %d times, want 1", resets.Load())
	}
	for i := range page.Records {
		got, err := rep.Get(uint64(i))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.MarshalLeaf(), page.Records[i].MarshalLeaf()) {
			t.Fatalf("replica record %d is not A's after the repair", i)
		}
	}
	cp, _, err := merkle.OpenCheckpoint(signed, b.verifiers)
	if err != nil {
		t.Fatal(err)
	}
	if err := merkle.NewTree(lb.DB(), merkle.ReplicaPrefix(origin)).VerifyCheckpoint(cp); err != nil {
		t.Fatalf("the replica's tree after the repair: %v", err)
	}
	if ev := b.Evidence(); len(ev) != 0 {
		t.Fatalf("B blames A: %v", ev)
	}
}

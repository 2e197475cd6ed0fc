package testnet

import (
	"slices"
	"testing"
	"time"

	"github.com/intermesh/intermesh/portal/client"
)

// BenchmarkReplicationLag measures, on a testnet of 8 nodes with 1 s
// rounds, the time from a Publish acknowledged by node 0 to the moment the
// record is in every other node's replica (replicated_ms: gossiped and
// appended) and covered by a checkpoint of node 0 that every replica
// verifies (verified_ms: this waits for node 0's next round close, so it is
// at most a period plus the gossip). Run it with a fixed count:
//
//	go test ./testnet/ -run XXX -bench ReplicationLag -benchtime 20x
func BenchmarkReplicationLag(b *testing.B) {
	tn := startTestnet(b, 8)
	c0, err := client.New(tn.PortalURL(0))
	if err != nil {
		b.Fatal(err)
	}
	origin := tn.opts.Origin(0)
	var replicated, verified []float64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		entry, id, key, err := NewProfile()
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if _, err := CreateAccountWith(b.Context(), c0, tn.Account(0, id), entry, key); err != nil {
			b.Fatal(err)
		}
		size := tn.Node(0).Log().Size()
		var rep time.Duration
		for {
			all, allVerified := true, true
			for i := 1; i < tn.Size(); i++ {
				st := tn.Node(i).Mesh().Replicas()[origin]
				all = all && st.Size >= size
				allVerified = allVerified && st.VerifiedSize >= size
			}
			if all && rep == 0 {
				rep = time.Since(start)
			}
			if allVerified {
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatalf("record %d not verified everywhere after 10 s", size-1)
			}
			time.Sleep(2 * time.Millisecond)
		}
		replicated = append(replicated, float64(rep)/float64(time.Millisecond))
		verified = append(verified, float64(time.Since(start))/float64(time.Millisecond))
	}
	b.StopTimer()
	report(b, "replicated", replicated)
	report(b, "verified", verified)
}

func report(b *testing.B, name string, ms []float64) {
	slices.Sort(ms)
	pct := func(p float64) float64 { return ms[min(len(ms)-1, int(p*float64(len(ms))))] }
	b.ReportMetric(pct(0.50), name+"_p50_ms")
	b.ReportMetric(pct(0.99), name+"_p99_ms")
}

package intermesh

import (
	"testing"
	"time"
)

func TestRecordsRelayedByALiarAreDroppedAndFetchedFromAnHonestMember(t *testing.T) {
	fed, keys := testFederation(t, 4)
	origin := fed.Members[0].Origin // never runs: only relays serve its records
	honest := testRecords(origin, 0, 8, 3)
	const liarIndex = 2 // node2 relays another record 4; node3 the origin's
	meshes := map[int]*Mesh{}
	for i := range 4 {
		if i == 0 {
			continue
		}
		l := openTestLog(t, fed.Members[i].Origin)
		if i >= 2 {
			recs := testRecords(origin, 0, 8, 3)
			if i == liarIndex {
				recs[4].Payload = []byte("yyy")
			}
			rep, err := l.Replica(origin)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rep.Append(t.Context(), recs); err != nil {
				t.Fatal(err)
			}
		}
		meshes[i], _ = startReplicating(t, fed, keys, i, l)
	}
	b := meshes[1]
	signer := newTestLog(t, origin, keys[0]).signer
	cp := signedCheckpoint(t, signer, leafHashesOf(honest[:6]), uint64(time.Now().Unix()))

	// B asks the liar first: it is the only member B is connected to.
	connect(t, []*node{{Mesh: b}, {Mesh: meshes[liarIndex]}})
	offerSigned(t, b, cp)
	liar := fed.Members[liarIndex].Origin
	waitFor(t, 5*time.Second, "the liar's page dropped", func() bool {
		return counterValue(t, b.metrics.badRelays.WithLabelValues(liar)) >= 1
	})
	st := b.Replicas()[origin]
	if st.Untrusted != "" || st.Size != 0 {
		t.Fatalf("after the liar's page B's replica holds %d records, untrusted %q; want 0, trusted", st.Size, st.Untrusted)
	}

	// Then an honest relay serves the records, and they verify.
	connect(t, []*node{{Mesh: b}, {Mesh: meshes[3]}})
	waitFor(t, 5*time.Second, "B's replica verified from the honest relay", func() bool {
		st := b.Replicas()[origin]
		return st.VerifiedSize == 6 && st.Untrusted == ""
	})
	if got := counterValue(t, b.metrics.badRelays.WithLabelValues(fed.Members[3].Origin)); got != 0 {
		t.Errorf("the honest relay was counted %v times as a liar", got)
	}
}

// TestRecordsRelayedPastTheOriginsCheckpointWaitForOne is the lying relay
// past the checkpointed range: node2 relays the origin's 6 checkpointed
// records honestly but forges records 6 and 7, which no checkpoint covers
// yet. B takes only the 6 records the checkpoint proves; when the origin's
// checkpoint of 8 records arrives, the relay's forged records are caught
// against it, the relay (not the origin) is counted as a liar, and an
// honest relay completes the replica, which stays trusted throughout.
func TestRecordsRelayedPastTheOriginsCheckpointWaitForOne(t *testing.T) {
	fed, keys := testFederation(t, 4)
	origin := fed.Members[0].Origin // never runs: only relays serve its records
	honest := testRecords(origin, 0, 8, 3)
	const liarIndex = 2
	meshes := map[int]*Mesh{}
	for i := 1; i < 4; i++ {
		l := openTestLog(t, fed.Members[i].Origin)
		if i >= 2 {
			recs := testRecords(origin, 0, 8, 3)
			if i == liarIndex {
				recs[6].Payload = []byte("yyy")
				recs[7].Payload = []byte("zzz")
			}
			rep, err := l.Replica(origin)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rep.Append(t.Context(), recs); err != nil {
				t.Fatal(err)
			}
		}
		meshes[i], _ = startReplicating(t, fed, keys, i, l)
	}
	b := meshes[1]
	signer := newTestLog(t, origin, keys[0]).signer
	r := uint64(time.Now().Unix())
	connect(t, []*node{{Mesh: b}, {Mesh: meshes[liarIndex]}})
	offerSigned(t, b, signedCheckpoint(t, signer, leafHashesOf(honest[:6]), r-1))
	waitFor(t, 5*time.Second, "the checkpointed records verified", func() bool { return b.Replicas()[origin].VerifiedSize == 6 })
	if st := b.Replicas()[origin]; st.Size != 6 || st.Known != 6 {
		t.Fatalf("B's replica holds %d records and knows of %d; want 6 and 6: nothing past the checkpoint from a relay", st.Size, st.Known)
	}

	offerSigned(t, b, signedCheckpoint(t, signer, leafHashesOf(honest), r))
	liar := fed.Members[liarIndex].Origin
	waitFor(t, 5*time.Second, "the liar's page dropped", func() bool {
		return counterValue(t, b.metrics.badRelays.WithLabelValues(liar)) >= 1
	})
	connect(t, []*node{{Mesh: b}, {Mesh: meshes[3]}})
	waitFor(t, 5*time.Second, "B's replica verified from the honest relay", func() bool {
		return b.Replicas()[origin].VerifiedSize == 8
	})
	st := b.Replicas()[origin]
	if st.Untrusted != "" || len(b.Evidence()) != 0 {
		t.Fatalf("the origin was blamed for the relay's lie: untrusted %q, evidence %v", st.Untrusted, b.Evidence())
	}
	if got := counterValue(t, b.metrics.inconsistent.WithLabelValues(origin)); got != 0 {
		t.Fatalf("the origin's replica was found inconsistent %v times", got)
	}
}

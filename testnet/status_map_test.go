package testnet

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
)

// TestEachNodeShowsTheMapItRecomputedOfEveryOtherMember: on running
// nodes, each replica's recomputed map covers the records of the
// checkpoint the replica verified and its root is that checkpoint's map
// line; /status.json shows it for every other member, with no mismatch.
func TestEachNodeShowsTheMapItRecomputedOfEveryOtherMember(t *testing.T) {
	tn := startTestnet(t, 3)
	waitForAgreement(t, tn, 15*time.Second, 3)
	if err := waitForReplicas(t, tn, checkpointSizes(t, tn), "every replica verified"); err != nil {
		t.Fatal(err)
	}
	for i := range tn.Size() {
		for origin, st := range tn.Node(i).Mesh().Replicas() {
			cp, _, err := merkle.OpenCheckpoint(st.Verified, federationVerifiers(t, tn))
			if err != nil {
				t.Fatalf("node %d's verified checkpoint of %s: %v", i, origin, err)
			}
			m := st.Map
			if !m.Opened || m.Size != cp.Size || !bytes.Equal(m.Root, cp.Map) || m.Mismatches != 0 {
				t.Errorf("node %d's map of %s: %+v; want opened over %d records, root %x (the verified map line), no mismatch",
					i, origin, m, cp.Size, cp.Map)
			}
		}
		var got struct{ Federation portal.FederationStatus }
		resp, err := http.Get(tn.PortalURL(i) + "/status.json")
		if err != nil {
			t.Fatal(err)
		}
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if rows := got.Federation.Replicas; len(rows) != tn.Size()-1 {
			t.Fatalf("node %d's /status.json has %d replica rows, want %d", i, len(rows), tn.Size()-1)
		}
		for _, r := range got.Federation.Replicas {
			root, err := base64.StdEncoding.DecodeString(r.MapRoot)
			if r.Busy {
				continue // being recomputed as the page was read
			}
			if !r.MapOpened || r.MapSize == 0 || err != nil || len(root) != 32 || r.MapMismatches != 0 {
				t.Errorf("node %d's /status.json row of %s: %+v; want an opened map with a root, no mismatch", i, r.Origin, r)
			}
		}
	}
}

package intermesh

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/merkle"
)

// TestHostileClaimsAreRejected: a claim whose notes do not hold together
// (not signed by one member, about the claimant's own checkpoint, naming
// another checkpoint, claiming the map line the checkpoint has, another
// federation's, malformed or oversized) is rejected before the round loop
// sees it, so it stores nothing.
func TestHostileClaimsAreRejected(t *testing.T) {
	fed, keys := testFederationOf(t, 3, 10*time.Second)
	m, err := newMesh(Config{Federation: fed, Origin: fed.Members[0].Origin, Key: keys[0], Listen: testListen})
	if err != nil {
		t.Fatal(err)
	}
	signers := make([]note.Signer, 3)
	for i := range signers {
		if signers[i], err = newNoteSigner(fed.Members[i].Origin, keys[i]); err != nil {
			t.Fatal(err)
		}
	}
	root := rfc6962.DefaultHasher.EmptyRoot()
	mapLine := bytes.Repeat([]byte{1}, 32)
	cp, err := merkle.SignCheckpoint(merkle.Checkpoint{Origin: fed.Members[1].Origin, Size: 0, Root: root, Round: 5, Time: 5, Map: mapLine}, signers[1])
	if err != nil {
		t.Fatal(err)
	}
	hc := heldNote(t, cp)
	sign := func(text string, by ...note.Signer) string {
		b, err := note.Sign(&note.Note{Text: text}, by...)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	other := bytes.Repeat([]byte{2}, 32)
	msg := func(claim string) []byte {
		b, _ := json.Marshal(claimMsg{Claim: claim, Checkpoint: string(cp)})
		return b
	}
	cases := map[string][]byte{
		"not JSON":           []byte(`{"claim":`),
		"oversized":          msg(strings.Repeat("x", maxClaimSize)),
		"unsigned":           msg(claimText(fed.Name, hc.hash, other)),
		"signed twice":       msg(sign(claimText(fed.Name, hc.hash, other), signers[0], signers[2])),
		"its own checkpoint": msg(sign(claimText(fed.Name, hc.hash, other), signers[1])),
		"another checkpoint": msg(sign(claimText(fed.Name, [32]byte{9}, other), signers[2])),
		"the map line":       msg(sign(claimText(fed.Name, hc.hash, mapLine), signers[2])),
		"another federation": msg(sign(claimText("elsewhere", hc.hash, other), signers[2])),
		"a short root":       msg(sign(claimText(fed.Name, hc.hash, other[:31]), signers[2])),
		"no checkpoint":      []byte(`{"claim":` + string(mustJSON(t, sign(claimText(fed.Name, hc.hash, other), signers[2]))) + `,"checkpoint":"x"}`),
	}
	for name, data := range cases {
		if !isClaim(data) && name != "not JSON" {
			t.Errorf("%s: not recognized as a claim", name)
		}
		if v := m.checkClaimMsg(t.Context(), data); v.result != pubsub.ValidationReject {
			t.Errorf("%s: verdict %v (%s), want reject", name, v.result, v.reason)
		}
	}
	// The well-formed claim passes these checks (and reaches the round
	// loop, which is not running here).
	good, err := m.openClaim(claimMsg{Claim: sign(claimText(fed.Name, hc.hash, other), signers[2]), Checkpoint: string(cp)})
	if err != nil || good.by != fed.Members[2].Origin || !bytes.Equal(good.root, other) {
		t.Fatalf("a well-formed claim: %+v, %v", good, err)
	}
}

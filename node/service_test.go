package node

import (
	"bytes"
	"context"
	"testing"

	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/portal/mesh"
)

// Hello returns the node's ProfileService, derived from the node's key:
// it verifies, and it is the same after a restart.
func TestHelloReturnsTheServiceProfileDerivedFromTheNodeKey(t *testing.T) {
	c := newTestNode(t, t.TempDir())
	ctx := context.Background()
	hello := func() []byte {
		n, err := New(ctx, c, nil)
		if err != nil {
			t.Fatal(err)
		}
		stop := runNode(t, n)
		defer stop()
		cl, err := client.New("http://" + n.HTTPAddr())
		if err != nil {
			t.Fatal(err)
		}
		resp, err := cl.Hello(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.EnvelopedProfileService) == 0 {
			t.Fatal("Hello has no EnvelopedProfileService")
		}
		return resp.EnvelopedProfileService
	}
	first := hello()
	env, err := mesh.ParseEnvelope(first)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := mesh.MarshalEntry(mesh.TypeProfileService, env)
	if err != nil {
		t.Fatal(err)
	}
	e, err := mesh.VerifyEntry(entry, 0)
	if err != nil || e.Type != mesh.TypeProfileService || !e.SignedOffline {
		t.Fatalf("the service profile does not verify as a self-signed ProfileService: %v", err)
	}
	if again := hello(); !bytes.Equal(again, first) {
		t.Fatal("the service profile changed across a restart")
	}
}

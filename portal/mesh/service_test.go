package mesh

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestServiceProfileFromSeed(t *testing.T) {
	seed := bytes.Repeat([]byte{7}, 32)
	env, id, err := ServiceProfileFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := MarshalEntry(TypeProfileService, env)
	if err != nil {
		t.Fatal(err)
	}
	e, err := VerifyEntry(entry, 0)
	if err != nil {
		t.Fatalf("the derived service profile does not verify: %v", err)
	}
	if !e.Identifier.Equal(id) || !e.SignedOffline {
		t.Fatalf("identifier %s (signed offline %v), want %s", e.Identifier, e.SignedOffline, id)
	}
	again, id2, _ := ServiceProfileFromSeed(seed)
	a, _ := json.Marshal(env)
	b, _ := json.Marshal(again)
	if !bytes.Equal(a, b) || !id2.Equal(id) {
		t.Fatal("the same seed gives another service profile")
	}
	if _, other, _ := ServiceProfileFromSeed(bytes.Repeat([]byte{8}, 32)); other.Equal(id) {
		t.Fatal("another seed gives the same service profile")
	}
	if _, _, err := ServiceProfileFromSeed(seed[:31]); err == nil {
		t.Fatal("a 31-byte seed was accepted")
	}
}

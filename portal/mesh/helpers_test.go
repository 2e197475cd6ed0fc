package mesh

import (
	"crypto/rand"
	"testing"
)

func newKey(t testing.TB, c Curve) *PrivateKey {
	t.Helper()
	k, err := GenerateKey(rand.Reader, c)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testMesh is a ProfileMesh with its private keys.
type testMesh struct {
	profile         *ProfileMesh
	offline, online *PrivateKey
	encryption      *PrivateKey
}

func newTestMesh(t testing.TB) *testMesh {
	m := &testMesh{offline: newKey(t, CurveEd448), online: newKey(t, CurveEd448), encryption: newKey(t, CurveX448)}
	m.profile = &ProfileMesh{
		Profile: Profile{
			KeyOfflineSignature: NewKeyData(m.offline.Public()),
			KeysOnlineSignature: []KeyData{*NewKeyData(m.online.Public())},
		},
		KeyEncryption: NewKeyData(m.encryption.Public()),
	}
	return m
}

func newTestDevice(t testing.TB) (*ProfileDevice, *PrivateKey) {
	off := newKey(t, CurveEd448)
	return &ProfileDevice{
		Profile:           Profile{KeyOfflineSignature: NewKeyData(off.Public())},
		Description:       "test device",
		KeyEncryption:     NewKeyData(newKey(t, CurveX448).Public()),
		KeyAuthentication: NewKeyData(newKey(t, CurveX448).Public()),
	}, off
}

// entryOf signs obj with keys and returns the tagged entry bytes.
func entryOf(t testing.TB, obj Object, keys ...*PrivateKey) []byte {
	t.Helper()
	env, err := SignObject(obj, keys...)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := MarshalEntry(obj.TypeName(), env)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

package mesh

import (
	"crypto/hkdf"
	"crypto/sha512"
	"fmt"
)

// A portal's own service profile (seed 002 §4.3: a service SHOULD return
// its profile in Hello). A node has one identity, its Ed25519 key (the
// libp2p identity that signs its checkpoints); the Mesh needs Ed448 and
// X448 keys. Rather than a second identity to create, store and back up,
// the service profile's keys are derived from the node's key:
//
//	Ed448 seed = HKDF-SHA-512(IKM = node key seed, no salt, info "intermesh ProfileService Ed448 v1", 57 bytes)
//	X448 key   = HKDF-SHA-512(IKM = node key seed, no salt, info "intermesh ProfileService X448 v1", 56 bytes)
//
// and the ProfileService (KeyOfflineSignature, KeyEncryption) is signed by
// the Ed448 key. Ed448 signatures are deterministic, so the same node key
// gives the same profile, byte for byte, after every restart. Whoever holds
// the node key holds the service profile: there is nothing else to keep.

// Derivation labels of ServiceProfileFromSeed.
const (
	infoServiceEd448 = "intermesh ProfileService Ed448 v1"
	infoServiceX448  = "intermesh ProfileService X448 v1"
)

// ServiceProfileFromSeed derives a service's keys from seed (at least 32
// secret bytes) and returns its signed ProfileService envelope and
// identifier.
func ServiceProfileFromSeed(seed []byte) (*Envelope, UDF, error) {
	if len(seed) < 32 {
		return nil, UDF{}, fieldErr(ErrMalformed, "seed", "%d bytes, want at least 32", len(seed))
	}
	derive := func(c Curve, info string, n int) (*PrivateKey, error) {
		raw, err := hkdf.Key(sha512.New, seed, nil, info, n)
		if err != nil {
			return nil, fmt.Errorf("mesh: service key: %w", err)
		}
		return NewPrivateKey(c, raw)
	}
	sig, err := derive(CurveEd448, infoServiceEd448, Ed448PrivateKeySize)
	if err != nil {
		return nil, UDF{}, err
	}
	enc, err := derive(CurveX448, infoServiceX448, X448PrivateKeySize)
	if err != nil {
		return nil, UDF{}, err
	}
	p := &ProfileService{
		Profile:       Profile{KeyOfflineSignature: NewKeyData(sig.Public())},
		KeyEncryption: NewKeyData(enc.Public()),
	}
	env, err := SignObject(p, sig)
	if err != nil {
		return nil, UDF{}, err
	}
	return env, sig.UDF(), nil
}

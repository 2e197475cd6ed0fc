// Package mesh is the Mathematical Mesh 3.0 data model: UDF fingerprints,
// Ed448/X448 keys, DARE signed envelopes, profiles, connections and escrow.
// It owns the formats and their verification; it does not store, serve or
// transport anything (package portal does).
//
// # Wire formats
//
// A UDF (udf.go) is a Base32 fingerprint with a type byte, e.g.
// MDDK-7N6A-727A-JZNO-STRX-XKS7-DJAF. A key's identifier is the UDF of its
// key-info encoding (keys.go). A signed envelope (envelope.go) is
//
//	[{"dig":"SHA2"}, "<base64url payload>",
//	 {"signatures":[{"alg":"SHA2","kid":"<key UDF>","signature":"..."}],
//	  "PayloadDigest":"<base64url SHA-512(payload)>"}]
//
// signed with pure Ed448 over the 64 bytes of PayloadDigest. Objects travel
// type-tagged (payload.go): the payload is {"ProfileMesh":{...}} and the
// entry a portal receives is {"ProfileMesh":[header, payload, trailer]}.
//
// # For the portal
//
// VerifyEntry (or a Verifier with Lookup, for connection results) parses and
// fully verifies an entry and returns its type, identifier, signer, online
// keys and decoded object; MayReplace decides whether it may replace the
// registered version. Every error wraps a sentinel (ErrMalformed,
// ErrTooLarge, ErrBadSignature, ErrIdentifierMismatch, ...) and is a
// *FieldError naming the field. See Example_profile and ExampleEscrow.
//
// # Interoperability
//
// The seven signed envelopes of seed 002's examples, made by the reference
// implementation, are test vectors (testdata/README.md): each verifies, and
// each is rejected after any one-byte change.
package mesh

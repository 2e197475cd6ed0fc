package mesh

import (
	"time"
)

// ProfileVersion reads from a type-tagged profile entry what names and
// orders its versions: its identifier, the UDF of its KeyOfflineSignature,
// and its signed Updated (nil if it has none). It checks the entry's shape
// and decodes its payload, but verifies neither the digest nor the
// signature: it is for checking, cheaply and after the fact, records that
// a portal admitted (a member recomputing another member's map), where a
// refusal must rest on what the profile's signer wrote, never on what the
// portal wrote beside it. It refuses an entry that is not a profile.
func ProfileVersion(raw []byte) (UDF, *time.Time, error) {
	typ, env, err := ParseEntry(raw)
	if err != nil {
		return UDF{}, nil, err
	}
	switch typ {
	case TypeProfileMesh, TypeProfileDevice, TypeProfileAccount, TypeProfileService, TypeProfileHost:
	default:
		return UDF{}, nil, fieldErr(ErrMalformed, "entry", "a %s is not a profile", typ)
	}
	p := newProfile(typ)
	if err := DecodePayload(env.Payload, p); err != nil {
		return UDF{}, nil, inField(typ, err)
	}
	id, err := p.Base().Identifier()
	if err != nil {
		return UDF{}, nil, inField(typ, err)
	}
	return id, p.Base().Updated, nil
}

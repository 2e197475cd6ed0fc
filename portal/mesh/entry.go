package mesh

import (
	"slices"
)

// Entry type names accepted by Verifier.
const (
	TypeProfileMesh          = "ProfileMesh"
	TypeProfileDevice        = "ProfileDevice"
	TypeProfileAccount       = "ProfileAccount"
	TypeProfileService       = "ProfileService"
	TypeProfileHost          = "ProfileHost"
	TypeConnectionRequest    = "ConnectionRequest"
	TypeConnectionResult     = "ConnectionResult"
	TypeOfflineEscrowEntry   = "OfflineEscrowEntry"
	TypeCatalogedPublication = "CatalogedPublication"
)

// Entry is a verified, type-tagged entry: what a portal stores and serves.
type Entry struct {
	// Type is the type tag, e.g. "ProfileMesh".
	Type string
	// Identifier: for a profile the UDF of its KeyOfflineSignature; for an
	// escrow entry its Identifier; for a connection request or result the
	// UDF of the device profile it carries.
	Identifier UDF
	// Subject: for a connection request or result its ParentUDF; for a
	// ProfileAccount its MeshProfileUDF (if any); otherwise zero.
	Subject UDF
	// Signer is the UDF of the key whose signature was verified (zero for
	// escrow entries, which are not signed).
	Signer UDF
	// SignedOffline reports that Signer is the profile's own
	// KeyOfflineSignature. A profile update may instead be signed by one of
	// its online keys; MayReplace decides whether that is allowed.
	SignedOffline bool
	// OnlineKeys are the UDFs of a profile's KeysOnlineSignature.
	OnlineKeys []UDF
	// Object is the decoded payload: *ProfileMesh, *ProfileDevice,
	// *ProfileAccount, *ProfileService, *ProfileHost, *ConnectionRequest,
	// *ConnectionResult, *OfflineEscrowEntry or *CatalogedPublication.
	Object Object
	// Envelope is the parsed envelope.
	Envelope *Envelope
}

// Profile returns the entry's object as a SignedProfile, or nil if it is
// not a profile.
func (e *Entry) Profile() SignedProfile {
	p, _ := e.Object.(SignedProfile)
	return p
}

// Verifier verifies entries. The zero value verifies every type except
// ConnectionResult, which needs Lookup.
type Verifier struct {
	// MaxSize bounds the entry in bytes; 0 means MaxEnvelopeSize.
	MaxSize int
	// Lookup returns the registered entry of a profile identifier (nil if
	// none). It is needed to verify a ConnectionResult, which is signed by a
	// key of the profile it answers for. Optional.
	Lookup func(identifier UDF) (*Entry, error)
}

// VerifyEntry is Verifier{MaxSize: maxSize}.Verify(raw).
func VerifyEntry(raw []byte, maxSize int) (*Entry, error) {
	return Verifier{MaxSize: maxSize}.Verify(raw)
}

// Verify parses a type-tagged entry and verifies it completely: size,
// shape, digest, signature, the object's Validate, and that the payload's
// type tag is the entry's. A profile must be signed by its offline key or
// one of its own online keys (see Entry.SignedOffline and MayReplace).
func (v Verifier) Verify(raw []byte) (*Entry, error) {
	max := v.MaxSize
	if max <= 0 {
		max = MaxEnvelopeSize
	}
	if len(raw) > max {
		return nil, fieldErr(ErrTooLarge, "entry", "%d bytes, limit %d", len(raw), max)
	}
	typ, env, err := ParseEntry(raw)
	if err != nil {
		return nil, err
	}
	e := &Entry{Type: typ, Envelope: env}
	if err := env.CheckDigest(); err != nil {
		return nil, inField(typ, err)
	}
	if err := v.verifyObject(e); err != nil {
		return nil, inField(typ, err)
	}
	return e, nil
}

// registeredOnlineKey resolves, for an update of profile p, the online keys
// of its registered version (through Lookup), so that an update signed by
// an administration key that the update itself removes still verifies;
// MayReplace then decides whether that signer may replace the version.
func (v Verifier) registeredOnlineKey(p SignedProfile) func(kid UDF) (PublicKey, bool) {
	if v.Lookup == nil {
		return nil
	}
	return func(kid UDF) (PublicKey, bool) {
		id, err := p.Base().Identifier()
		if err != nil {
			return PublicKey{}, false
		}
		reg, err := v.Lookup(id)
		if err != nil || reg == nil {
			return PublicKey{}, false
		}
		old, ok := reg.Object.(SignedProfile)
		if !ok {
			return PublicKey{}, false
		}
		online, _ := old.Base().OnlineKeys()
		for _, k := range online {
			if k.UDF().Equal(kid) {
				return k, true
			}
		}
		return PublicKey{}, false
	}
}

// verifyObject decodes and checks the payload of e by its type, and
// fills in the entry's object, identifier, subject and signer.
func (v Verifier) verifyObject(e *Entry) error {
	switch e.Type {
	case TypeProfileMesh, TypeProfileDevice, TypeProfileAccount, TypeProfileService, TypeProfileHost:
		return v.verifyProfileEntry(e)
	case TypeConnectionRequest:
		return verifyRequestEntry(e)
	case TypeConnectionResult:
		return v.verifyResultEntry(e)
	case TypeCatalogedPublication:
		return verifyPublicationEntry(e)
	case TypeOfflineEscrowEntry:
		return verifyEscrowEntry(e)
	}
	return fieldErr(ErrUnsupported, "entry", "type %q", e.Type)
}

// verifyProfileEntry checks a signed profile (offline-signed, or signed
// by an online key of the registered version) and records its keys.
func (v Verifier) verifyProfileEntry(e *Entry) error {
	env := e.Envelope
	p := newProfile(e.Type)
	if err := DecodePayload(env.Payload, p); err != nil {
		return err
	}
	signer, err := verifyProfile(p, env, true, v.registeredOnlineKey(p))
	if err != nil {
		return err
	}
	id, _ := p.Base().Identifier()
	online, _ := p.Base().OnlineKeys()
	e.Object, e.Identifier, e.Signer, e.SignedOffline = p, id, signer, signer == id
	for _, k := range online {
		e.OnlineKeys = append(e.OnlineKeys, k.UDF())
	}
	if a, ok := p.(*ProfileAccount); ok && a.MeshProfileUDF != "" {
		e.Subject, _ = ParseUDF(a.MeshProfileUDF)
	}
	return nil
}

// verifyRequestEntry checks a connection request, signed by the device
// it names.
func verifyRequestEntry(e *Entry) error {
	env := e.Envelope
	var r ConnectionRequest
	if err := DecodePayload(env.Payload, &r); err != nil {
		return err
	}
	if err := r.Validate(env); err != nil {
		return err
	}
	id, _ := r.DeviceUDF()
	e.Object, e.Identifier, e.Signer = &r, id, id
	e.Subject, _ = ParseUDF(r.ParentUDF)
	return nil
}

// verifyResultEntry checks a connection result against the registered
// profile of its parent, whose keys must have signed it.
func (v Verifier) verifyResultEntry(e *Entry) error {
	env := e.Envelope
	var r ConnectionResult
	if err := DecodePayload(env.Payload, &r); err != nil {
		return err
	}
	parent, err := ParseUDF(r.ParentUDF)
	if err != nil {
		return inField("ParentUDF", err)
	}
	var authority SignedProfile
	if v.Lookup != nil {
		if a, err := v.Lookup(parent); err == nil && a != nil {
			authority = a.Profile()
		}
	}
	if authority == nil {
		return fieldErr(ErrUnknownKey, "ParentUDF", "profile %s is not registered", parent)
	}
	if err := r.Validate(env, authority); err != nil {
		return err
	}
	keys, _ := AuthorityKeys(authority)
	signer, _ := env.VerifyWith(func(kid UDF) (PublicKey, error) {
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return PublicKey{}, ErrUnknownKey
	})
	id, _ := r.DeviceUDF()
	e.Object, e.Identifier, e.Subject, e.Signer = &r, id, parent, signer
	return nil
}

// verifyPublicationEntry checks a cataloged publication.
func verifyPublicationEntry(e *Entry) error {
	var p CatalogedPublication
	if err := DecodePayload(e.Envelope.Payload, &p); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	id, _ := ParseUDF(p.ID)
	e.Object, e.Identifier = &p, id
	return nil
}

// verifyEscrowEntry checks an offline escrow entry.
func verifyEscrowEntry(e *Entry) error {
	var o OfflineEscrowEntry
	if err := DecodePayload(e.Envelope.Payload, &o); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	e.Object, e.Identifier = &o, o.identifier()
	return nil
}

func newProfile(typ string) SignedProfile {
	switch typ {
	case TypeProfileMesh:
		return &ProfileMesh{}
	case TypeProfileDevice:
		return &ProfileDevice{}
	case TypeProfileAccount:
		return &ProfileAccount{}
	case TypeProfileService:
		return &ProfileService{}
	default:
		return &ProfileHost{}
	}
}

// MayReplace decides whether next may be registered when old is the
// registered version (old nil: nothing registered yet). Both must come from
// Verify. A first version must be signed by its offline key. A profile
// update must keep type and identifier and be signed by the offline key or
// by an online key that old lists. Escrow entries are never replaced. A
// connection request may be replaced by a newer request of the same device;
// a result by a newer result. Refusals wrap ErrNotPermitted.
func MayReplace(old, next *Entry) error {
	if next == nil {
		return fieldErr(ErrNotPermitted, "entry", "no new entry")
	}
	if old == nil {
		if next.Profile() != nil && !next.SignedOffline {
			return fieldErr(ErrNotPermitted, "trailer.signatures", "a new profile must be signed by its KeyOfflineSignature %s, not %s", next.Identifier, next.Signer)
		}
		return nil
	}
	if old.Type != next.Type {
		return fieldErr(ErrNotPermitted, "entry", "type %s cannot replace %s", next.Type, old.Type)
	}
	if !old.Identifier.Equal(next.Identifier) {
		return fieldErr(ErrNotPermitted, "entry", "identifier %s cannot replace %s", next.Identifier, old.Identifier)
	}
	switch {
	case next.Type == TypeOfflineEscrowEntry, next.Type == TypeCatalogedPublication:
		return fieldErr(ErrNotPermitted, "entry", "%s %s already exists", next.Type, old.Identifier)
	case next.Profile() != nil:
		if next.SignedOffline || slices.Contains(old.OnlineKeys, next.Signer) {
			return nil
		}
		return fieldErr(ErrNotPermitted, "trailer.signatures", "signer %s is neither the offline key nor an online key of the registered version", next.Signer)
	case !old.Subject.Equal(next.Subject):
		return fieldErr(ErrNotPermitted, "ParentUDF", "%s cannot replace a request for %s", next.Subject, old.Subject)
	}
	return nil
}

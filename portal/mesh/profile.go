package mesh

import (
	"slices"
	"time"
)

// Limits on the content of profiles and connections, checked by Validate.
const (
	MaxOnlineKeys    = 16   // KeysOnlineSignature, KeysMasterEscrow
	MaxAddresses     = 16   // AccountAddresses
	MaxAddressLength = 256  // bytes of one account address
	MaxNames         = 32   // Names
	MaxTextLength    = 1024 // bytes of Description, NotaryToken and similar text
)

// Assertion holds the fields every Mesh assertion has (seed 002 §7.2.1).
type Assertion struct {
	Names       []string   `json:"Names,omitempty"`
	Updated     *time.Time `json:"Updated,omitempty"`
	NotaryToken string     `json:"NotaryToken,omitempty"`
}

// Profile holds the fields every profile has (seed 002 §7.2.4). A profile
// is self-signed by KeyOfflineSignature, whose UDF is the profile's
// permanent identifier.
type Profile struct {
	Assertion
	KeyOfflineSignature *KeyData  `json:"KeyOfflineSignature,omitempty"`
	KeysOnlineSignature []KeyData `json:"KeysOnlineSignature,omitempty"`
}

// ProfileMesh is the master profile of a personal Mesh (seed 002 §7.2.9).
// Requires an Ed448 offline key, at least one Ed448 online (administration)
// key and an X448 KeyEncryption.
type ProfileMesh struct {
	Profile
	KeysMasterEscrow []KeyData `json:"KeysMasterEscrow,omitempty"`
	KeyEncryption    *KeyData  `json:"KeyEncryption,omitempty"`
}

// ProfileDevice describes a device (seed 002 §7.2.11). Requires X448
// KeyEncryption and KeyAuthentication.
type ProfileDevice struct {
	Profile
	Description       string   `json:"Description,omitempty"`
	KeyEncryption     *KeyData `json:"KeyEncryption,omitempty"`
	KeyAuthentication *KeyData `json:"KeyAuthentication,omitempty"`
}

// ProfileAccount describes an account (seed 002 §7.2.17). Requires X448
// KeyEncryption and KeyAuthentication; MeshProfileUDF, if present, must be
// a UDF; EnvelopedProfileService, if present, must be a valid ProfileService.
type ProfileAccount struct {
	Profile
	AccountAddresses        []string  `json:"AccountAddresses,omitempty"`
	MeshProfileUDF          string    `json:"MeshProfileUDF,omitempty"`
	KeyEncryption           *KeyData  `json:"KeyEncryption,omitempty"`
	KeyAuthentication       *KeyData  `json:"KeyAuthentication,omitempty"`
	EnvelopedProfileService *Envelope `json:"EnvelopedProfileService,omitempty"`
}

// ProfileService describes a Mesh service (seed 002 §7.2.27). Requires an
// X448 KeyEncryption; KeyAuthentication (X448) is optional.
type ProfileService struct {
	Profile
	KeyAuthentication *KeyData `json:"KeyAuthentication,omitempty"`
	KeyEncryption     *KeyData `json:"KeyEncryption,omitempty"`
}

// ProfileHost describes one host of a service (seed 002 §7.2.30). Requires
// an X448 KeyAuthentication.
type ProfileHost struct {
	Profile
	KeyAuthentication *KeyData `json:"KeyAuthentication,omitempty"`
}

// Object is a Mesh object that travels type-tagged: its payload is
// {"<TypeName>":{...}}.
type Object interface {
	// TypeName is the JSON tag, e.g. "ProfileMesh".
	TypeName() string
}

// SignedProfile is implemented by the five profile types.
type SignedProfile interface {
	Object
	// Base returns the common profile fields.
	Base() *Profile
	// Validate checks the profile against the envelope it came in; see
	// (*ProfileMesh).Validate.
	Validate(env *Envelope) error
	// checkKeys checks the type's own keys and limits.
	checkKeys() error
}

// TypeName implements Object.
func (*ProfileMesh) TypeName() string { return "ProfileMesh" }

// TypeName implements Object.
func (*ProfileDevice) TypeName() string { return "ProfileDevice" }

// TypeName implements Object.
func (*ProfileAccount) TypeName() string { return "ProfileAccount" }

// TypeName implements Object.
func (*ProfileService) TypeName() string { return "ProfileService" }

// TypeName implements Object.
func (*ProfileHost) TypeName() string { return "ProfileHost" }

// Base implements SignedProfile.
func (p *Profile) Base() *Profile { return p }

// Identifier is the profile's identifier, the UDF of KeyOfflineSignature
// (computed from the key, not taken from its stated UDF).
func (p *Profile) Identifier() (UDF, error) {
	k, err := p.KeyOfflineSignature.PublicKey()
	if err != nil {
		return UDF{}, inField("KeyOfflineSignature", err)
	}
	return k.UDF(), nil
}

// OnlineKeys decodes KeysOnlineSignature.
func (p *Profile) OnlineKeys() ([]PublicKey, error) {
	out := make([]PublicKey, 0, len(p.KeysOnlineSignature))
	for i := range p.KeysOnlineSignature {
		k, err := p.KeysOnlineSignature[i].PublicKey()
		if err != nil {
			return nil, inField(fieldIndex("KeysOnlineSignature", i), err)
		}
		out = append(out, k)
	}
	return out, nil
}

// Validate checks that env carries a valid signature by KeyOfflineSignature
// over this profile (ErrBadSignature), that every stated UDF is the UDF of
// its key (ErrIdentifierMismatch), that the required keys are present
// (ErrMissingKey) and on the right curve (ErrWrongCurve), and the size
// limits (ErrTooLarge). env's payload must be the one p was decoded from.
func (p *ProfileMesh) Validate(env *Envelope) error { return validateProfile(p, env, false) }

// Validate checks the profile; see (*ProfileMesh).Validate.
func (p *ProfileDevice) Validate(env *Envelope) error { return validateProfile(p, env, false) }

// Validate checks the profile; see (*ProfileMesh).Validate.
func (p *ProfileAccount) Validate(env *Envelope) error { return validateProfile(p, env, false) }

// Validate checks the profile; see (*ProfileMesh).Validate.
func (p *ProfileService) Validate(env *Envelope) error { return validateProfile(p, env, false) }

// Validate checks the profile; see (*ProfileMesh).Validate.
func (p *ProfileHost) Validate(env *Envelope) error { return validateProfile(p, env, false) }

func (p *ProfileMesh) checkKeys() error {
	if len(p.KeysOnlineSignature) == 0 {
		return fieldErr(ErrMissingKey, "KeysOnlineSignature", "a ProfileMesh needs at least one administration key")
	}
	if len(p.KeysMasterEscrow) > MaxOnlineKeys {
		return fieldErr(ErrTooLarge, "KeysMasterEscrow", "%d keys, limit %d", len(p.KeysMasterEscrow), MaxOnlineKeys)
	}
	for i := range p.KeysMasterEscrow {
		if err := checkKey(&p.KeysMasterEscrow[i], fieldIndex("KeysMasterEscrow", i), CurveX448, true); err != nil {
			return err
		}
	}
	return checkKey(p.KeyEncryption, "KeyEncryption", CurveX448, true)
}

func (p *ProfileDevice) checkKeys() error {
	if len(p.Description) > MaxTextLength {
		return fieldErr(ErrTooLarge, "Description", "%d bytes, limit %d", len(p.Description), MaxTextLength)
	}
	if err := checkKey(p.KeyEncryption, "KeyEncryption", CurveX448, true); err != nil {
		return err
	}
	return checkKey(p.KeyAuthentication, "KeyAuthentication", CurveX448, true)
}

func (p *ProfileAccount) checkKeys() error {
	if err := checkAddresses(p.AccountAddresses); err != nil {
		return err
	}
	if p.MeshProfileUDF != "" {
		if _, err := ParseUDF(p.MeshProfileUDF); err != nil {
			return inField("MeshProfileUDF", err)
		}
	}
	if err := checkKey(p.KeyEncryption, "KeyEncryption", CurveX448, true); err != nil {
		return err
	}
	if err := checkKey(p.KeyAuthentication, "KeyAuthentication", CurveX448, true); err != nil {
		return err
	}
	if p.EnvelopedProfileService != nil {
		var s ProfileService
		if err := DecodePayload(p.EnvelopedProfileService.Payload, &s); err != nil {
			return inField("EnvelopedProfileService", err)
		}
		if err := s.Validate(p.EnvelopedProfileService); err != nil {
			return inField("EnvelopedProfileService", err)
		}
	}
	return nil
}

func (p *ProfileService) checkKeys() error {
	if err := checkKey(p.KeyEncryption, "KeyEncryption", CurveX448, true); err != nil {
		return err
	}
	return checkKey(p.KeyAuthentication, "KeyAuthentication", CurveX448, false)
}

func (p *ProfileHost) checkKeys() error {
	return checkKey(p.KeyAuthentication, "KeyAuthentication", CurveX448, true)
}

// validateProfile checks p against env. With allowOnline, a signature by
// one of p's own online keys is accepted instead of the offline one (an
// update; MayReplace then decides whether the registered version allows it).
// It returns the UDF of the verified signer.
func validateProfile(p SignedProfile, env *Envelope, allowOnline bool) error {
	_, err := verifyProfile(p, env, allowOnline, nil)
	return err
}

func verifyProfile(p SignedProfile, env *Envelope, allowOnline bool, registered func(kid UDF) (PublicKey, bool)) (UDF, error) {
	if env == nil {
		return UDF{}, fieldErr(ErrMalformed, "envelope", "absent")
	}
	b := p.Base()
	if err := checkAssertion(&b.Assertion); err != nil {
		return UDF{}, err
	}
	if err := checkKey(b.KeyOfflineSignature, "KeyOfflineSignature", CurveEd448, true); err != nil {
		return UDF{}, err
	}
	offline, _ := b.KeyOfflineSignature.PublicKey()
	if len(b.KeysOnlineSignature) > MaxOnlineKeys {
		return UDF{}, fieldErr(ErrTooLarge, "KeysOnlineSignature", "%d keys, limit %d", len(b.KeysOnlineSignature), MaxOnlineKeys)
	}
	for i := range b.KeysOnlineSignature {
		if err := checkKey(&b.KeysOnlineSignature[i], fieldIndex("KeysOnlineSignature", i), CurveEd448, true); err != nil {
			return UDF{}, err
		}
	}
	if err := p.checkKeys(); err != nil {
		return UDF{}, err
	}
	keys := map[UDF]PublicKey{offline.UDF(): offline}
	if allowOnline {
		online, _ := b.OnlineKeys()
		for _, k := range online {
			keys[k.UDF()] = k
		}
	}
	signer, err := env.VerifyWith(func(kid UDF) (PublicKey, error) {
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		if allowOnline && registered != nil {
			if k, ok := registered(kid); ok {
				return k, nil
			}
		}
		return PublicKey{}, ErrUnknownKey
	})
	if err != nil {
		if allowOnline {
			return UDF{}, fieldErr(ErrBadSignature, "trailer.signatures", "no valid signature by KeyOfflineSignature %s or KeysOnlineSignature: %v", offline.UDF(), err)
		}
		return UDF{}, fieldErr(ErrBadSignature, "trailer.signatures", "no valid signature by KeyOfflineSignature %s: %v", offline.UDF(), err)
	}
	// Every resolvable signature verified; prefer the offline signer.
	if kid := offline.UDF().String(); slices.Contains(env.Signers(), kid) {
		return offline.UDF(), nil
	}
	return signer, nil
}

// checkKey checks that kd (field) is present if required, decodes, matches
// its stated UDF and is on curve c.
func checkKey(kd *KeyData, field string, c Curve, required bool) error {
	if kd == nil {
		if required {
			return fieldErr(ErrMissingKey, field, "absent")
		}
		return nil
	}
	k, err := kd.PublicKey()
	if err != nil {
		return inField(field, err)
	}
	if k.Curve != c {
		return fieldErr(ErrWrongCurve, field, "%s key, want %s", k.Curve, c)
	}
	if kd.PrivateParameters != nil {
		return fieldErr(ErrMalformed, field+".PrivateParameters", "a private key must never be published")
	}
	return nil
}

func checkAssertion(a *Assertion) error {
	if len(a.Names) > MaxNames {
		return fieldErr(ErrTooLarge, "Names", "%d names, limit %d", len(a.Names), MaxNames)
	}
	for i, n := range a.Names {
		if len(n) > MaxTextLength {
			return fieldErr(ErrTooLarge, fieldIndex("Names", i), "%d bytes, limit %d", len(n), MaxTextLength)
		}
	}
	if len(a.NotaryToken) > MaxTextLength {
		return fieldErr(ErrTooLarge, "NotaryToken", "%d bytes, limit %d", len(a.NotaryToken), MaxTextLength)
	}
	return nil
}

func checkAddresses(addrs []string) error {
	if len(addrs) > MaxAddresses {
		return fieldErr(ErrTooLarge, "AccountAddresses", "%d addresses, limit %d", len(addrs), MaxAddresses)
	}
	for i, a := range addrs {
		if a == "" {
			return fieldErr(ErrMalformed, fieldIndex("AccountAddresses", i), "empty")
		}
		if len(a) > MaxAddressLength {
			return fieldErr(ErrTooLarge, fieldIndex("AccountAddresses", i), "%d bytes, limit %d", len(a), MaxAddressLength)
		}
	}
	return nil
}

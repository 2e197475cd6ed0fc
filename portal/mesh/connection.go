package mesh

import "fmt"

// Connection holds the fields every connection has (seed 002 §7.2.5). A
// connection is not self-signed: it is signed by an online (administration)
// key of the profile it connects to, the authority.
type Connection struct {
	Assertion
	SubjectUDF   string `json:"SubjectUDF,omitempty"`
	AuthorityUDF string `json:"AuthorityUDF,omitempty"`
}

// Permission is a permission granted to a connected device (seed 002 §7.2.7).
type Permission struct {
	Name         string    `json:"Name,omitempty"`
	Role         string    `json:"Role,omitempty"`
	Capabilities *Envelope `json:"Capabilities,omitempty"`
}

// ConnectionDevice connects a device to a personal Mesh (seed 002 §7.2.13):
// the device's keys under that Mesh, signed by an administration key of the
// ProfileMesh. Requires Ed448 KeySignature, X448 KeyEncryption and
// KeyAuthentication.
type ConnectionDevice struct {
	Connection
	Permissions       []Permission `json:"Permissions,omitempty"`
	KeySignature      *KeyData     `json:"KeySignature,omitempty"`
	KeyEncryption     *KeyData     `json:"KeyEncryption,omitempty"`
	KeyAuthentication *KeyData     `json:"KeyAuthentication,omitempty"`
}

// ConnectionAccount connects a device to an account (seed 002 §7.2.19),
// signed by an online key of the ProfileAccount. Same keys as
// ConnectionDevice.
type ConnectionAccount struct {
	Connection
	AccountAddresses  []string     `json:"AccountAddresses,omitempty"`
	Permissions       []Permission `json:"Permissions,omitempty"`
	KeySignature      *KeyData     `json:"KeySignature,omitempty"`
	KeyEncryption     *KeyData     `json:"KeyEncryption,omitempty"`
	KeyAuthentication *KeyData     `json:"KeyAuthentication,omitempty"`
}

// TypeName implements Object.
func (*ConnectionDevice) TypeName() string { return "ConnectionDevice" }

// TypeName implements Object.
func (*ConnectionAccount) TypeName() string { return "ConnectionAccount" }

// Validate checks that env is signed by an online key (or the offline key)
// of authority, the ProfileMesh the device connects to, and that the keys
// are present, consistent with their UDFs and on the right curves.
func (c *ConnectionDevice) Validate(env *Envelope, authority *ProfileMesh) error {
	if err := checkConnectionKeys(&c.Connection, c.KeySignature, c.KeyEncryption, c.KeyAuthentication); err != nil {
		return err
	}
	_, err := verifyByAuthority(env, authority)
	return err
}

// Validate checks that env is signed by an online key (or the offline key)
// of authority, the ProfileAccount the device connects to, and the keys.
func (c *ConnectionAccount) Validate(env *Envelope, authority *ProfileAccount) error {
	if err := checkAddresses(c.AccountAddresses); err != nil {
		return err
	}
	if err := checkConnectionKeys(&c.Connection, c.KeySignature, c.KeyEncryption, c.KeyAuthentication); err != nil {
		return err
	}
	_, err := verifyByAuthority(env, authority)
	return err
}

func checkConnectionKeys(c *Connection, sig, enc, auth *KeyData) error {
	if err := checkAssertion(&c.Assertion); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		udf  string
	}{{"SubjectUDF", c.SubjectUDF}, {"AuthorityUDF", c.AuthorityUDF}} {
		if f.udf != "" {
			if _, err := ParseUDF(f.udf); err != nil {
				return inField(f.name, err)
			}
		}
	}
	if err := checkKey(sig, "KeySignature", CurveEd448, true); err != nil {
		return err
	}
	if err := checkKey(enc, "KeyEncryption", CurveX448, true); err != nil {
		return err
	}
	return checkKey(auth, "KeyAuthentication", CurveX448, true)
}

// AuthorityKeys returns the keys that may sign on behalf of a profile: its
// offline key and its online keys, by UDF.
func AuthorityKeys(p SignedProfile) (map[UDF]PublicKey, error) {
	if p == nil || p.Base() == nil {
		return nil, fieldErr(ErrUnknownKey, "authority", "no authority profile")
	}
	b := p.Base()
	off, err := b.KeyOfflineSignature.PublicKey()
	if err != nil {
		return nil, inField("authority.KeyOfflineSignature", err)
	}
	keys := map[UDF]PublicKey{off.UDF(): off}
	online, err := b.OnlineKeys()
	if err != nil {
		return nil, inField("authority", err)
	}
	for _, k := range online {
		if k.Curve == CurveEd448 {
			keys[k.UDF()] = k
		}
	}
	return keys, nil
}

// verifyByAuthority verifies env with the keys of authority.
func verifyByAuthority[P SignedProfile](env *Envelope, authority P) (UDF, error) {
	if env == nil {
		return UDF{}, fieldErr(ErrMalformed, "envelope", "absent")
	}
	var zero P
	if any(authority) == any(zero) {
		return UDF{}, fieldErr(ErrUnknownKey, "authority", "no authority profile")
	}
	keys, err := AuthorityKeys(authority)
	if err != nil {
		return UDF{}, err
	}
	signer, err := env.VerifyWith(func(kid UDF) (PublicKey, error) {
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return PublicKey{}, ErrUnknownKey
	})
	if err != nil {
		id, _ := authority.Base().Identifier()
		return UDF{}, fmt.Errorf("mesh: not signed by a key of authority %s: %w", id, err)
	}
	return signer, nil
}

// CatalogedDevice is the device catalog entry (seed 002 §7.2.14): the
// Mesh profile, the device profile, the connection of the device to the
// Mesh, its (encrypted) activation and its accounts.
type CatalogedDevice struct {
	UDF                       string         `json:"UDF,omitempty"`
	EnvelopedProfileMesh      *Envelope      `json:"EnvelopedProfileMesh,omitempty"`
	DeviceUDF                 string         `json:"DeviceUDF,omitempty"`
	EnvelopedProfileDevice    *Envelope      `json:"EnvelopedProfileDevice,omitempty"`
	EnvelopedConnectionDevice *Envelope      `json:"EnvelopedConnectionDevice,omitempty"`
	EnvelopedActivationDevice *Envelope      `json:"EnvelopedActivationDevice,omitempty"`
	Accounts                  []AccountEntry `json:"Accounts,omitempty"`
}

// AccountEntry is an account of a CatalogedDevice (seed 002 §7.2.20).
type AccountEntry struct {
	AccountUDF                 string    `json:"AccountUDF,omitempty"`
	EnvelopedProfileAccount    *Envelope `json:"EnvelopedProfileAccount,omitempty"`
	EnvelopedConnectionAccount *Envelope `json:"EnvelopedConnectionAccount,omitempty"`
	EnvelopedActivationAccount *Envelope `json:"EnvelopedActivationAccount,omitempty"`
}

// TypeName implements Object.
func (*CatalogedDevice) TypeName() string { return "CatalogedDevice" }

// Validate verifies every signed part of the entry: the ProfileMesh and
// ProfileDevice (self-signed), the ConnectionDevice (by the ProfileMesh),
// and for each account the ProfileAccount (self-signed) and the
// ConnectionAccount (by the ProfileAccount); and that UDF, DeviceUDF and
// AccountUDF name what they should. Activations are encrypted and not
// checked.
func (c *CatalogedDevice) Validate() error {
	var mesh ProfileMesh
	if err := decodeSigned(c.EnvelopedProfileMesh, &mesh, "EnvelopedProfileMesh"); err != nil {
		return err
	}
	var dev ProfileDevice
	if err := decodeSigned(c.EnvelopedProfileDevice, &dev, "EnvelopedProfileDevice"); err != nil {
		return err
	}
	if id, _ := dev.Identifier(); c.DeviceUDF != "" && !UDFEqual(c.DeviceUDF, id.String()) {
		return fieldErr(ErrIdentifierMismatch, "DeviceUDF", "states %s, device profile is %s", c.DeviceUDF, id)
	}
	if c.EnvelopedConnectionDevice == nil {
		return fieldErr(ErrMalformed, "EnvelopedConnectionDevice", "absent")
	}
	var conn ConnectionDevice
	if err := DecodePayload(c.EnvelopedConnectionDevice.Payload, &conn); err != nil {
		return inField("EnvelopedConnectionDevice", err)
	}
	if err := conn.Validate(c.EnvelopedConnectionDevice, &mesh); err != nil {
		return inField("EnvelopedConnectionDevice", err)
	}
	if k, _ := conn.KeySignature.PublicKey(); c.UDF != "" && !UDFEqual(c.UDF, k.UDF().String()) {
		return fieldErr(ErrIdentifierMismatch, "UDF", "states %s, connection signature key is %s", c.UDF, k.UDF())
	}
	for i, a := range c.Accounts {
		field := fieldIndex("Accounts", i)
		var acct ProfileAccount
		if err := decodeSigned(a.EnvelopedProfileAccount, &acct, field+".EnvelopedProfileAccount"); err != nil {
			return err
		}
		if id, _ := acct.Identifier(); a.AccountUDF != "" && !UDFEqual(a.AccountUDF, id.String()) {
			return fieldErr(ErrIdentifierMismatch, field+".AccountUDF", "states %s, account profile is %s", a.AccountUDF, id)
		}
		if a.EnvelopedConnectionAccount == nil {
			continue
		}
		var ca ConnectionAccount
		if err := DecodePayload(a.EnvelopedConnectionAccount.Payload, &ca); err != nil {
			return inField(field+".EnvelopedConnectionAccount", err)
		}
		if err := ca.Validate(a.EnvelopedConnectionAccount, &acct); err != nil {
			return inField(field+".EnvelopedConnectionAccount", err)
		}
	}
	return nil
}

// decodeSigned decodes env's payload into p and validates it.
func decodeSigned(env *Envelope, p SignedProfile, field string) error {
	if env == nil {
		return fieldErr(ErrMalformed, field, "absent")
	}
	if err := DecodePayload(env.Payload, p); err != nil {
		return inField(field, err)
	}
	if err := p.Validate(env); err != nil {
		return inField(field, err)
	}
	return nil
}

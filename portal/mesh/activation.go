package mesh

import (
	"fmt"
	"io"
)

// Device activation: what an administration device hands a device it
// accepts into an account (seed 002 §4.2.2, §7.2.18). The administrator
//
//  1. makes a fresh Ed448 key for the device's use of the account, and a
//     ConnectionAccount that lists it (KeySignature) with the device's own
//     encryption and authentication keys, signed by an administration key
//     of the account's profile: that signature is what makes the device's
//     signatures count as the account's device (VerifyDeviceSignature);
//  2. puts that connection, the new key's private half
//     (KeyAccountSignature) and the account's encryption key pair
//     (KeyAccountEncryption) into an ActivationAccount;
//  3. encrypts it to the device's KeyEncryption and signs it with the same
//     administration key (Activate).
//
// The result travels in the ConnectionResult (EnvelopedActivationAccount),
// which the portal stores and serves only as ciphertext. The device opens
// it with its own encryption key (OpenActivation), which checks every
// signature and that the keys are the ones the profiles name. (The
// reference implementation derives the device's keys from an
// ActivationKey seed combined with the device profile's keys; we hand over
// explicit keys instead and leave ActivationKey empty.)

// ActivationAccount is a device's activation for an account (seed 002
// §7.2.18), carried encrypted.
type ActivationAccount struct {
	Assertion
	// EnvelopedConnection is the ConnectionAccount, signed by an
	// administration key of the account's profile.
	EnvelopedConnection *Envelope `json:"EnvelopedConnection,omitempty"`
	// ActivationKey is the reference's key-derivation seed (unused here).
	ActivationKey string `json:"ActivationKey,omitempty"`
	// AccountUDF is the UDF of the account's profile.
	AccountUDF string `json:"AccountUDF,omitempty"`
	// KeyAccountEncryption is the account's encryption key pair.
	KeyAccountEncryption *KeyData `json:"KeyAccountEncryption,omitempty"`
	// KeyAccountSignature is the device's signature key pair for the
	// account (its public half is the connection's KeySignature).
	KeyAccountSignature *KeyData `json:"KeyAccountSignature,omitempty"`
}

// TypeName implements Object.
func (*ActivationAccount) TypeName() string { return "ActivationAccount" }

// Activation is an opened, verified activation: the keys a device holds
// as a device of the account.
type Activation struct {
	// Account is the UDF of the account's profile.
	Account UDF
	// AccountEncryption is the account's encryption key.
	AccountEncryption *PrivateKey
	// DeviceSignature is the device's signature key for the account.
	DeviceSignature *PrivateKey
	// Connection is the signed ConnectionAccount that lists
	// DeviceSignature; it goes with the device's signatures.
	Connection *Envelope
}

// Activate makes the encrypted activation of device for the account whose
// profile is authority: admin is an administration (online) or the offline
// key of authority, accountEncryption the private half of authority's
// KeyEncryption, addresses the account names. rand is crypto/rand.Reader
// in production.
func Activate(rand io.Reader, device *ProfileDevice, authority SignedProfile, admin, accountEncryption *PrivateKey, addresses ...string) (*Envelope, error) {
	if device == nil || authority == nil || admin == nil || accountEncryption == nil {
		return nil, fieldErr(ErrMissingKey, "activation", "needs the device, the authority profile, its administration key and its encryption key")
	}
	authorityID, err := authority.Base().Identifier()
	if err != nil {
		return nil, inField("authority", err)
	}
	keys, err := AuthorityKeys(authority)
	if err != nil {
		return nil, err
	}
	if _, ok := keys[admin.UDF()]; !ok {
		return nil, fieldErr(ErrUnknownKey, "admin", "%s is not a signature key of profile %s", admin.UDF(), authorityID)
	}
	if enc := encryptionKeyOf(authority); enc == nil || !enc.Equal(accountEncryption.Public()) {
		return nil, fieldErr(ErrIdentifierMismatch, "accountEncryption", "is not the KeyEncryption of profile %s", authorityID)
	}
	deviceID, err := device.Identifier()
	if err != nil {
		return nil, inField("device", err)
	}
	deviceEnc, err := device.KeyEncryption.PublicKey()
	if err != nil {
		return nil, inField("device.KeyEncryption", err)
	}
	sig, err := GenerateKey(rand, CurveEd448)
	if err != nil {
		return nil, fmt.Errorf("mesh: device signature key: %w", err)
	}
	conn := &ConnectionAccount{
		Connection:        Connection{SubjectUDF: deviceID.String(), AuthorityUDF: authorityID.String()},
		AccountAddresses:  addresses,
		KeySignature:      NewKeyData(sig.Public()),
		KeyEncryption:     device.KeyEncryption,
		KeyAuthentication: device.KeyAuthentication,
	}
	connEnv, err := SignObject(conn, admin)
	if err != nil {
		return nil, err
	}
	act := &ActivationAccount{
		EnvelopedConnection:  connEnv,
		AccountUDF:           authorityID.String(),
		KeyAccountEncryption: accountEncryption.KeyData(),
		KeyAccountSignature:  sig.KeyData(),
	}
	payload, err := EncodePayload(act)
	if err != nil {
		return nil, err
	}
	return Encrypt(rand, payload, []PublicKey{deviceEnc}, admin)
}

// encryptionKeyOf returns the KeyEncryption of a profile that has one.
func encryptionKeyOf(p SignedProfile) *PublicKey {
	var kd *KeyData
	switch v := p.(type) {
	case *ProfileMesh:
		kd = v.KeyEncryption
	case *ProfileAccount:
		kd = v.KeyEncryption
	case *ProfileService:
		kd = v.KeyEncryption
	}
	k, err := kd.PublicKey()
	if err != nil {
		return nil
	}
	return &k
}

// authorityResolver resolves the signature keys of authority.
func authorityResolver(authority SignedProfile) (KeyResolver, error) {
	keys, err := AuthorityKeys(authority)
	if err != nil {
		return nil, err
	}
	return func(kid UDF) (PublicKey, error) {
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return PublicKey{}, ErrUnknownKey
	}, nil
}

// OpenActivation decrypts the activation env with deviceEncryption (the
// private half of device's KeyEncryption) and verifies everything: env and
// the connection are signed by keys of authority, the connection names
// device and authority and lists the device's encryption key and the
// handed-over signature key, and the account encryption key is
// authority's KeyEncryption.
func OpenActivation(env *Envelope, deviceEncryption *PrivateKey, device *ProfileDevice, authority SignedProfile) (*Activation, error) {
	if env == nil || device == nil || authority == nil {
		return nil, fieldErr(ErrMalformed, "activation", "absent")
	}
	resolve, err := authorityResolver(authority)
	if err != nil {
		return nil, err
	}
	payload, _, err := env.Decrypt([]*PrivateKey{deviceEncryption}, resolve)
	if err != nil {
		return nil, err
	}
	var act ActivationAccount
	if err := DecodePayload(payload, &act); err != nil {
		return nil, err
	}
	authorityID, _ := authority.Base().Identifier()
	deviceID, err := device.Identifier()
	if err != nil {
		return nil, inField("device", err)
	}
	if !UDFEqual(act.AccountUDF, authorityID.String()) {
		return nil, fieldErr(ErrIdentifierMismatch, "AccountUDF", "%s, the account's profile is %s", act.AccountUDF, authorityID)
	}
	var conn ConnectionAccount
	if act.EnvelopedConnection == nil {
		return nil, fieldErr(ErrMalformed, "EnvelopedConnection", "absent")
	}
	if err := DecodePayload(act.EnvelopedConnection.Payload, &conn); err != nil {
		return nil, inField("EnvelopedConnection", err)
	}
	if err := conn.validateBy(act.EnvelopedConnection, authority); err != nil {
		return nil, inField("EnvelopedConnection", err)
	}
	if !UDFEqual(conn.SubjectUDF, deviceID.String()) || !UDFEqual(conn.AuthorityUDF, authorityID.String()) {
		return nil, fieldErr(ErrIdentifierMismatch, "EnvelopedConnection", "connects %s to %s, want device %s to %s", conn.SubjectUDF, conn.AuthorityUDF, deviceID, authorityID)
	}
	connEnc, _ := conn.KeyEncryption.PublicKey()
	if !connEnc.Equal(deviceEncryption.Public()) {
		return nil, fieldErr(ErrIdentifierMismatch, "EnvelopedConnection.KeyEncryption", "is not this device's encryption key")
	}
	sig, err := act.KeyAccountSignature.PrivateKey()
	if err != nil {
		return nil, inField("KeyAccountSignature", err)
	}
	if connSig, _ := conn.KeySignature.PublicKey(); !connSig.Equal(sig.Public()) || sig.Curve() != CurveEd448 {
		return nil, fieldErr(ErrIdentifierMismatch, "KeyAccountSignature", "is not the connection's KeySignature")
	}
	enc, err := act.KeyAccountEncryption.PrivateKey()
	if err != nil {
		return nil, inField("KeyAccountEncryption", err)
	}
	if want := encryptionKeyOf(authority); want == nil || !want.Equal(enc.Public()) {
		return nil, fieldErr(ErrIdentifierMismatch, "KeyAccountEncryption", "is not the KeyEncryption of profile %s", authorityID)
	}
	return &Activation{Account: authorityID, AccountEncryption: enc, DeviceSignature: sig, Connection: act.EnvelopedConnection}, nil
}

// validateBy is Validate for a connection to any kind of profile (the
// account of this project is bound to a ProfileMesh).
func (c *ConnectionAccount) validateBy(env *Envelope, authority SignedProfile) error {
	if err := checkAddresses(c.AccountAddresses); err != nil {
		return err
	}
	if err := checkConnectionKeys(&c.Connection, c.KeySignature, c.KeyEncryption, c.KeyAuthentication); err != nil {
		return err
	}
	_, err := verifyByAuthority(env, authority)
	return err
}

// DeviceKey returns the signature key a device of the account whose
// profile is authority signs with, and the device's UDF: the KeySignature
// and SubjectUDF of connection, a ConnectionAccount that must be signed by
// a key of authority.
func DeviceKey(connection *Envelope, authority SignedProfile) (PublicKey, UDF, error) {
	if connection == nil {
		return PublicKey{}, UDF{}, fieldErr(ErrMalformed, "connection", "absent")
	}
	var conn ConnectionAccount
	if err := DecodePayload(connection.Payload, &conn); err != nil {
		return PublicKey{}, UDF{}, inField("connection", err)
	}
	if err := conn.validateBy(connection, authority); err != nil {
		return PublicKey{}, UDF{}, inField("connection", err)
	}
	key, err := conn.KeySignature.PublicKey()
	if err != nil {
		return PublicKey{}, UDF{}, inField("connection.KeySignature", err)
	}
	device, err := ParseUDF(conn.SubjectUDF)
	if err != nil {
		return PublicKey{}, UDF{}, inField("connection.SubjectUDF", err)
	}
	return key, device, nil
}

// VerifyDeviceSignature checks that env is signed by a device of the
// account whose profile is authority (see DeviceKey) and returns the
// device's UDF.
func VerifyDeviceSignature(env, connection *Envelope, authority SignedProfile) (UDF, error) {
	if env == nil {
		return UDF{}, fieldErr(ErrMalformed, "envelope", "absent")
	}
	key, device, err := DeviceKey(connection, authority)
	if err != nil {
		return UDF{}, err
	}
	if err := env.Verify(key); err != nil {
		return UDF{}, err
	}
	return device, nil
}

package mesh

// Connection requests and results of the portal era (seed 001 §6.1,
// seed 000 §5.3.30-33), carried in signed envelopes:
//
//	{"ConnectionRequest":[{"dig":"SHA2"}, "<base64url of
//	  {"ConnectionRequest":{"ParentUDF":"MCOZ-…","Device":[…ProfileDevice envelope…]}}>",
//	  {"signatures":[{"alg":"SHA2","kid":"<device offline key UDF>",…}],…}]}
//
// A request is signed by the offline key of the device profile it carries
// (the SignedConnectionRequest of seed 001); a result is signed by an
// administration key of the ParentUDF profile (ConnectComplete, seed 001
// §7.14). Both are identified by the UDF of the device profile, which is
// what ConnectStatus (DeviceID) looks them up by.

// Connection results (seed 001 §6.1.3).
const (
	ResultAccepted = "Accepted"
	ResultRefused  = "Refused"
	ResultQuery    = "Query"
)

// MaxBlockTokenLength bounds ConnectionRequest.BlockToken in bytes.
const MaxBlockTokenLength = 256

// ConnectionRequest asks to connect a device to a Mesh profile.
type ConnectionRequest struct {
	// ParentUDF is the UDF of the profile the device asks to join.
	ParentUDF string `json:"ParentUDF,omitempty"`
	// Device is the device's signed ProfileDevice.
	Device *Envelope `json:"Device,omitempty"`
	// BlockToken is optional and opaque.
	BlockToken string `json:"BlockToken,omitempty"`
}

// ConnectionResult answers a ConnectionRequest; it repeats the request's
// fields and adds Result.
type ConnectionResult struct {
	ConnectionRequest
	// Result is ResultAccepted, ResultRefused or ResultQuery.
	Result string `json:"Result,omitempty"`
	// EnvelopedActivationAccount, on an accepted result, is the device's
	// activation (activation.go): encrypted to the device's KeyEncryption
	// and signed by the same administration key as the result.
	EnvelopedActivationAccount *Envelope `json:"EnvelopedActivationAccount,omitempty"`
}

// TypeName implements Object.
func (*ConnectionRequest) TypeName() string { return "ConnectionRequest" }

// TypeName implements Object.
func (*ConnectionResult) TypeName() string { return "ConnectionResult" }

// check checks ParentUDF, BlockToken and the device profile, and returns
// the device profile.
func (r *ConnectionRequest) check() (*ProfileDevice, error) {
	if r.ParentUDF == "" {
		return nil, fieldErr(ErrMalformed, "ParentUDF", "absent")
	}
	if _, err := ParseUDF(r.ParentUDF); err != nil {
		return nil, inField("ParentUDF", err)
	}
	if len(r.BlockToken) > MaxBlockTokenLength {
		return nil, fieldErr(ErrTooLarge, "BlockToken", "%d bytes, limit %d", len(r.BlockToken), MaxBlockTokenLength)
	}
	var dev ProfileDevice
	if err := decodeSigned(r.Device, &dev, "Device"); err != nil {
		return nil, err
	}
	return &dev, nil
}

// DeviceUDF is the identifier of the device profile the request carries.
func (r *ConnectionRequest) DeviceUDF() (UDF, error) {
	var dev ProfileDevice
	if r.Device == nil {
		return UDF{}, fieldErr(ErrMalformed, "Device", "absent")
	}
	if err := DecodePayload(r.Device.Payload, &dev); err != nil {
		return UDF{}, inField("Device", err)
	}
	return dev.Identifier()
}

// Validate checks the request: ParentUDF is a UDF, Device is a valid
// ProfileDevice, and env is signed by that device's offline key.
func (r *ConnectionRequest) Validate(env *Envelope) error {
	dev, err := r.check()
	if err != nil {
		return err
	}
	k, _ := dev.KeyOfflineSignature.PublicKey()
	if env == nil {
		return fieldErr(ErrMalformed, "envelope", "absent")
	}
	if err := env.Verify(k); err != nil {
		return err
	}
	return nil
}

// Validate checks the result: Result is one of the three values, Device is
// a valid ProfileDevice, authority is the ParentUDF profile, and env is
// signed by its offline key or one of its online keys.
func (r *ConnectionResult) Validate(env *Envelope, authority SignedProfile) error {
	switch r.Result {
	case ResultAccepted, ResultRefused, ResultQuery:
	case "":
		return fieldErr(ErrMalformed, "Result", "absent")
	default:
		return fieldErr(ErrMalformed, "Result", "%q, want Accepted, Refused or Query", r.Result)
	}
	dev, err := r.check()
	if err != nil {
		return err
	}
	if authority == nil {
		return fieldErr(ErrUnknownKey, "ParentUDF", "authority profile %s unknown", r.ParentUDF)
	}
	id, err := authority.Base().Identifier()
	if err != nil {
		return inField("authority", err)
	}
	if !UDFEqual(r.ParentUDF, id.String()) {
		return fieldErr(ErrIdentifierMismatch, "ParentUDF", "%s, authority profile is %s", r.ParentUDF, id)
	}
	if _, err = verifyByAuthority(env, authority); err != nil {
		return err
	}
	if a := r.EnvelopedActivationAccount; a != nil {
		const field = "EnvelopedActivationAccount"
		if r.Result != ResultAccepted {
			return fieldErr(ErrMalformed, field, "present on a %s result", r.Result)
		}
		enc, _ := dev.KeyEncryption.PublicKey()
		if !a.Encrypted() || len(a.RecipientKeys()) != 1 || a.RecipientKeys()[0] != enc.UDF().String() {
			return fieldErr(ErrMalformed, field, "not encrypted to the device's KeyEncryption %s alone", enc.UDF())
		}
		if _, err := verifyByAuthority(a, authority); err != nil {
			return inField(field, err)
		}
	}
	return nil
}

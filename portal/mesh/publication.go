package mesh

import "encoding/json"

// CatalogedPublication (seed 002 §7.2.15) is how an encrypted entry is
// published to a portal: data encrypted to an account (or to any X448
// keys), which the portal stores and serves as ciphertext. Like an escrow
// entry it travels in an unsigned envelope and is never replaced; unlike
// one, what it holds is itself signed:
//
//	{"CatalogedPublication":[{"dig":"SHA2"}, "<base64url of
//	  {"CatalogedPublication":{"ID":"M…","EnvelopedData":[<encrypted envelope>]}}>",
//	  {"PayloadDigest":"…"}]}
//
// ID is PublicationID(EnvelopedData): the SHA-2 UDF, content type
// ContentTypePublication, of the encrypted envelope's JSON as
// Envelope.MarshalJSON writes it. Every byte of the encrypted envelope,
// its header included, is thus bound to the identifier under which it is
// found: no one can publish a changed copy under the same ID first. The
// portal checks the shape, that EnvelopedData is encrypted, its digest, that
// it is signed, and the ID; only a recipient can check more (Decrypt).
type CatalogedPublication struct {
	// ID is PublicationID(EnvelopedData).
	ID string `json:"ID,omitempty"`
	// EnvelopedData is the encrypted, signed envelope.
	EnvelopedData *Envelope `json:"EnvelopedData,omitempty"`
}

// TypeName implements Object.
func (*CatalogedPublication) TypeName() string { return TypeCatalogedPublication }

// ContentTypePublication is the content type of a publication's ID.
const ContentTypePublication = "application/x-mmm-publication"

// PublicationID is the identifier of a publication of env.
func PublicationID(env *Envelope) (UDF, error) {
	b, err := json.Marshal(env)
	if err != nil {
		return UDF{}, fieldErr(ErrMalformed, "EnvelopedData", "%v", err)
	}
	return MustUDFSHA2(ContentTypePublication, b), nil
}

// NewPublication wraps an encrypted envelope for Publish and returns the
// tagged entry and its identifier.
func NewPublication(env *Envelope) ([]byte, UDF, error) {
	id, err := PublicationID(env)
	if err != nil {
		return nil, UDF{}, err
	}
	p := &CatalogedPublication{ID: id.String(), EnvelopedData: env}
	if err := p.Validate(); err != nil {
		return nil, UDF{}, err
	}
	outer, err := SignObject(p)
	if err != nil {
		return nil, UDF{}, err
	}
	entry, err := MarshalEntry(p.TypeName(), outer)
	return entry, id, err
}

// Validate checks what a portal can check of a publication.
func (p *CatalogedPublication) Validate() error {
	e := p.EnvelopedData
	if e == nil {
		return fieldErr(ErrMalformed, "EnvelopedData", "absent")
	}
	if !e.Encrypted() {
		return fieldErr(ErrMalformed, "EnvelopedData", "not encrypted")
	}
	if err := e.CheckDigest(); err != nil {
		return inField("EnvelopedData", err)
	}
	if len(e.Trailer.Signatures) == 0 {
		return fieldErr(ErrBadSignature, "EnvelopedData.trailer.signatures", "absent: an encrypted entry must be signed")
	}
	id, err := ParseUDF(p.ID)
	if err != nil {
		return inField("ID", err)
	}
	want, err := PublicationID(e)
	if err != nil {
		return err
	}
	if id.String() != p.ID || !id.Equal(want) {
		return fieldErr(ErrIdentifierMismatch, "ID", "states %s, the envelope's is %s", p.ID, want)
	}
	return nil
}

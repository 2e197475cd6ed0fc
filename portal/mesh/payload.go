package mesh

import (
	"bytes"
	"encoding/json"
)

// Payloads and entries are type-tagged: a JSON object with exactly one key,
// the type name. An envelope's payload is {"ProfileMesh":{...}}, and an
// entry (what Publish carries) is {"ProfileMesh":[header, payload, trailer]}.

// EncodePayload is the type-tagged JSON of obj, e.g. {"ProfileMesh":{...}}.
func EncodePayload(obj Object) ([]byte, error) {
	body, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	tag, _ := json.Marshal(obj.TypeName())
	var b bytes.Buffer
	b.WriteByte('{')
	b.Write(tag)
	b.WriteByte(':')
	b.Write(body)
	b.WriteByte('}')
	return b.Bytes(), nil
}

// PayloadType returns the type tag of a payload and the tagged value. Line
// wrapping inside strings (see unwrapStrings) is tolerated.
func PayloadType(payload []byte) (string, json.RawMessage, error) {
	o, err := parseObject(unwrapStrings(payload), "payload")
	if err != nil {
		return "", nil, err
	}
	if len(o.keys) != 1 {
		return "", nil, fieldErr(ErrMalformed, "payload", "%d keys, want exactly one type tag", len(o.keys))
	}
	return o.keys[0], o.values[o.keys[0]], nil
}

// DecodePayload decodes a type-tagged payload into obj, checking that the
// tag is obj.TypeName().
func DecodePayload(payload []byte, obj Object) error {
	tag, body, err := PayloadType(payload)
	if err != nil {
		return err
	}
	if tag != obj.TypeName() {
		return fieldErr(ErrMalformed, "payload", "type %q, want %q", tag, obj.TypeName())
	}
	if err := json.Unmarshal(body, obj); err != nil {
		return inField("payload."+tag, asMalformed(err))
	}
	return nil
}

// SignObject encodes obj as a type-tagged payload and signs it with keys.
func SignObject(obj Object, keys ...*PrivateKey) (*Envelope, error) {
	p, err := EncodePayload(obj)
	if err != nil {
		return nil, err
	}
	return Sign(p, keys...)
}

// ParseEntry parses a type-tagged entry {"<Type>":[header, payload,
// trailer]} and returns the type name and the envelope. It checks shape and
// size only; VerifyEntry checks everything.
func ParseEntry(data []byte) (string, *Envelope, error) {
	if len(data) > MaxEnvelopeSize {
		return "", nil, fieldErr(ErrTooLarge, "entry", "%d bytes, limit %d", len(data), MaxEnvelopeSize)
	}
	o, err := parseObject(data, "entry")
	if err != nil {
		return "", nil, err
	}
	if len(o.keys) != 1 {
		return "", nil, fieldErr(ErrMalformed, "entry", "%d keys, want exactly one type tag", len(o.keys))
	}
	tag := o.keys[0]
	env, err := ParseEnvelope(o.values[tag])
	if err != nil {
		return "", nil, inField(tag, err)
	}
	return tag, env, nil
}

// MarshalEntry builds the type-tagged entry {"<typeName>":<envelope>}.
func MarshalEntry(typeName string, env *Envelope) ([]byte, error) {
	e, err := env.MarshalJSON()
	if err != nil {
		return nil, err
	}
	tag, _ := json.Marshal(typeName)
	var b bytes.Buffer
	b.WriteByte('{')
	b.Write(tag)
	b.WriteByte(':')
	b.Write(e)
	b.WriteByte('}')
	return b.Bytes(), nil
}

// asMalformed makes a JSON decoding error a FieldError of kind ErrMalformed
// (keeping FieldErrors from nested decoders as they are).
func asMalformed(err error) error {
	var fe *FieldError
	if ok := asFieldError(err, &fe); ok {
		return err
	}
	if te, ok := err.(*json.UnmarshalTypeError); ok {
		return fieldErr(ErrMalformed, te.Field, "want %s, have JSON %s", te.Type, te.Value)
	}
	return fieldErr(ErrMalformed, "", "%v", err)
}

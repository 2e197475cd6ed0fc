package mesh

import (
	"encoding/base64"
	"encoding/json"
	"strings"
)

// Binary fields travel as base64url without padding (RFC 4648 §5), as in
// seed 002. Decoding is strict about the alphabet and the unused trailing
// bits (so no two strings decode to the same bytes) but ignores ASCII
// whitespace, which the drafts insert when they wrap long lines.
var b64 = base64.RawURLEncoding.Strict()

// Base64 is a byte string that marshals to JSON as unpadded base64url.
type Base64 []byte

// MarshalJSON implements json.Marshaler.
func (b Base64) MarshalJSON() ([]byte, error) {
	return json.Marshal(b64.EncodeToString(b))
}

// UnmarshalJSON implements json.Unmarshaler.
func (b *Base64) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fieldErr(ErrMalformed, "", "want a base64url string")
	}
	v, err := decodeBase64(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// decodeBase64 decodes unpadded base64url, ignoring ASCII whitespace.
func decodeBase64(s string) ([]byte, error) {
	if strings.ContainsAny(s, " \t\r\n") {
		s = strings.Map(func(r rune) rune {
			switch r {
			case ' ', '\t', '\r', '\n':
				return -1
			}
			return r
		}, s)
	}
	v, err := b64.DecodeString(s)
	if err != nil {
		return nil, fieldErr(ErrMalformed, "", "bad base64url: %v", err)
	}
	return v, nil
}

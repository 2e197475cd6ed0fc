package mesh

import (
	"crypto/sha3"
	"crypto/sha512"
	"encoding/base32"
	"strings"
)

// UDF (Uniform Data Fingerprint), as docs/design.md, "UDF", describes:
//
//	CDV    = H(data)
//	TCDV   = H(UTF8(content_type) || ':' || CDV)
//	binary = type byte || TCDV, truncated to the requested bits
//	string = RFC 4648 Base32, unpadded, (bits+4)/5 characters, '-' every 4
//
// H is SHA-2-512 for type UDFTypeSHA2 (strings start with M) and SHA-3-512
// for UDFTypeSHA3 (K). Example: the SHA-2 UDF of "UDF Data Value" with
// content type "text/plain" at the default 140 bits is
// MDDK-7N6A-727A-JZNO-STRX-XKS7-DJAF.

// UDFType is the first byte of a UDF's binary form.
type UDFType byte

// UDF type bytes.
const (
	UDFTypeSHA2  UDFType = 0x60 // SHA-2-512 content digest ("M...")
	UDFTypeSHA3  UDFType = 0x50 // SHA-3-512 content digest ("K...")
	UDFTypeNonce UDFType = 0x68 // random nonce ("N...")
	UDFTypeShare UDFType = 0x90 // Shamir secret share ("S...")
)

// UDF lengths in bits, counting the type byte.
const (
	DefaultUDFBits = 140 // 28 characters
	MinUDFBits     = 100 // the Mesh minimum, 20 characters
	MaxUDFBits     = 440 // 88 characters
)

// ContentTypeKeyInfo is the content type of key identifiers: the UDF of a
// public key is taken over its key-info (SubjectPublicKeyInfo) encoding.
const ContentTypeKeyInfo = "application/x509-keyinfo"

var udfBase32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// UDF is a parsed fingerprint: its characters, canonical (upper case, no
// dashes). The zero value is the empty UDF. Comparable with ==.
type UDF struct {
	chars string
}

// NewUDF computes the content-digest UDF of data with the given content type
// (type UDFTypeSHA2 or UDFTypeSHA3) truncated to bits (MinUDFBits..MaxUDFBits).
func NewUDF(t UDFType, contentType string, data []byte, bits int) (UDF, error) {
	if bits < MinUDFBits || bits > MaxUDFBits {
		return UDF{}, fieldErr(ErrMalformed, "bits", "%d outside %d..%d", bits, MinUDFBits, MaxUDFBits)
	}
	var tcdv []byte
	switch t {
	case UDFTypeSHA2:
		cdv := sha512.Sum512(data)
		h := sha512.New()
		h.Write([]byte(contentType))
		h.Write([]byte{':'})
		h.Write(cdv[:])
		tcdv = h.Sum(nil)
	case UDFTypeSHA3:
		cdv := sha3.Sum512(data)
		h := sha3.New512()
		h.Write([]byte(contentType))
		h.Write([]byte{':'})
		h.Write(cdv[:])
		tcdv = h.Sum(nil)
	default:
		return UDF{}, fieldErr(ErrUnsupported, "type", "0x%02x is not a digest UDF type", byte(t))
	}
	return UDFFromBinary(append([]byte{byte(t)}, tcdv...), bits)
}

// MustUDFSHA2 is NewUDF(UDFTypeSHA2, contentType, data, DefaultUDFBits),
// which cannot fail.
func MustUDFSHA2(contentType string, data []byte) UDF {
	u, _ := NewUDF(UDFTypeSHA2, contentType, data, DefaultUDFBits)
	return u
}

// UDFFromBinary presents binary (type byte first) as a UDF of the given bits.
// binary must hold at least bits bits (rounded up to whole characters).
func UDFFromBinary(binary []byte, bits int) (UDF, error) {
	if bits < MinUDFBits || bits > MaxUDFBits {
		return UDF{}, fieldErr(ErrMalformed, "bits", "%d outside %d..%d", bits, MinUDFBits, MaxUDFBits)
	}
	n := (bits + 4) / 5
	if len(binary)*8 < n*5 {
		return UDF{}, fieldErr(ErrMalformed, "binary", "%d bytes cannot give %d bits", len(binary), bits)
	}
	return UDF{chars: udfBase32.EncodeToString(binary)[:n]}, nil
}

// ParseUDF parses a UDF string. Letters may be of either case and dashes
// are optional (they may appear anywhere, but not first, last or doubled);
// the result must be MinUDFBits..MaxUDFBits long.
func ParseUDF(s string) (UDF, error) {
	if len(s) > 2*MaxUDFBits/5 {
		return UDF{}, fieldErr(ErrTooLarge, "", "%d characters", len(s))
	}
	if strings.HasPrefix(s, "-") || strings.HasSuffix(s, "-") || strings.Contains(s, "--") {
		return UDF{}, fieldErr(ErrMalformed, "", "misplaced dash in %q", s)
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-':
			continue
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		case c >= 'A' && c <= 'Z', c >= '2' && c <= '7':
		default:
			return UDF{}, fieldErr(ErrMalformed, "", "character %q at offset %d is not Base32", c, i)
		}
		b.WriteByte(c)
	}
	chars := b.String()
	if bits := 5 * len(chars); bits < MinUDFBits || bits > MaxUDFBits {
		return UDF{}, fieldErr(ErrMalformed, "", "%d bits, want %d..%d", bits, MinUDFBits, MaxUDFBits)
	}
	return UDF{chars: chars}, nil
}

// String presents the UDF with a dash every four characters.
func (u UDF) String() string {
	var b strings.Builder
	for i := 0; i < len(u.chars); i += 4 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(u.chars[i:min(i+4, len(u.chars))])
	}
	return b.String()
}

// Compact is the UDF's characters without dashes, in upper case.
func (u UDF) Compact() string { return u.chars }

// IsZero reports whether u is the empty UDF.
func (u UDF) IsZero() bool { return u.chars == "" }

// Bits is the UDF's length in bits (five per character).
func (u UDF) Bits() int { return 5 * len(u.chars) }

// Type is the UDF's type byte.
func (u UDF) Type() UDFType {
	b := u.Bytes()
	if len(b) == 0 {
		return 0
	}
	return UDFType(b[0])
}

// Bytes is the binary form: the characters decoded, the final partial byte
// (if any) padded with zero bits.
func (u UDF) Bytes() []byte {
	s := u.chars
	// Pad to a whole number of 8-character Base32 blocks, then trim.
	for len(s)%8 != 0 {
		s += "A"
	}
	out := make([]byte, udfBase32.DecodedLen(len(s)))
	n, err := udfBase32.Decode(out, []byte(s))
	if err != nil {
		return nil
	}
	return out[:min(n, (len(u.chars)*5+7)/8)]
}

// Equal reports whether u and v are the same fingerprint of the same length.
func (u UDF) Equal(v UDF) bool { return u.chars == v.chars }

// UDFEqual reports whether two UDF strings denote the same fingerprint,
// ignoring case and dashes. Unparseable strings are never equal.
func UDFEqual(a, b string) bool {
	ua, err := ParseUDF(a)
	if err != nil {
		return false
	}
	ub, err := ParseUDF(b)
	if err != nil {
		return false
	}
	return ua.Equal(ub)
}

// MarshalText implements encoding.TextMarshaler (the dashed form).
func (u UDF) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (ParseUDF).
func (u *UDF) UnmarshalText(b []byte) error {
	v, err := ParseUDF(string(b))
	if err != nil {
		return err
	}
	*u = v
	return nil
}

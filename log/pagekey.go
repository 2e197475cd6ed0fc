package log

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
)

// A page key tells Range where the next page starts. It is opaque to
// clients; the log encodes it as unpadded base64url of 13 bytes:
//
//	version   1 byte, 0x01
//	seq       8 bytes, big-endian: the first record of the next page
//	check     4 bytes: the first 4 bytes of SHA-256("intermesh log page key" || version || seq)
//
// For example the page key of seq 1000 is "AQAAAAAAAAPoqVhzyg" (check bytes
// a9 58 73 ca). The check catches keys that were mangled or
// made up; it is not a secret (a client that forges a page key gets a page
// it could have asked for with Constraints.From anyway).

const (
	pageKeyVersion = 1
	pageKeyLen     = 1 + 8 + 4
	pageKeyDomain  = "intermesh log page key"
)

var pageKeyEncoding = base64.RawURLEncoding.Strict()

// encodePageKey returns the page key of a page starting at seq.
func encodePageKey(seq uint64) string {
	b := make([]byte, 0, pageKeyLen)
	b = append(b, pageKeyVersion)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, pageKeyCheck(b)...)
	return pageKeyEncoding.EncodeToString(b)
}

// decodePageKey returns the seq a page key starts at; any string that
// encodePageKey did not produce gives an error wrapping ErrInvalidPageKey.
func decodePageKey(key string) (uint64, error) {
	if len(key) != pageKeyEncoding.EncodedLen(pageKeyLen) {
		return 0, fmt.Errorf("%w: %d characters, want %d", ErrInvalidPageKey, len(key), pageKeyEncoding.EncodedLen(pageKeyLen))
	}
	b, err := pageKeyEncoding.DecodeString(key)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidPageKey, err)
	}
	// The decoder skips CR and LF, so a key of the right length can still
	// decode to fewer bytes.
	if len(b) != pageKeyLen {
		return 0, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidPageKey, len(b), pageKeyLen)
	}
	if b[0] != pageKeyVersion {
		return 0, fmt.Errorf("%w: version %d, want %d", ErrInvalidPageKey, b[0], pageKeyVersion)
	}
	if !bytes.Equal(b[9:], pageKeyCheck(b[:9])) {
		return 0, fmt.Errorf("%w: check bytes do not match", ErrInvalidPageKey)
	}
	return binary.BigEndian.Uint64(b[1:9]), nil
}

func pageKeyCheck(versionAndSeq []byte) []byte {
	h := sha256.New()
	h.Write([]byte(pageKeyDomain))
	h.Write(versionAndSeq)
	return h.Sum(nil)[:4]
}

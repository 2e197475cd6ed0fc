package mesh

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
)

// RFC 3394 AES key wrap, which DARE uses to wrap an envelope's master key
// under the key each recipient's key agreement gives (the "wmk" field). It
// is a few lines on top of crypto/aes; the standard library has none. The
// tests check RFC 3394 §4's vectors.

// keyWrapIV is RFC 3394's default initial value.
const keyWrapIV = 0xA6A6A6A6A6A6A6A6

// aesKeyWrap wraps key (a multiple of 8 bytes, at least 16) under kek.
func aesKeyWrap(kek, key []byte) ([]byte, error) {
	if len(key) < 16 || len(key)%8 != 0 {
		return nil, fmt.Errorf("mesh: key wrap: %d-byte key, want a multiple of 8, at least 16", len(key))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("mesh: key wrap: %w", err)
	}
	n := len(key) / 8
	out := make([]byte, 8+len(key))
	copy(out[8:], key)
	a := uint64(keyWrapIV)
	var b [16]byte
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			binary.BigEndian.PutUint64(b[:8], a)
			copy(b[8:], out[8*i:8*i+8])
			block.Encrypt(b[:], b[:])
			a = binary.BigEndian.Uint64(b[:8]) ^ uint64(n*j+i)
			copy(out[8*i:], b[8:])
		}
	}
	binary.BigEndian.PutUint64(out[:8], a)
	return out, nil
}

// aesKeyUnwrap unwraps wrapped under kek and checks the integrity value
// (ErrDecrypt if it does not match: a wrong key or a changed wmk).
func aesKeyUnwrap(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped) < 24 || len(wrapped)%8 != 0 {
		return nil, fieldErr(ErrMalformed, "wmk", "%d bytes, want a multiple of 8, at least 24", len(wrapped))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("mesh: key unwrap: %w", err)
	}
	n := len(wrapped)/8 - 1
	out := make([]byte, 8*n)
	copy(out, wrapped[8:])
	a := binary.BigEndian.Uint64(wrapped[:8])
	var b [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			binary.BigEndian.PutUint64(b[:8], a^uint64(n*j+i))
			copy(b[8:], out[8*(i-1):8*i])
			block.Decrypt(b[:], b[:])
			a = binary.BigEndian.Uint64(b[:8])
			copy(out[8*(i-1):], b[8:])
		}
	}
	var got, want [8]byte
	binary.BigEndian.PutUint64(got[:], a)
	binary.BigEndian.PutUint64(want[:], keyWrapIV)
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return nil, fieldErr(ErrDecrypt, "wmk", "the key does not unwrap (wrong recipient key, or the envelope was changed)")
	}
	return out, nil
}

package mesh

import (
	"crypto/subtle"

	"github.com/cloudflare/circl/math/fp448"
)

// X448 keys as the Mesh reference implementation writes them.
//
// An X448 public key is 57 bytes on the wire: RFC 7748's 56-byte
// little-endian u-coordinate of the point, then one byte that is 0x80 if the
// point's v-coordinate (reduced mod p) is odd and 0x00 if it is even. The
// reference implementation keeps the v sign so that it can add points (key
// combination); RFC 7748 agreement uses only the first 56 bytes. For a
// private key k (56 bytes, clamped as RFC 7748 says when used) the public
// key is [k]B for the base point B = (5, v₀) of RFC 7748 §4.2, whose v is
// recovered with the Okeya–Sakurai formulas from the Montgomery ladder's
// two outputs [k]B and [k+1]B.
//
// Seed 002's ActivationAccount example gives a full pair: its private key
// ocf5RAK9… has public key aPCWDpBJ…MYAA, and X448(private, 5) is its first
// 56 bytes; the tests check our 57th byte against it.

// x448SignOdd is the 57th byte of a key whose v-coordinate is odd;
// x448SignByte is its index.
const (
	x448SignOdd  = 0x80
	x448SignByte = 56
)

// curve448 constants: A = 156326, (A-2)/4 = 39081.
const (
	curve448A   = 156326
	curve448A24 = 39081
)

// curve448BaseV is v₀ of the base point (u = 5) of RFC 7748 §4.2, little-endian.
func curve448BaseV() fp448.Elt {
	return fp448.Elt{
		0x1a, 0x5b, 0x7b, 0x45, 0x3d, 0x22, 0xd7, 0x6f, 0xf7, 0x7a, 0x67, 0x50, 0xb1, 0xc4,
		0x12, 0x13, 0x21, 0x0d, 0x43, 0x46, 0x23, 0x7e, 0x02, 0xb8, 0xed, 0xf6, 0xf3, 0x8d,
		0xc2, 0x5d, 0xf7, 0x60, 0xd0, 0x45, 0x55, 0xf5, 0x34, 0x5d, 0xae, 0xcb, 0xce, 0x6f,
		0x32, 0x58, 0x6e, 0xab, 0x98, 0x6c, 0xf6, 0xb1, 0xf5, 0x95, 0x12, 0x5d, 0x23, 0x7d,
	}
}

func eltSmall(n uint32) fp448.Elt {
	var e fp448.Elt
	e[0], e[1], e[2], e[3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	return e
}

// x448Ladder runs the RFC 7748 Montgomery ladder for the clamped scalar k
// on the point with u-coordinate u, and returns the projective
// u-coordinates of [k]P (x2:z2) and [k+1]P (x3:z3).
func x448Ladder(k *[56]byte, u *fp448.Elt) (x2, z2, x3, z3 fp448.Elt) {
	a24 := eltSmall(curve448A24)
	x1 := *u
	x2, z2, x3, z3 = fp448.One(), fp448.Elt{}, x1, fp448.One()
	var swap uint
	var a, aa, b, bb, e, c, d, da, cb fp448.Elt
	for i := 447; i >= 0; i-- {
		bit := uint(k[i/8]>>(i%8)) & 1
		swap ^= bit
		fp448.Cswap(&x2, &x3, swap)
		fp448.Cswap(&z2, &z3, swap)
		swap = bit
		fp448.Add(&a, &x2, &z2)
		fp448.Sqr(&aa, &a)
		fp448.Sub(&b, &x2, &z2)
		fp448.Sqr(&bb, &b)
		fp448.Sub(&e, &aa, &bb)
		fp448.Add(&c, &x3, &z3)
		fp448.Sub(&d, &x3, &z3)
		fp448.Mul(&da, &d, &a)
		fp448.Mul(&cb, &c, &b)
		fp448.Add(&x3, &da, &cb)
		fp448.Sqr(&x3, &x3)
		fp448.Sub(&z3, &da, &cb)
		fp448.Sqr(&z3, &z3)
		fp448.Mul(&z3, &z3, &x1)
		fp448.Mul(&x2, &aa, &bb)
		fp448.Mul(&z2, &a24, &e)
		fp448.Add(&z2, &z2, &aa)
		fp448.Mul(&z2, &z2, &e)
	}
	fp448.Cswap(&x2, &x3, swap)
	fp448.Cswap(&z2, &z3, swap)
	return x2, z2, x3, z3
}

// clampX448 is RFC 7748's decodeScalar448.
func clampX448(raw []byte) [56]byte {
	var k [56]byte
	copy(k[:], raw)
	k[0] &= 252
	k[55] |= 128
	return k
}

// x448PublicFromPrivate computes the 57-byte public key of a 56-byte
// private key: u of [k]B and the sign of its v (Okeya–Sakurai recovery
// with B = (5, v₀)). ok is false only if [k]B is the point at infinity,
// which no clamped scalar gives in practice.
func x448PublicFromPrivate(raw []byte) (pub [57]byte, ok bool) {
	k := clampX448(raw)
	xp, yp := eltSmall(5), curve448BaseV()
	xq, zq, xq1, zq1 := x448Ladder(&k, &xp)
	twoA := eltSmall(2 * curve448A)
	var v1, v2, v3, v4 fp448.Elt
	fp448.Mul(&v1, &xp, &zq)
	fp448.Add(&v2, &xq, &v1)
	fp448.Sub(&v3, &xq, &v1)
	fp448.Sqr(&v3, &v3)
	fp448.Mul(&v3, &v3, &xq1)
	fp448.Mul(&v1, &twoA, &zq)
	fp448.Add(&v2, &v2, &v1)
	fp448.Mul(&v4, &xp, &xq)
	fp448.Add(&v4, &v4, &zq)
	fp448.Mul(&v2, &v2, &v4)
	fp448.Mul(&v1, &v1, &zq)
	fp448.Sub(&v2, &v2, &v1)
	fp448.Mul(&v2, &v2, &zq1)
	var y, x, z fp448.Elt
	fp448.Sub(&y, &v2, &v3)
	fp448.Add(&v1, &yp, &yp)
	fp448.Mul(&v1, &v1, &zq)
	fp448.Mul(&v1, &v1, &zq1)
	fp448.Mul(&x, &v1, &xq)
	fp448.Mul(&z, &v1, &zq)
	if fp448.IsZero(&z) {
		return pub, false
	}
	var zi, u, v fp448.Elt
	fp448.Inv(&zi, &z)
	fp448.Mul(&u, &x, &zi)
	fp448.Mul(&v, &y, &zi)
	fp448.Modp(&u)
	fp448.Modp(&v)
	copy(pub[:56], u[:])
	pub[56] = byte(subtle.ConstantTimeSelect(int(v[0]&1), x448SignOdd, 0))
	return pub, true
}

// x448OnCurve reports whether a 57-byte public key is canonical and on
// curve448: u < p, u³ + A·u² + u is a square mod p (the twist's points are
// not), and the sign byte is 0x00 or 0x80.
func x448OnCurve(raw []byte) bool {
	if len(raw) != X448PublicKeySize || raw[56]&0x7F != 0 {
		return false
	}
	var u fp448.Elt
	copy(u[:], raw[:56])
	p := fp448.P()
	// u < p: compare little-endian from the top byte.
	less := false
	for i := 55; i >= 0; i-- {
		if u[i] != p[i] {
			less = u[i] < p[i]
			break
		}
	}
	if !less {
		return false
	}
	a := eltSmall(curve448A)
	var u2, rhs, t, root fp448.Elt
	fp448.Sqr(&u2, &u)
	fp448.Mul(&rhs, &u2, &u)
	fp448.Mul(&t, &u2, &a)
	fp448.Add(&rhs, &rhs, &t)
	fp448.Add(&rhs, &rhs, &u)
	if fp448.IsZero(&rhs) {
		return true
	}
	one := fp448.One()
	return fp448.InvSqrt(&root, &rhs, &one)
}

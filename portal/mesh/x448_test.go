package mesh

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rfcPublic is the Mesh form of an RFC 7748 u-coordinate: the sign byte is
// whatever makes it the key; the agreement reads only the first 56 bytes.
func rfcPublic(t testing.TB, u []byte, sign byte) PublicKey {
	t.Helper()
	k, err := NewPublicKey(CurveX448, append(bytes.Clone(u), sign))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// RFC 7748 §5.2 (single multiplications) and §6.2 (Diffie-Hellman) through
// our keys: the private keys' public halves have RFC 7748's u-coordinates,
// and agreement with a 57-byte key uses its first 56 bytes.
func TestX448RFC7748Vectors(t *testing.T) {
	for _, v := range []struct{ scalar, u, out string }{
		{"3d262fddf9ec8e88495266fea19a34d28882acef045104d0d1aae121700a779c984c24f8cdd78fbff44943eba368f54b29259a4f1c600ad3",
			"06fce640fa3487bfda5f6cf2d5263f8aad88334cbd07437f020f08f9814dc031ddbdc38c19c6da2583fa5429db94ada18aa7a7fb4ef8a086",
			"ce3e4ff95a60dc6697da1db1d85e6afbdf79b50a2412d7546d5f239fe14fbaadeb445fc66a01b0779d98223961111e21766282f73dd96b6f"},
		{"203d494428b8399352665ddca42f9de8fef600908e0d461cb021f8c538345dd77c3e4806e25f46d3315c44e0a5b4371282dd2c8d5be3095f",
			"0fbcc2f993cd56d3305b0b7d9e55d4c1a8fb5dbb52f8e9a1e9b6201b165d015894e56c4d3570bee52fe205e28a78b91cdfbde71ce8d157db",
			"884a02576239ff7a2f2f63b2db6a9ff37047ac13568e1e30fe63c4a7ad1b3ee3a5700df34321d62077e63633c575c1c954514e99da7c179d"},
	} {
		k, err := NewPrivateKey(CurveX448, unhex(t, v.scalar))
		if err != nil {
			t.Fatal(err)
		}
		u := unhex(t, v.u)
		// The vectors' u may lie on the twist; build the key without the
		// curve check, as RFC 7748 agreement allows any u.
		got, err := k.SharedSecret(PublicKey{Curve: CurveX448, Raw: append(u, 0)})
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got) != v.out {
			t.Errorf("X448(%s…) = %x, want %s", v.scalar[:8], got, v.out)
		}
	}

	alice, err := NewPrivateKey(CurveX448, unhex(t, "9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28dd9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b"))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := NewPrivateKey(CurveX448, unhex(t, "1c306a7ac2a0e2e0990b294470cba339e6453772b075811d8fad0d1d6927c120bb5ee8972b0d3e21374c9c921b09d1b0366f10b65173992d"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key  *PrivateKey
		want string
	}{
		{alice, "9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c22c5d9bbc836647241d953d40c5b12da88120d53177f80e532c41fa0"},
		{bob, "3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b43027d8b972fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609"},
	} {
		pub := c.key.Public().Raw
		if len(pub) != X448PublicKeySize || hex.EncodeToString(pub[:56]) != c.want {
			t.Fatalf("public key %x, want %s and a sign byte", pub, c.want)
		}
	}
	const shared = "07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282bb60c0b56fd2464c335543936521c24403085d59a449a5037514a879d"
	s1, err1 := alice.SharedSecret(bob.Public())
	s2, err2 := bob.SharedSecret(rfcPublic(t, alice.Public().Raw[:56], alice.Public().Raw[56]))
	if err1 != nil || err2 != nil || hex.EncodeToString(s1) != shared || hex.EncodeToString(s2) != shared {
		t.Fatalf("shared secrets %x / %x (%v, %v), want %s", s1, s2, err1, err2, shared)
	}
}

// seedAccountKey is the X448 key pair of seed 002's ActivationAccount
// example (KeyAccountEncryption), the only private key in the seeds.
func seedAccountKey(t testing.TB) (*KeyData, *PrivateKey) {
	t.Helper()
	var doc struct {
		ActivationAccount struct {
			KeyAccountEncryption *KeyData
		}
	}
	if err := json.Unmarshal(readTestdata(t, "seed002_ActivationAccount.json"), &doc); err != nil {
		t.Fatal(err)
	}
	kd := doc.ActivationAccount.KeyAccountEncryption
	k, err := kd.PrivateKey()
	if err != nil {
		t.Fatalf("the seed's own X448 key pair does not import: %v", err)
	}
	return kd, k
}

// The seed's key pair imports: the public key we compute from the private
// key is the seed's, all 57 bytes (so the sign byte too), and so is its UDF.
func TestX448SeedKeyPair(t *testing.T) {
	kd, k := seedAccountKey(t)
	if got := k.UDF().String(); got != "MD6D-SYF6-236Q-Q7R7-MZGI-IQZR-EXCN" {
		t.Fatalf("UDF %s, want MD6D-SYF6-236Q-Q7R7-MZGI-IQZR-EXCN", got)
	}
	if !bytes.Equal(k.Public().Raw, kd.PublicParameters.PublicKeyECDH.Public) {
		t.Fatalf("public key %x, seed says %x", k.Public().Raw, kd.PublicParameters.PublicKeyECDH.Public)
	}
	// Agreement both ways between the seed's key and a key of ours.
	ours := newKey(t, CurveX448)
	s1, err1 := k.SharedSecret(ours.Public())
	s2, err2 := ours.SharedSecret(k.Public())
	if err1 != nil || err2 != nil || !bytes.Equal(s1, s2) || len(s1) != 56 {
		t.Fatalf("agreement with the seed key: %x / %x (%v, %v)", s1, s2, err1, err2)
	}
	// A key pair whose public half is wrong by its sign byte is refused.
	bad := *kd
	pub := bytes.Clone(kd.PublicParameters.PublicKeyECDH.Public)
	pub[56] ^= x448SignOdd
	bad.UDF = ""
	bad.PublicParameters = &PublicParameters{PublicKeyECDH: &PublicKeyECDH{Crv: "X448", Public: pub}}
	if _, err := bad.PrivateKey(); !errors.Is(err, ErrIdentifierMismatch) {
		t.Fatalf("key pair with the wrong sign byte: %v, want ErrIdentifierMismatch", err)
	}
}

// Every X448 key of the seed lies on curve448 and parses.
func TestX448SeedKeysOnCurve(t *testing.T) {
	n := 0
	for _, k := range seedKeys(t) {
		if k.Curve != CurveX448 {
			continue
		}
		n++
		if !x448OnCurve(k.Raw) {
			t.Errorf("seed key %s is not on curve448", k.UDF())
		}
	}
	if n < 4 {
		t.Fatalf("%d X448 keys in the seed, want at least 4", n)
	}
}

func TestX448PublicKeyRefused(t *testing.T) {
	good := newKey(t, CurveX448).Public().Raw
	p := (&big.Int{}).Sub((&big.Int{}).Lsh(big.NewInt(1), 448), (&big.Int{}).Lsh(big.NewInt(1), 224))
	p.Sub(p, big.NewInt(1))
	le := func(n *big.Int) []byte {
		b := n.FillBytes(make([]byte, 56))
		for i, j := 0, 55; i < j; i, j = i+1, j-1 {
			b[i], b[j] = b[j], b[i]
		}
		return append(b, 0)
	}
	// A u whose u³+Au²+u is not a square: a point of the twist.
	var twist []byte
	for u := int64(2); twist == nil; u++ {
		if raw := le(big.NewInt(u)); !x448OnCurve(raw) {
			twist = raw
		}
	}
	for _, c := range []struct {
		name string
		raw  []byte
	}{
		{"56 bytes (RFC 7748 without the sign byte)", good[:56]},
		{"58 bytes", append(bytes.Clone(good), 0)},
		{"a sign byte other than 0x00 and 0x80", append(bytes.Clone(good[:56]), 0x01)},
		{"u = p (not canonical)", le(p)},
		{"a point of the twist", twist},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := NewPublicKey(CurveX448, c.raw); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
}

// affine is a test-only reference for the sign byte: plain double-and-add
// with the affine Montgomery formulas, in math/big.
type affine struct {
	u, v *big.Int
	inf  bool
}

func TestX448SignByteMatchesAffineArithmetic(t *testing.T) {
	p := (&big.Int{}).Sub((&big.Int{}).Lsh(big.NewInt(1), 448), (&big.Int{}).Lsh(big.NewInt(1), 224))
	p.Sub(p, big.NewInt(1))
	A := big.NewInt(curve448A)
	mod := func(x *big.Int) *big.Int { return x.Mod(x, p) }
	inv := func(x *big.Int) *big.Int { return (&big.Int{}).ModInverse(x, p) }
	mul := func(a, b *big.Int) *big.Int { return mod((&big.Int{}).Mul(a, b)) }
	add := func(P, Q affine) affine {
		switch {
		case P.inf:
			return Q
		case Q.inf:
			return P
		}
		var l *big.Int
		if P.u.Cmp(Q.u) == 0 {
			if mod((&big.Int{}).Add(P.v, Q.v)).Sign() == 0 {
				return affine{inf: true}
			}
			num := mod((&big.Int{}).Add((&big.Int{}).Add(mul(big.NewInt(3), mul(P.u, P.u)), mul(big.NewInt(2), mul(A, P.u))), big.NewInt(1)))
			l = mul(num, inv(mul(big.NewInt(2), P.v)))
		} else {
			l = mul(mod((&big.Int{}).Sub(Q.v, P.v)), inv(mod((&big.Int{}).Sub(Q.u, P.u))))
		}
		u := mod((&big.Int{}).Sub((&big.Int{}).Sub((&big.Int{}).Sub(mul(l, l), A), P.u), Q.u))
		v := mod((&big.Int{}).Sub(mul(l, mod((&big.Int{}).Sub(P.u, u))), P.v))
		return affine{u: u, v: v}
	}
	baseV := curve448BaseV()
	fromLE := func(b []byte) *big.Int {
		r := make([]byte, len(b))
		for i := range b {
			r[len(b)-1-i] = b[i]
		}
		return (&big.Int{}).SetBytes(r)
	}
	base := affine{u: big.NewInt(5), v: fromLE(baseV[:])}
	for i := 0; i < 4; i++ {
		raw := make([]byte, 56)
		if _, err := rand.Read(raw); err != nil {
			t.Fatal(err)
		}
		k := clampX448(raw)
		s := fromLE(k[:])
		acc, pt := affine{inf: true}, base
		for b := 0; b < s.BitLen(); b++ {
			if s.Bit(b) == 1 {
				acc = add(acc, pt)
			}
			pt = add(pt, pt)
		}
		key, err := NewPrivateKey(CurveX448, raw)
		if err != nil {
			t.Fatal(err)
		}
		want := le56(acc.u)
		want = append(want, 0)
		if acc.v.Bit(0) == 1 {
			want[56] = x448SignOdd
		}
		if !bytes.Equal(key.Public().Raw, want) {
			t.Fatalf("public key %x, affine arithmetic gives %x", key.Public().Raw, want)
		}
	}
}

func le56(n *big.Int) []byte {
	b := n.FillBytes(make([]byte, 56))
	for i, j := 0, 55; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return b
}

// Keys we generate have the reference implementation's identifiers: the UDF
// of the 57-byte key.
func TestX448GeneratedKeyIdentifier(t *testing.T) {
	k := newKey(t, CurveX448)
	if len(k.Public().Raw) != 57 {
		t.Fatalf("generated public key is %d bytes, want 57", len(k.Public().Raw))
	}
	want := MustUDFSHA2(ContentTypeKeyInfo, append([]byte{0x30, 0x47, 0x30, 0x07, 0x06, 0x03, 0x2B, 0x65, 0x6F, 0x05, 0x00, 0x03, 0x3C, 0x00, 0x04, 0x39}, k.Public().Raw...))
	if !k.UDF().Equal(want) {
		t.Fatalf("UDF %s, want %s", k.UDF(), want)
	}
}

func BenchmarkX448GenerateKey(b *testing.B) {
	for b.Loop() {
		if _, err := GenerateKey(rand.Reader, CurveX448); err != nil {
			b.Fatal(err)
		}
	}
}

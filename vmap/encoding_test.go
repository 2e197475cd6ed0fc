package vmap

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// vectorProofEncodings returns the encodings of every proof in proofs.json
// whose shape has one (the cases and the must_fail proofs that are only
// wrong about the tree).
func vectorProofEncodings(t testing.TB) [][]byte {
	var v proofVectors
	loadVectors(t, "proofs.json", &v)
	var out [][]byte
	for _, c := range append(v.Cases, v.MustFail...) {
		if b, err := c.Proof.toProof(t).MarshalBinary(); err == nil {
			out = append(out, b)
		}
	}
	return out
}

func TestProofEncodingRoundTrip(t *testing.T) {
	var v proofVectors
	loadVectors(t, "proofs.json", &v)
	for _, c := range v.Cases {
		p := c.Proof.toProof(t)
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: %v", c.About, err)
		}
		back, err := ParseProof(b)
		if err != nil {
			t.Fatalf("%s: ParseProof: %v", c.About, err)
		}
		if !proofsEqual(p, back) {
			t.Errorf("%s: decoded %+v, want %+v", c.About, back, p)
		}
		if _, _, err := Verify(hash32(t, c.Root), Key(hash32(t, c.Key)), back); err != nil {
			t.Errorf("%s: decoded proof: %v", c.About, err)
		}
	}
}

func TestProofEncodingExample(t *testing.T) {
	s, k, h := Hash{1}, Key{2}, Hash{3}
	p := &Proof{Result: OtherLeaf, Depth: 2, Siblings: []Hash{s, {}}, OtherKey: &k, OtherValueHash: &h}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := "02" + "0002" + "40" + hex.EncodeToString(s[:]) + hex.EncodeToString(k[:]) + hex.EncodeToString(h[:])
	if got := hex.EncodeToString(b); got != want || len(b) != 100 {
		t.Errorf("encoding %s (%d bytes), want %s", got, len(b), want)
	}
	b, err = (&Proof{Result: Empty, Siblings: []Hash{}}).MarshalBinary()
	if err != nil || hex.EncodeToString(b) != "030000" {
		t.Errorf("empty proof at depth 0 encodes as %x, %v; want 030000", b, err)
	}
}

func TestParseProofRefuses(t *testing.T) {
	sib := strings.Repeat("11", 32)
	val := strings.Repeat("22", ValueSize)
	for _, c := range []struct{ name, hex, why string }{
		{"empty input", "", "result and depth"},
		{"result 0", "000000", "unknown result"},
		{"result 4", "040000", "unknown result"},
		{"depth 257", "030101" + strings.Repeat("ff", 33), "depth 257"},
		{"depth 65535", "03ffff", "depth 65535"},
		{"missing bitmap", "030001", "bitmap"},
		{"bitmap bit past depth", "03000140", "past depth"},
		{"truncated sibling", "03000100" + sib[:62], "sibling 0"},
		{"listed zero sibling", "03000100" + strings.Repeat("00", 32), "zero bytes"},
		{"inclusion without value", "010000", "value"},
		{"inclusion with short value", "010000" + val[:158], "value"},
		{"other-leaf without value hash", "020000" + sib, "other value hash"},
		{"trailing byte", "03000000", "trailing"},
		{"inclusion with trailing byte", "010000" + val + "00", "trailing"},
		{"oversized", "01" + strings.Repeat("00", MaxProofSize), "over the limit"},
	} {
		_, err := ParseProof(unhex(t, c.hex))
		if !errors.Is(err, ErrMalformedProof) || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s: ParseProof = %v, want ErrMalformedProof saying %q", c.name, err, c.why)
		}
	}
}

func TestParseProofRefusesEveryTruncation(t *testing.T) {
	for _, b := range vectorProofEncodings(t) {
		for n := range len(b) {
			if _, err := ParseProof(b[:n]); !errors.Is(err, ErrMalformedProof) {
				t.Fatalf("%x truncated to %d bytes: ParseProof = %v", b, n, err)
			}
		}
	}
}

func TestMarshalBinaryRefusesBadShapes(t *testing.T) {
	k, h := Key{1}, Hash{2}
	for _, p := range []*Proof{
		nil,
		{Result: 0},
		{Result: Empty, Depth: 1},
		{Result: Empty, Depth: MaxDepth + 1, Siblings: make([]Hash, MaxDepth+1)},
		{Result: Inclusion, Value: make([]byte, 79)},
		{Result: Inclusion, Value: make([]byte, ValueSize), OtherKey: &k},
		{Result: OtherLeaf, OtherKey: &k},
		{Result: Empty, OtherValueHash: &h},
	} {
		if _, err := p.MarshalBinary(); !errors.Is(err, ErrMalformedProof) {
			t.Errorf("MarshalBinary(%+v) = %v, want ErrMalformedProof", p, err)
		}
	}
	full := &Proof{Result: Inclusion, Depth: MaxDepth, Siblings: make([]Hash, MaxDepth), Value: make([]byte, ValueSize)}
	for i := range full.Siblings {
		full.Siblings[i] = Hash{byte(i), 1}
	}
	b, err := full.MarshalBinary()
	if err != nil || len(b) != MaxProofSize {
		t.Errorf("longest proof: %d bytes, %v; want %d", len(b), err, MaxProofSize)
	}
	if back, err := ParseProof(b); err != nil || !proofsEqual(back, full) {
		t.Errorf("longest proof does not round-trip: %v", err)
	}
}

func FuzzDecodeProof(f *testing.F) {
	for _, b := range vectorProofEncodings(f) {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{3, 0, 0})
	f.Add([]byte{2, 0, 9, 0xff, 0x80})
	var v proofVectors
	loadVectors(f, "proofs.json", &v)
	root := hash32(f, v.Root)
	key := Key(hash32(f, v.Cases[0].Key))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProof(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedProof) {
				t.Fatalf("ParseProof error %v does not wrap ErrMalformedProof", err)
			}
			return
		}
		again, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("accepted %x but cannot re-encode it: %v", b, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("accepted %x but re-encodes it as %x", b, again)
		}
		if _, _, err := Verify(root, key, p); err != nil && !errors.Is(err, ErrBadProof) {
			t.Fatalf("Verify error %v does not wrap ErrBadProof", err)
		}
	})
}

package vmap

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxProofSize is the length of the longest proof encoding: an inclusion
// proof at MaxDepth with no empty sibling.
const MaxProofSize = 1 + 2 + MaxDepth/8 + MaxDepth*32 + ValueSize

// ErrMalformedProof is returned (wrapped) by ParseProof for bytes that are
// not a proof encoding, and by MarshalBinary for a proof that has no
// encoding.
var ErrMalformedProof = errors.New("vmap: malformed proof")

// MarshalBinary returns p's binary encoding, in order, integers big-endian:
//
//	result    1 byte: 1 inclusion, 2 other-leaf, 3 empty
//	depth     2 bytes, at most 256
//	bitmap    (depth+7)/8 bytes: bit i, most significant bit of the first
//	          byte first, is set when sibling i is empty (32 zero bytes)
//	          and left out; the bits after the depth-th are zero
//	siblings  32 bytes for each sibling whose bit is clear, root downward
//	end       inclusion: the 80-byte value; other-leaf: the other key (32
//	          bytes) then its value hash (32 bytes); empty: nothing
//
// For example an empty proof at depth 0 (any key of the empty map) is the
// three bytes 03 0000, and an other-leaf proof at depth 2 whose first sibling
// is S and second is empty is 02 0002 40 S K H: 100 bytes.
//
// The encoding of a proof is unique. MarshalBinary refuses a proof whose
// shape Verify would refuse (a depth that is not the number of siblings, a
// value that is not 80 bytes, fields of another result).
func (p *Proof) MarshalBinary() ([]byte, error) {
	if err := p.checkShape(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedProof, err)
	}
	b := make([]byte, 0, 3+(p.Depth+7)/8+32*p.Depth+ValueSize)
	b = append(b, byte(p.Result))
	b = binary.BigEndian.AppendUint16(b, uint16(p.Depth))
	bitmap := make([]byte, (p.Depth+7)/8)
	for i, s := range p.Siblings {
		if s == (Hash{}) {
			bitmap[i/8] |= 0x80 >> (i % 8)
		}
	}
	b = append(b, bitmap...)
	for _, s := range p.Siblings {
		if s != (Hash{}) {
			b = append(b, s[:]...)
		}
	}
	switch p.Result {
	case Inclusion:
		b = append(b, p.Value...)
	case OtherLeaf:
		b = append(b, p.OtherKey[:]...)
		b = append(b, p.OtherValueHash[:]...)
	}
	return b, nil
}

// ParseProof decodes a proof encoding (see Proof.MarshalBinary). It refuses
// input longer than MaxProofSize, an unknown result, a depth over MaxDepth,
// set bitmap bits past the depth, a listed sibling of 32 zero bytes (the
// bitmap must say so), truncated input and trailing bytes, so that what it
// accepts re-encodes to the same bytes.
func ParseProof(b []byte) (*Proof, error) {
	if len(b) > MaxProofSize {
		return nil, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrMalformedProof, len(b), MaxProofSize)
	}
	d := proofDecoder{b: b}
	head := d.next(3, "result and depth")
	if d.err != nil {
		return nil, d.err
	}
	p := &Proof{Result: Result(head[0]), Depth: int(binary.BigEndian.Uint16(head[1:]))}
	if p.Result < Inclusion || p.Result > Empty {
		return nil, fmt.Errorf("%w: unknown result %d", ErrMalformedProof, head[0])
	}
	if p.Depth > MaxDepth {
		return nil, fmt.Errorf("%w: depth %d over %d", ErrMalformedProof, p.Depth, MaxDepth)
	}
	if err := d.siblings(p); err != nil {
		return nil, err
	}
	switch p.Result {
	case Inclusion:
		p.Value = append([]byte{}, d.next(ValueSize, "value")...)
	case OtherLeaf:
		k, h := Key(d.hash("other key")), d.hash("other value hash")
		p.OtherKey, p.OtherValueHash = &k, &h
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformedProof, len(d.b))
	}
	return p, nil
}

// proofDecoder reads fields off the front of b, remembering the first
// error.
type proofDecoder struct {
	b   []byte
	err error
}

// next returns the next n bytes, or nil after an error.
func (d *proofDecoder) next(n int, field string) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.err = fmt.Errorf("%w: %s: need %d bytes, have %d", ErrMalformedProof, field, n, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// hash returns the next 32 bytes as a hash.
func (d *proofDecoder) hash(field string) Hash {
	var h Hash
	copy(h[:], d.next(32, field))
	return h
}

// siblings reads the bitmap and the listed siblings of a proof at p.Depth.
func (d *proofDecoder) siblings(p *Proof) error {
	bitmap := d.next((p.Depth+7)/8, "bitmap")
	if d.err != nil {
		return d.err
	}
	if p.Depth%8 != 0 && bitmap[len(bitmap)-1]&(0xff>>(p.Depth%8)) != 0 {
		return fmt.Errorf("%w: bitmap bits set past depth %d", ErrMalformedProof, p.Depth)
	}
	p.Siblings = make([]Hash, p.Depth)
	for i := range p.Siblings {
		if bitmap[i/8]&(0x80>>(i%8)) != 0 {
			continue
		}
		p.Siblings[i] = d.hash(fmt.Sprintf("sibling %d", i))
		if d.err != nil {
			return d.err
		}
		if p.Siblings[i] == (Hash{}) {
			return fmt.Errorf("%w: sibling %d is listed as 32 zero bytes; the bitmap marks an empty sibling", ErrMalformedProof, i)
		}
	}
	return nil
}

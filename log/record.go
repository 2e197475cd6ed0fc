package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// Kind says what a record is. The log stores it as an opaque string (it
// refuses only an empty one): each caller defines the kinds it appends and
// how it reads them back.
type Kind string

// Record is one entry of the log.
type Record struct {
	// Seq is the record's sequence number and leaf index, assigned by the log.
	Seq uint64
	// Time is when the record was sequenced (UTC, nanosecond precision),
	// assigned by the log; never earlier than the previous record's time.
	Time time.Time
	// Kind says what the record is, in the terms of the caller that
	// appended it.
	Kind Kind
	// Identifier names what the record is about, or is empty. The log
	// stores it opaque (it only bounds its length); its meaning is the
	// caller's: the portal puts an object's UDF here, the InterMesh the
	// origin evidence is against, the node "federation/<version>".
	Identifier string
	// Account names who the record belongs to, or is empty; opaque to the
	// log like Identifier (the portal puts the account name here).
	Account string
	// Payload is the record's content, stored opaque.
	Payload []byte
	// Origin is the log name of the node that first sequenced the record.
	Origin string
}

// leafVersion is the first byte of every leaf; a new encoding gets a new one.
const leafVersion = 1

// Size limits of the leaf encoding's fields.
const (
	MaxFieldLen   = math.MaxUint16 // kind, identifier, account, origin
	MaxPayloadLen = 16 << 20       // payload
	// MaxLeafLen bounds a record's whole leaf encoding: C2SP tlog-tiles
	// entry bundles prefix each leaf with a uint16 length, so a leaf that
	// every tlog-tiles client can read is at most 65,535 bytes.
	MaxLeafLen = math.MaxUint16
)

// ErrMalformedLeaf is returned (wrapped) by UnmarshalLeaf for bytes that are
// not a leaf encoding.
var ErrMalformedLeaf = errors.New("log: malformed leaf")

// MarshalLeaf returns the leaf encoding of r: the exact bytes whose RFC 6962
// leaf hash, SHA-256(0x00 || leaf), is r's leaf in the Merkle tree.
//
// The encoding is, in order, with every integer big-endian:
//
//	version     1 byte, 0x01
//	seq         8 bytes, unsigned
//	time        8 bytes, signed nanoseconds since the Unix epoch (UTC)
//	kind        2-byte length, then UTF-8 bytes
//	identifier  2-byte length, then UTF-8 bytes
//	account     2-byte length, then UTF-8 bytes
//	origin      2-byte length, then UTF-8 bytes
//	payload     4-byte length, then the payload bytes
//
// For example the record {Seq: 1, Time: 1970-01-01T00:00:00.000000002Z,
// Kind: "Account", Account: "a", Payload: "{}", Origin: "n"} encodes as
//
//	01 0000000000000001 0000000000000002 0007 "Account" 0000 0001 "a" 0001 "n" 00000002 "{}"
//
// MarshalLeaf panics if a field is longer than its length prefix allows;
// Validate reports that as an error first.
func (r *Record) MarshalLeaf() []byte {
	if err := r.Validate(); err != nil {
		panic(err)
	}
	b := make([]byte, 0, r.leafLen())
	b = append(b, leafVersion)
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixNano()))
	for _, s := range []string{string(r.Kind), r.Identifier, r.Account, r.Origin} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Payload)))
	return append(b, r.Payload...)
}

// leafLen is the length of r's leaf encoding.
func (r *Record) leafLen() int {
	return 1 + 8 + 8 + 4*2 + len(r.Kind) + len(r.Identifier) + len(r.Account) + len(r.Origin) + 4 + len(r.Payload)
}

// Validate checks that r fits the leaf encoding: every field within its
// length limit and a kind that is not empty.
func (r *Record) Validate() error {
	if r.Kind == "" {
		return errors.New("log: record has no kind")
	}
	for _, f := range []struct{ name, v string }{
		{"kind", string(r.Kind)}, {"identifier", r.Identifier}, {"account", r.Account}, {"origin", r.Origin},
	} {
		if len(f.v) > MaxFieldLen {
			return fmt.Errorf("log: record %s is %d bytes, over the limit of %d", f.name, len(f.v), MaxFieldLen)
		}
	}
	if len(r.Payload) > MaxPayloadLen {
		return fmt.Errorf("log: record payload is %d bytes, over the limit of %d", len(r.Payload), MaxPayloadLen)
	}
	if n := r.leafLen(); n > MaxLeafLen {
		return fmt.Errorf("log: record leaf encoding is %d bytes, over the limit of %d (a tlog-tiles entry)", n, MaxLeafLen)
	}
	return nil
}

// UnmarshalLeaf decodes a leaf encoding (see Record.MarshalLeaf). It rejects
// any byte string that MarshalLeaf would not have produced, so that
// UnmarshalLeaf(b) followed by MarshalLeaf gives b back exactly.
func UnmarshalLeaf(b []byte) (Record, error) {
	var r Record
	if len(b) > MaxLeafLen {
		return r, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrMalformedLeaf, len(b), MaxLeafLen)
	}
	d := leafDecoder{b: b}
	if v := d.bytes(1, "version"); d.err == nil && v[0] != leafVersion {
		return r, fmt.Errorf("%w: version %d, want %d", ErrMalformedLeaf, v[0], leafVersion)
	}
	r.Seq = d.uint64("seq")
	r.Time = time.Unix(0, int64(d.uint64("time"))).UTC()
	r.Kind = Kind(d.string16("kind"))
	r.Identifier = d.string16("identifier")
	r.Account = d.string16("account")
	r.Origin = d.string16("origin")
	if n := d.uint32("payload length"); d.err == nil {
		if n > MaxPayloadLen {
			return Record{}, fmt.Errorf("%w: payload length %d over the limit of %d", ErrMalformedLeaf, n, MaxPayloadLen)
		}
		r.Payload = append([]byte{}, d.bytes(int(n), "payload")...)
	}
	if d.err != nil {
		return Record{}, d.err
	}
	if len(d.b) != 0 {
		return Record{}, fmt.Errorf("%w: %d trailing bytes", ErrMalformedLeaf, len(d.b))
	}
	if r.Kind == "" {
		return Record{}, fmt.Errorf("%w: empty kind", ErrMalformedLeaf)
	}
	return r, nil
}

// leafDecoder reads fields off the front of b, remembering the first error.
type leafDecoder struct {
	b   []byte
	err error
}

func (d *leafDecoder) bytes(n int, field string) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.err = fmt.Errorf("%w: %s: need %d bytes, have %d", ErrMalformedLeaf, field, n, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *leafDecoder) uint64(field string) uint64 {
	if v := d.bytes(8, field); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *leafDecoder) uint32(field string) uint32 {
	if v := d.bytes(4, field); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *leafDecoder) string16(field string) string {
	v := d.bytes(2, field+" length")
	if v == nil {
		return ""
	}
	return string(d.bytes(int(binary.BigEndian.Uint16(v)), field))
}

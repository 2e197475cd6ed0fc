package vmap

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Namespace is the kind of name a key stands for.
type Namespace string

// The three namespaces of the map.
const (
	// Profile keys are profile identifiers.
	Profile Namespace = "profile"
	// Escrow keys are escrow identifiers.
	Escrow Namespace = "escrow"
	// Account keys are account names.
	Account Namespace = "account"
)

// Valid reports whether ns is one of the three namespaces.
func (ns Namespace) Valid() bool {
	return ns == Profile || ns == Escrow || ns == Account
}

// Key is a 32-byte key of the map: the SHA-256 of a namespace label and a
// name.
type Key [32]byte

// Hash is a 32-byte SHA-256 hash: a node of the tree, a value hash, a leaf
// hash of the log or a link of a history chain.
type Hash [32]byte

// keyLabel, valueLabel and historyLabel begin every key, value hash and
// history link, each followed by a 0x00 byte.
const (
	keyLabel     = "intermesh/map/v1/"
	valueLabel   = "intermesh/map/v1/value"
	historyLabel = "intermesh/map/v1/history"
)

// KeyOf returns the key of name in namespace ns,
// SHA-256("intermesh/map/v1/<ns>" || 0x00 || name). The name's bytes are used
// as they are. It refuses a namespace other than the three.
func KeyOf(ns Namespace, name string) (Key, error) {
	if !ns.Valid() {
		return Key{}, fmt.Errorf("vmap: unknown namespace %q", string(ns))
	}
	h := sha256.New()
	h.Write([]byte(keyLabel + string(ns)))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return Key(h.Sum(nil)), nil
}

// ValueSize is the length of a value's encoding.
const ValueSize = 80

// ErrMalformedValue is returned (wrapped) by ParseValue for bytes that are
// not a value encoding.
var ErrMalformedValue = errors.New("vmap: malformed value")

// Value is what the map holds for a key: the latest record that set the key
// and the history chain of all the records that did.
type Value struct {
	// LatestIndex is the log index of the latest record that set the key.
	LatestIndex uint64
	// LatestLeafHash is that record's RFC 6962 leaf hash.
	LatestLeafHash Hash
	// Count is how many records set the key.
	Count uint64
	// History is the history chain over those records, C_Count.
	History Hash
}

// Marshal returns v's 80-byte encoding: LatestIndex, LatestLeafHash, Count,
// History, integers big-endian.
func (v Value) Marshal() []byte {
	b := make([]byte, 0, ValueSize)
	b = binary.BigEndian.AppendUint64(b, v.LatestIndex)
	b = append(b, v.LatestLeafHash[:]...)
	b = binary.BigEndian.AppendUint64(b, v.Count)
	return append(b, v.History[:]...)
}

// ParseValue decodes a value's encoding (see Value.Marshal). It refuses any
// length other than ValueSize. It does not check that the fields agree with
// each other (that Count is at least one, for example): that is a check
// against the log, made by whoever holds it.
func ParseValue(b []byte) (Value, error) {
	if len(b) != ValueSize {
		return Value{}, fmt.Errorf("%w: %d bytes, want %d", ErrMalformedValue, len(b), ValueSize)
	}
	var v Value
	v.LatestIndex = binary.BigEndian.Uint64(b[0:8])
	copy(v.LatestLeafHash[:], b[8:40])
	v.Count = binary.BigEndian.Uint64(b[40:48])
	copy(v.History[:], b[48:80])
	return v, nil
}

// Hash returns v's value hash, SHA-256("intermesh/map/v1/value" || 0x00 ||
// value), the hash the tree commits to.
func (v Value) Hash() Hash {
	return valueHash(v.Marshal())
}

// valueHash is the value hash of an encoded value.
func valueHash(encoded []byte) Hash {
	h := sha256.New()
	h.Write([]byte(valueLabel))
	h.Write([]byte{0})
	h.Write(encoded)
	return Hash(h.Sum(nil))
}

// NextHistory returns the history link after prev for a record at index with
// leaf hash leafHash: SHA-256("intermesh/map/v1/history" || 0x00 || prev ||
// uint64 index || leafHash). The chain starts from 32 zero bytes.
func NextHistory(prev Hash, index uint64, leafHash Hash) Hash {
	h := sha256.New()
	h.Write([]byte(historyLabel))
	h.Write([]byte{0})
	h.Write(prev[:])
	h.Write(binary.BigEndian.AppendUint64(nil, index))
	h.Write(leafHash[:])
	return Hash(h.Sum(nil))
}

// Append returns the value after one more record, at index with leaf hash
// leafHash, sets the key: that record becomes the latest, Count grows by one
// and History takes one more link. The zero Value is a key no record has set
// yet.
func (v Value) Append(index uint64, leafHash Hash) Value {
	return Value{
		LatestIndex:    index,
		LatestLeafHash: leafHash,
		Count:          v.Count + 1,
		History:        NextHistory(v.History, index, leafHash),
	}
}

package log

import (
	"encoding/binary"
	"fmt"
	"time"

	ks "github.com/intermesh/intermesh/internal/keyspace"
)

// Key layout.
//
// Package log owns every Badger key whose first byte is KeyPrefix ('L',
// 0x4C, keyspace.Log); other packages keeping state in the same DB (the
// Merkle tree, the portal's accounts and profiles) use the other first bytes
// that internal/keyspace lists (see internal/keyspace). Each log lives
// in its own namespace, so that replica logs of peer origins can share the DB
// and the record storage code:
//
//	namespace  'L' | id length (2 bytes, big-endian) | id
//	record     namespace | 'r' | seq (8 bytes, big-endian)  →  leaf encoding (Record.MarshalLeaf)
//	head       namespace | 'h'                             →  size (8 bytes) | time of the last record (8 bytes, ns since the Unix epoch)
//	replica    'L' 00 00 | 'o' | origin                    →  empty: the log holds a replica of origin
//
// The node's own log has the empty id, so its namespace is 'L' 00 00, its
// record 5 is 4C 0000 72 0000000000000005 and its head is 4C 0000 68. A
// replica log (see Replica) uses the peer's origin as id: record 5 of the
// replica of origin "b" is 4C 0001 62 72 0000000000000005, and the replica
// key that lists it is 4C 0000 6F 62, written with the replica's first
// records. Big-endian sequence numbers make Badger's key order the log order,
// so a prefix iterator reads records in sequence.
//
// The head is written in the same transaction as the records it counts (and
// as the derived state of the indexers), so the size can never disagree with
// the records after a crash.

// KeyPrefix is the first byte of every key package log writes; the list of
// every prefix of the store is in internal/keyspace.
const KeyPrefix = ks.Log

// Tags following the namespace.
const (
	tagRecord  byte = 'r'
	tagHead    byte = 'h'
	tagReplica byte = 'o' // only in the node's own namespace
)

// headLen is the length of a head value.
const headLen = 16

// keyspace builds the keys of one log's namespace.
type keyspace struct {
	ns []byte // 'L' | len | id
}

// newKeyspace returns the keyspace of the log named id ("" for the node's own
// log). id must be at most MaxFieldLen bytes.
func newKeyspace(id string) (keyspace, error) {
	if len(id) > MaxFieldLen {
		return keyspace{}, fmt.Errorf("log: log id is %d bytes, over the limit of %d", len(id), MaxFieldLen)
	}
	ns := make([]byte, 0, 3+len(id))
	ns = append(ns, KeyPrefix)
	ns = binary.BigEndian.AppendUint16(ns, uint16(len(id)))
	ns = append(ns, id...)
	return keyspace{ns: ns}, nil
}

// recordPrefix is the prefix shared by every record key of the log.
func (k keyspace) recordPrefix() []byte {
	p := make([]byte, 0, len(k.ns)+1)
	p = append(p, k.ns...)
	return append(p, tagRecord)
}

// recordKey is the key of record seq.
func (k keyspace) recordKey(seq uint64) []byte {
	key := make([]byte, 0, len(k.ns)+9)
	key = append(key, k.ns...)
	key = append(key, tagRecord)
	return binary.BigEndian.AppendUint64(key, seq)
}

// seqOfKey returns the sequence number of a record key of this keyspace.
func (k keyspace) seqOfKey(key []byte) (uint64, bool) {
	n := len(k.ns) + 1
	if len(key) != n+8 || string(key[:len(k.ns)]) != string(k.ns) || key[len(k.ns)] != tagRecord {
		return 0, false
	}
	return binary.BigEndian.Uint64(key[n:]), true
}

// replicaPrefix is the prefix of the replica keys, which list the origins
// whose replica logs the DB holds; it is only used in the own log's keyspace.
func (k keyspace) replicaPrefix() []byte {
	p := make([]byte, 0, len(k.ns)+1)
	p = append(p, k.ns...)
	return append(p, tagReplica)
}

// replicaKey is the replica key of origin.
func (k keyspace) replicaKey(origin string) []byte {
	return append(k.replicaPrefix(), origin...)
}

// headKey is the key of the log's head.
func (k keyspace) headKey() []byte {
	key := make([]byte, 0, len(k.ns)+1)
	key = append(key, k.ns...)
	return append(key, tagHead)
}

// head is what the head key holds: how many records the log has and the
// time of the last one.
type head struct {
	size uint64
	last time.Time // zero when size is 0
}

func (h head) marshal() []byte {
	b := make([]byte, 0, headLen)
	b = binary.BigEndian.AppendUint64(b, h.size)
	var ns int64
	if h.size > 0 {
		ns = h.last.UnixNano()
	}
	return binary.BigEndian.AppendUint64(b, uint64(ns))
}

func unmarshalHead(b []byte) (head, error) {
	if len(b) != headLen {
		return head{}, fmt.Errorf("%w: head is %d bytes, want %d", ErrCorrupt, len(b), headLen)
	}
	h := head{size: binary.BigEndian.Uint64(b)}
	if h.size > 0 {
		h.last = time.Unix(0, int64(binary.BigEndian.Uint64(b[8:]))).UTC()
	}
	return h, nil
}

package intermesh

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/intermesh/intermesh/log"
)

// ErrInvalidBatch reports a records batch that is malformed, not signed by
// its origin, not of a member, or whose records are not the contiguous
// records of that origin it claims.
var ErrInvalidBatch = errors.New("intermesh: invalid records batch")

// Records batch limits. A batch is published once maxBatchBytes of leaves
// have accumulated or the publish interval has passed, whichever is first;
// one leaf larger than that travels alone, up to maxRecordsSize.
const (
	batchVersion  = 1
	maxBatchBytes = 64 << 10
	maxBatchCount = 4096
)

// batchContext separates the signatures of records batches from every other
// use of a member's key (checkpoint and vote notes are UTF-8 text and never
// contain a NUL byte).
const batchContext = "intermesh records batch v1\x00"

// recordsBatch is a run of contiguous records of one origin, as its origin
// published them on the records topic.
//
// Wire form (integers big-endian):
//
//	version    1 byte, 0x01
//	origin     2-byte length, then the origin's bytes
//	first      8 bytes: the sequence number of the first record
//	count      4 bytes: the number of records, at least 1
//	leaves     count times: 4-byte length, then the record's leaf encoding
//	           (log.Record.MarshalLeaf; its seq is first+i, its origin the
//	           batch's origin)
//	signature  64 bytes: Ed25519 by the origin's key over
//	           "intermesh records batch v1\x00" || federation name || 0x00 ||
//	           every byte above
//
// For example a batch of origin "t/n0" holding record 7 (a 60-byte leaf):
//
//	01 0004 "t/n0" 0000000000000007 00000001 0000003c <60 leaf bytes> <64 signature bytes>
type recordsBatch struct {
	origin string
	first  uint64
	leaves [][]byte
	recs   []log.Record // decoded leaves, filled by parseBatch
}

// size is the number of bytes of the batch's leaves.
func (b *recordsBatch) size() int {
	n := 0
	for _, l := range b.leaves {
		n += len(l)
	}
	return n
}

// body returns the signed part of the wire form.
func (b *recordsBatch) body() []byte {
	n := 1 + 2 + len(b.origin) + 8 + 4 + 4*len(b.leaves) + b.size()
	out := make([]byte, 0, n+ed25519.SignatureSize)
	out = append(out, batchVersion)
	out = binary.BigEndian.AppendUint16(out, uint16(len(b.origin)))
	out = append(out, b.origin...)
	out = binary.BigEndian.AppendUint64(out, b.first)
	out = binary.BigEndian.AppendUint32(out, uint32(len(b.leaves)))
	for _, l := range b.leaves {
		out = binary.BigEndian.AppendUint32(out, uint32(len(l)))
		out = append(out, l...)
	}
	return out
}

// signedMessage is the message the batch signature covers.
func batchSignedMessage(federation string, body []byte) []byte {
	msg := make([]byte, 0, len(batchContext)+len(federation)+1+len(body))
	msg = append(msg, batchContext...)
	msg = append(msg, federation...)
	msg = append(msg, 0)
	return append(msg, body...)
}

// encodeBatch returns the signed wire form of b.
func encodeBatch(federation string, b *recordsBatch, key ed25519.PrivateKey) []byte {
	body := b.body()
	sig := ed25519.Sign(key, batchSignedMessage(federation, body))
	return append(body, sig...)
}

// parseBatch is the stateless check of a records batch: size, wire form,
// the origin a member (other than self is the caller's business), a valid
// signature of the origin's key, and leaves that decode to the contiguous
// records of that origin starting at first.
func (m *Mesh) parseBatch(data []byte) (*recordsBatch, error) {
	b, body, sig, err := decodeBatch(data)
	if err != nil {
		return nil, err
	}
	mb, ok := m.members[b.origin]
	if !ok {
		return nil, fmt.Errorf("%w: origin %q is not a member", ErrInvalidBatch, b.origin)
	}
	if !ed25519.Verify(mb.pub, batchSignedMessage(m.fed.Name, body), sig) {
		return nil, fmt.Errorf("%w: not signed by %q", ErrInvalidBatch, b.origin)
	}
	return b, nil
}

// decodeBatch parses the wire form of a records batch (at most
// maxRecordsSize bytes) into the batch, its signed body and its signature,
// checking everything but the signature and the origin's membership.
func decodeBatch(data []byte) (*recordsBatch, []byte, []byte, error) {
	if len(data) > maxRecordsSize {
		return nil, nil, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidBatch, len(data), maxRecordsSize)
	}
	if len(data) < 1+2+8+4+ed25519.SignatureSize {
		return nil, nil, nil, fmt.Errorf("%w: %d bytes is too short", ErrInvalidBatch, len(data))
	}
	body, sig := data[:len(data)-ed25519.SignatureSize], data[len(data)-ed25519.SignatureSize:]
	d := body
	take := func(n int) []byte {
		if len(d) < n {
			return nil
		}
		v := d[:n]
		d = d[n:]
		return v
	}
	if v := take(1); v[0] != batchVersion {
		return nil, nil, nil, fmt.Errorf("%w: version %d, want %d", ErrInvalidBatch, v[0], batchVersion)
	}
	olen := int(binary.BigEndian.Uint16(take(2)))
	ob := take(olen)
	fb, cb := take(8), take(4)
	if ob == nil || fb == nil || cb == nil {
		return nil, nil, nil, fmt.Errorf("%w: truncated header", ErrInvalidBatch)
	}
	b := &recordsBatch{origin: string(ob), first: binary.BigEndian.Uint64(fb)}
	count := binary.BigEndian.Uint32(cb)
	if count == 0 || count > maxBatchCount {
		return nil, nil, nil, fmt.Errorf("%w: %d records, want 1 to %d", ErrInvalidBatch, count, maxBatchCount)
	}
	for i := range count {
		lb := take(4)
		if lb == nil {
			return nil, nil, nil, fmt.Errorf("%w: truncated at record %d", ErrInvalidBatch, i)
		}
		leaf := take(int(binary.BigEndian.Uint32(lb)))
		if leaf == nil {
			return nil, nil, nil, fmt.Errorf("%w: truncated at record %d", ErrInvalidBatch, i)
		}
		rec, err := log.UnmarshalLeaf(leaf)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w: record %d: %w", ErrInvalidBatch, i, err)
		}
		if rec.Seq != b.first+uint64(i) || rec.Origin != b.origin {
			return nil, nil, nil, fmt.Errorf("%w: record %d is seq %d of %q, want seq %d of %q",
				ErrInvalidBatch, i, rec.Seq, rec.Origin, b.first+uint64(i), b.origin)
		}
		if i > 0 && rec.Time.Before(b.recs[i-1].Time) {
			return nil, nil, nil, fmt.Errorf("%w: record %d goes back in time", ErrInvalidBatch, rec.Seq)
		}
		b.leaves = append(b.leaves, leaf)
		b.recs = append(b.recs, rec)
	}
	if len(d) != 0 {
		return nil, nil, nil, fmt.Errorf("%w: %d trailing bytes", ErrInvalidBatch, len(d))
	}
	return b, body, sig, nil
}

// batchesOf cuts records into batches of at most maxBatchBytes of leaves
// (a larger record alone) and maxBatchCount records.
func batchesOf(origin string, recs []log.Record) []*recordsBatch {
	var out []*recordsBatch
	var cur *recordsBatch
	size := 0
	for i := range recs {
		leaf := recs[i].MarshalLeaf()
		if cur == nil || size+len(leaf) > maxBatchBytes || len(cur.leaves) >= maxBatchCount {
			cur = &recordsBatch{origin: origin, first: recs[i].Seq}
			out = append(out, cur)
			size = 0
		}
		cur.leaves = append(cur.leaves, leaf)
		cur.recs = append(cur.recs, recs[i])
		size += len(leaf)
	}
	return out
}

package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// recordStore reads and writes the records and the head of one log
// namespace inside Badger transactions. It holds no state of its own beyond
// the keyspace, so the node's log and (later) the replica logs of its peers
// share it.
type recordStore struct {
	keys keyspace
}

// get reads record seq.
func (s recordStore) get(txn *badger.Txn, seq uint64) (Record, error) {
	item, err := txn.Get(s.keys.recordKey(seq))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Record{}, fmt.Errorf("%w: record %d", ErrNotFound, seq)
	}
	if err != nil {
		return Record{}, fmt.Errorf("log: reading record %d: %w", seq, err)
	}
	var rec Record
	err = item.Value(func(v []byte) error {
		rec, err = decodeRecord(seq, v)
		return err
	})
	return rec, err
}

// decodeRecord decodes the stored value of record seq.
func decodeRecord(seq uint64, v []byte) (Record, error) {
	rec, err := UnmarshalLeaf(v)
	if err != nil {
		return Record{}, fmt.Errorf("%w: record %d: %w", ErrCorrupt, seq, err)
	}
	if rec.Seq != seq {
		return Record{}, fmt.Errorf("%w: record %d holds sequence number %d", ErrCorrupt, seq, rec.Seq)
	}
	return rec, nil
}

// timeOf reads only the time of record seq, without copying its payload.
func (s recordStore) timeOf(txn *badger.Txn, seq uint64) (time.Time, error) {
	item, err := txn.Get(s.keys.recordKey(seq))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return time.Time{}, fmt.Errorf("%w: record %d", ErrNotFound, seq)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("log: reading record %d: %w", seq, err)
	}
	var t time.Time
	err = item.Value(func(v []byte) error {
		// version (1) | seq (8) | time (8): see Record.MarshalLeaf.
		if len(v) < 17 || v[0] != leafVersion || binary.BigEndian.Uint64(v[1:]) != seq {
			return fmt.Errorf("%w: record %d: bad leaf header", ErrCorrupt, seq)
		}
		t = time.Unix(0, int64(binary.BigEndian.Uint64(v[9:]))).UTC()
		return nil
	})
	return t, err
}

// put writes rec under its sequence number.
func (s recordStore) put(txn *badger.Txn, rec *Record) error {
	return txn.Set(s.keys.recordKey(rec.Seq), rec.MarshalLeaf())
}

// readHead reads the head; a log that was never written has the zero head.
func (s recordStore) readHead(txn *badger.Txn) (head, error) {
	item, err := txn.Get(s.keys.headKey())
	if errors.Is(err, badger.ErrKeyNotFound) {
		return head{}, nil
	}
	if err != nil {
		return head{}, fmt.Errorf("log: reading head: %w", err)
	}
	var h head
	err = item.Value(func(v []byte) error {
		h, err = unmarshalHead(v)
		return err
	})
	return h, err
}

// putHead writes the head.
func (s recordStore) putHead(txn *badger.Txn, h head) error {
	return txn.Set(s.keys.headKey(), h.marshal())
}

// lastStoredSeq returns the highest sequence number that has a record key,
// and false if there is none.
func (s recordStore) lastStoredSeq(txn *badger.Txn) (uint64, bool) {
	prefix := s.keys.recordPrefix()
	it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: prefix})
	defer it.Close()
	// In reverse, Seek finds the largest key <= its argument.
	it.Seek(append(append([]byte{}, prefix...), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
	for ; it.ValidForPrefix(prefix); it.Next() {
		if seq, ok := s.keys.seqOfKey(it.Item().Key()); ok {
			return seq, true
		}
	}
	return 0, false
}

// check verifies that the head agrees with the records: the last record it
// counts is there, decodes, and has the head's time. It returns the sequence
// numbers of records stored past the head, which no committed transaction
// can have written (the head is written with the records), so they are
// leftovers that were never acknowledged.
func (s recordStore) check(txn *badger.Txn) (head, []uint64, error) {
	h, err := s.readHead(txn)
	if err != nil {
		return head{}, nil, err
	}
	if h.size > 0 {
		last, err := s.get(txn, h.size-1)
		if errors.Is(err, ErrNotFound) {
			return head{}, nil, fmt.Errorf("%w: the log holds %d records but record %d is missing", ErrCorrupt, h.size, h.size-1)
		}
		if err != nil {
			return head{}, nil, err
		}
		if !last.Time.Equal(h.last) {
			return head{}, nil, fmt.Errorf("%w: record %d has time %s, the head says %s", ErrCorrupt, h.size-1, last.Time, h.last)
		}
	}
	var strays []uint64
	if top, ok := s.lastStoredSeq(txn); ok && top >= h.size {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: s.keys.recordPrefix()})
		defer it.Close()
		for it.Seek(s.keys.recordKey(h.size)); it.ValidForPrefix(s.keys.recordPrefix()); it.Next() {
			if seq, ok := s.keys.seqOfKey(it.Item().Key()); ok {
				strays = append(strays, seq)
			}
		}
	}
	return h, strays, nil
}

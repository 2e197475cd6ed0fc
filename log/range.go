package log

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Page sizes of Range.
const (
	DefaultPageEntries = 1000  // MaxEntries when a caller gives none
	MaxPageEntries     = 10000 // the most records one page holds
)

// Constraints select the records Range returns: the SearchConstraints of the
// Mesh Portal Protocol (seed 001 §7.4.4).
type Constraints struct {
	// NotBefore, if not zero, selects records with Time >= NotBefore.
	NotBefore time.Time
	// Before, if not zero, selects records with Time < Before.
	Before time.Time
	// MaxEntries bounds the records of a page; 0 (or less) means
	// DefaultPageEntries, and more than MaxPageEntries means MaxPageEntries.
	MaxEntries int
	// MaxBytes, if positive, bounds the total size of a page's records (a
	// record's size is the length of its leaf encoding). A page holds at
	// least one record even if that one alone is larger.
	MaxBytes int
	// PageKey continues where the previous page (asked with the same
	// constraints) stopped; "" starts at From, or at the first record at or
	// after NotBefore if that is later.
	PageKey string
	// From is the first sequence number to consider when PageKey is "".
	From uint64
}

// Page is one page of Range's answer.
type Page struct {
	// Records are the page's records in sequence order.
	Records []Record
	// PageKey asks for the next page; it is "" when the log holds no more
	// records that match (at the time of the call: a log grows, so a caller
	// following it asks again later with From set past the last record).
	PageKey string
}

// Range returns the records that match c, one page at a time. Because
// record times never decrease with the sequence number, the first record at
// or after NotBefore is found by binary search, and the page ends at the
// first record at or after Before.
func (l *Log) Range(ctx context.Context, c Constraints) (Page, error) {
	maxEntries := pageEntries(c)
	var page Page
	// Read the size before the snapshot is taken, so that the snapshot holds
	// every record the size counts.
	size := l.Size()
	err := l.view(func(txn *badger.Txn) error {
		var err error
		page, err = l.store.rangePage(ctx, txn, c, size, maxEntries)
		return err
	})
	if err != nil {
		return Page{}, err
	}
	return page, nil
}

// pageEntries returns the effective MaxEntries of c.
func pageEntries(c Constraints) int {
	n := c.MaxEntries
	if n <= 0 {
		n = DefaultPageEntries
	}
	return min(n, MaxPageEntries)
}

// rangePage reads the page of the log in s that matches c, as of size.
func (s recordStore) rangePage(ctx context.Context, txn *badger.Txn, c Constraints, size uint64, maxEntries int) (Page, error) {
	start, err := s.rangeStart(txn, c, size)
	if err != nil {
		return Page{}, err
	}
	return s.readPage(ctx, txn, c, start, size, maxEntries)
}

// rangeStart returns the first sequence number a page may hold.
func (s recordStore) rangeStart(txn *badger.Txn, c Constraints, size uint64) (uint64, error) {
	if c.PageKey != "" {
		seq, err := decodePageKey(c.PageKey)
		if err != nil {
			return 0, err
		}
		if seq > size {
			return 0, fmt.Errorf("%w: it points past the end of the log", ErrInvalidPageKey)
		}
		return seq, nil
	}
	start := min(c.From, size)
	if c.NotBefore.IsZero() || start == size {
		return start, nil
	}
	var searchErr error
	n := sort.Search(int(size-start), func(i int) bool {
		if searchErr != nil {
			return true
		}
		t, err := s.timeOf(txn, start+uint64(i))
		if err != nil {
			searchErr = err
			return true
		}
		return !t.Before(c.NotBefore)
	})
	if searchErr != nil {
		return 0, searchErr
	}
	return start + uint64(n), nil
}

// readPage reads records from start until the page is full, the log (as of
// size) ends, or a record is at or after c.Before.
func (s recordStore) readPage(ctx context.Context, txn *badger.Txn, c Constraints, start, size uint64, maxEntries int) (Page, error) {
	var page Page
	if err := ctx.Err(); err != nil {
		return Page{}, err
	}
	if start >= size {
		return page, nil
	}
	prefix := s.keys.recordPrefix()
	it := txn.NewIterator(badger.IteratorOptions{
		PrefetchValues: true,
		PrefetchSize:   min(maxEntries, 100),
		Prefix:         prefix,
	})
	defer it.Close()
	bytes := 0
	seq := start
	for it.Seek(s.keys.recordKey(start)); seq < size; it.Next() {
		if seq%256 == 255 {
			if err := ctx.Err(); err != nil {
				return Page{}, err
			}
		}
		if len(page.Records) == maxEntries {
			page.PageKey = encodePageKey(seq)
			return page, nil
		}
		if !it.ValidForPrefix(prefix) {
			return Page{}, fmt.Errorf("%w: record %d is missing", ErrCorrupt, seq)
		}
		item := it.Item()
		if got, ok := s.keys.seqOfKey(item.Key()); !ok || got != seq {
			return Page{}, fmt.Errorf("%w: record %d is missing (found key %x)", ErrCorrupt, seq, item.Key())
		}
		var rec Record
		var recBytes int
		err := item.Value(func(v []byte) error {
			var err error
			rec, err = decodeRecord(seq, v)
			recBytes = len(v)
			return err
		})
		if err != nil {
			return Page{}, err
		}
		if !c.Before.IsZero() && !rec.Time.Before(c.Before) {
			return page, nil
		}
		if c.MaxBytes > 0 && len(page.Records) > 0 && bytes+recBytes > c.MaxBytes {
			page.PageKey = encodePageKey(seq)
			return page, nil
		}
		bytes += recBytes
		page.Records = append(page.Records, rec)
		seq++
	}
	return page, nil
}

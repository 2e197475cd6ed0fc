package vmap

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/intermesh/intermesh/internal/keyspace"
)

// Key layout of a BadgerStore under its prefix P (for a node's map of a
// log, StorePrefix of the log's name):
//
//	P || 'b' || bucket uint16 || version uint64  the bucket's entries as saved under version
//	P || 'h' || version uint64                   the buckets saved under version, each with the
//	                                             version of it that it supersedes, until Forget
//	                                             or DiscardAbove has dealt with them
//	P || 'v'                                     the committed version, uint64: the last one saved whole
//
// integers big-endian. A bucket's value is its entry count (uint32) and
// then each entry's key (32 bytes) and value (ValueSize bytes), by key.
//
// A list of saved buckets is listFormat (1 byte) and then, for each bucket
// by number, the bucket (uint16) and its previous saved version (uint64):
// the newest one below version when Save wrote it, 0 if there was none,
// or unknownPrev if Save did not know it. Forget deletes a known previous
// version with a direct delete and seeks the older versions of the others
// with an iterator. Stores written before the previous versions were kept
// list the buckets alone (uint16 each, an even length, where the new form's
// is odd); they read as lists whose previous versions are all unknown.
const (
	bucketKind    = 'b'
	savedKind     = 'h'
	committedKind = 'v'

	entrySize = 32 + ValueSize

	listFormat    = 1          // the first byte of a list of saved buckets with their previous versions
	listEntrySize = 2 + 8      // a bucket and its previous version in such a list
	unknownPrev   = ^uint64(0) // a previous version not known
)

// ErrMalformedBucket is returned (wrapped) by a BadgerStore's Load for a
// stored bucket that does not decode: a length that disagrees with its
// count, or keys out of order or outside the bucket.
var ErrMalformedBucket = errors.New("vmap: malformed stored bucket")

// StorePrefix returns the key prefix of the map of the log called name in
// the node's database: keyspace.Map, the name's length as a uvarint, and
// the name, so the maps of different logs never share keys.
func StorePrefix(name string) []byte {
	p := binary.AppendUvarint([]byte{keyspace.Map}, uint64(len(name)))
	return append(p, name...)
}

// BadgerStore is a Store in a Badger database, under a key prefix of its
// own. It is safe for concurrent use, but two BadgerStores over the same
// prefix must not be used at once.
//
// A Save of many buckets may not fit in one Badger transaction (one holds
// about 15% of the memtable size, some 9.6 MB with the default 64 MB
// memtable, while a version that changes all 65,536 buckets of a map of a
// million keys writes about 120 MB). Save then writes the buckets in
// several transactions and sets the committed version in the last, and
// Load never reads a version above the committed one, so a Save cut short
// by a crash is never seen; Open, before opening the tree, or else the
// next Save discards its leftovers.
//
// It keeps in memory the committed version and, once the first Load has
// listed the database's keys, the newest committed version of each bucket
// (512 KB), so that loading a bucket as of the committed version, as
// setting a key does, is a single Badger Get; loading one as of an older
// version seeks with an iterator.
type BadgerStore struct {
	db     *badger.DB
	prefix []byte

	mu        sync.RWMutex
	indexed   bool     // whether the two fields below are set
	committed uint64   // the committed version
	latest    []uint64 // each bucket's newest version not above it, 0 if none
}

// NewBadgerStore returns the Store of db whose keys start with prefix
// (StorePrefix for a log's map). No prefix of another store may start with
// it.
func NewBadgerStore(db *badger.DB, prefix []byte) *BadgerStore {
	return &BadgerStore{db: db, prefix: slices.Clone(prefix)}
}

// key returns P || kind || the numbers, big-endian, of the widths given.
func (s *BadgerStore) key(kind byte, bucket uint32, version uint64, withBucket, withVersion bool) []byte {
	k := make([]byte, 0, len(s.prefix)+1+2+8)
	k = append(append(k, s.prefix...), kind)
	if withBucket {
		k = binary.BigEndian.AppendUint16(k, uint16(bucket))
	}
	if withVersion {
		k = binary.BigEndian.AppendUint64(k, version)
	}
	return k
}

func (s *BadgerStore) bucketKey(bucket uint32, version uint64) []byte {
	return s.key(bucketKind, bucket, version, true, true)
}

func (s *BadgerStore) savedKey(version uint64) []byte {
	return s.key(savedKind, 0, version, false, true)
}

func (s *BadgerStore) committedKey() []byte {
	return s.key(committedKind, 0, 0, false, false)
}

// readCommitted returns the committed version in txn, 0 if none.
func (s *BadgerStore) readCommitted(txn *badger.Txn) (uint64, error) {
	item, err := txn.Get(s.committedKey())
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var v uint64
	err = item.Value(func(b []byte) error {
		if len(b) != 8 {
			return fmt.Errorf("vmap: malformed committed version: %d bytes", len(b))
		}
		v = binary.BigEndian.Uint64(b)
		return nil
	})
	return v, err
}

// Committed returns the last version a Save completed, 0 if none: the
// version to open the map at after a restart (see Open).
func (s *BadgerStore) Committed() (uint64, error) {
	var v uint64
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		v, err = s.readCommitted(txn)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("vmap: reading the committed version: %w", err)
	}
	return v, nil
}

// Open discards what a Save cut short left above the committed version and
// returns the tree at the committed version, keeping proofs for the last
// keep versions it commits.
func (s *BadgerStore) Open(keep int) (*Tree, error) {
	v, err := s.Committed()
	if err != nil {
		return nil, err
	}
	if err := s.DiscardAbove(v); err != nil {
		return nil, err
	}
	return OpenTree(s, v, keep)
}

// index returns the committed version and the newest version not above it
// of bucket, reading them from the database on first use.
func (s *BadgerStore) index(bucket uint32) (committed, latest uint64, err error) {
	s.mu.RLock()
	if s.indexed {
		defer s.mu.RUnlock()
		return s.committed, s.latest[bucket], nil
	}
	s.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.indexed {
		if err := s.buildIndex(); err != nil {
			return 0, 0, err
		}
	}
	return s.committed, s.latest[bucket], nil
}

// buildIndex reads the committed version and lists the keys of the
// buckets to find each bucket's newest version not above it.
func (s *BadgerStore) buildIndex() error {
	latest := make([]uint64, buckets)
	var c uint64
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		if c, err = s.readCommitted(txn); err != nil {
			return err
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: s.key(bucketKind, 0, 0, false, false)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()[len(s.prefix)+1:]
			if len(k) != 2+8 {
				return fmt.Errorf("vmap: malformed bucket key %x", it.Item().Key())
			}
			b, v := binary.BigEndian.Uint16(k), binary.BigEndian.Uint64(k[2:])
			if v <= c {
				latest[b] = max(latest[b], v)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("vmap: listing the buckets: %w", err)
	}
	s.committed, s.latest, s.indexed = c, latest, true
	return nil
}

// forgetIndex drops the index, to be read again on the next Load.
func (s *BadgerStore) forgetIndex() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.indexed, s.latest = false, nil
}

// Load returns bucket's entries under the newest version not above version
// nor above the committed version, nil if there is none, or an error if
// the database fails or the stored bucket is malformed.
func (s *BadgerStore) Load(bucket uint32, version uint64) ([]Entry, error) {
	if bucket >= buckets {
		return nil, fmt.Errorf("vmap: bucket %d out of range", bucket)
	}
	c, latest, err := s.index(bucket)
	if err != nil {
		return nil, err
	}
	v := min(version, c)
	if v == 0 || latest == 0 {
		return nil, nil
	}
	var entries []Entry
	decode := func(v uint64) func([]byte) error {
		return func(b []byte) error {
			var err error
			entries, err = decodeBucket(bucket, b)
			if err != nil {
				return fmt.Errorf("bucket %d version %d: %w", bucket, v, err)
			}
			return nil
		}
	}
	err = s.db.View(func(txn *badger.Txn) error {
		if latest <= v {
			item, err := txn.Get(s.bucketKey(bucket, latest))
			if err != nil {
				return err
			}
			return item.Value(decode(latest))
		}
		it := txn.NewIterator(badger.IteratorOptions{
			Reverse: true,
			Prefix:  s.key(bucketKind, bucket, 0, true, false),
		})
		defer it.Close()
		it.Seek(s.bucketKey(bucket, v))
		if !it.Valid() {
			return nil
		}
		item := it.Item()
		return item.Value(decode(binary.BigEndian.Uint64(item.Key()[len(item.Key())-8:])))
	})
	if err != nil {
		return nil, fmt.Errorf("vmap: loading bucket %d at version %d: %w", bucket, version, err)
	}
	return entries, nil
}

// encodeBucket returns the stored form of entries.
func encodeBucket(entries []Entry) []byte {
	b := make([]byte, 0, 4+len(entries)*entrySize)
	b = binary.BigEndian.AppendUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = append(b, e.Key[:]...)
		b = append(b, e.Value.Marshal()...)
	}
	return b
}

// decodeBucket parses the stored form of bucket's entries, refusing one
// whose length disagrees with its count or whose keys are not increasing
// or not in bucket. (Every 80 bytes parse as a value.)
func decodeBucket(bucket uint32, b []byte) ([]Entry, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformedBucket, len(b))
	}
	n := uint64(binary.BigEndian.Uint32(b))
	if uint64(len(b)-4) != n*entrySize {
		return nil, fmt.Errorf("%w: %d bytes for %d entries", ErrMalformedBucket, len(b), n)
	}
	entries := make([]Entry, n)
	b = b[4:]
	for i := range entries {
		e := &entries[i]
		copy(e.Key[:], b[:32])
		v, err := ParseValue(b[32:entrySize])
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d: %w", ErrMalformedBucket, i, err)
		}
		e.Value = v
		if bucketOf(e.Key) != bucket {
			return nil, fmt.Errorf("%w: entry %d: key %x is not in bucket %d", ErrMalformedBucket, i, e.Key, bucket)
		}
		if i > 0 && bytes.Compare(entries[i-1].Key[:], e.Key[:]) >= 0 {
			return nil, fmt.Errorf("%w: entry %d: keys out of order", ErrMalformedBucket, i)
		}
		b = b[entrySize:]
	}
	return entries, nil
}

// writer writes keys in as few Badger transactions as fit, committing one
// and starting the next when a write would make it too big.
type writer struct {
	db  *badger.DB
	txn *badger.Txn
}

func newWriter(db *badger.DB) *writer {
	return &writer{db: db, txn: db.NewTransaction(true)}
}

// write sets key to value, or deletes key if del.
func (w *writer) write(key, value []byte, del bool) error {
	op := func() error {
		if del {
			return w.txn.Delete(key)
		}
		return w.txn.Set(key, value)
	}
	err := op()
	if errors.Is(err, badger.ErrTxnTooBig) {
		if err := w.txn.Commit(); err != nil {
			return err
		}
		w.txn = w.db.NewTransaction(true)
		err = op()
	}
	return err
}

// commit commits the last transaction.
func (w *writer) commit() error {
	return w.txn.Commit()
}

// discard drops the last transaction, if not committed.
func (w *writer) discard() {
	w.txn.Discard()
}

// Save keeps the entries of each bucket in changed under version, and
// makes version the committed one if it is above it. It writes the list of
// the buckets saved first, then the buckets, and the committed version in
// the last transaction, so Load does not see the version until it is saved
// whole. A Save that fails after writing some transactions leaves them
// above the committed version, where Load ignores them and the next Save,
// Open or DiscardAbove deletes them (a Save of the same version again
// writes them anew).
func (s *BadgerStore) Save(version uint64, changed map[uint32][]Entry) error {
	if err := s.save(version, changed, true, 0); err != nil {
		return fmt.Errorf("vmap: saving version %d: %w", version, err)
	}
	return nil
}

// SaveForget is Save and then Forget(forget) in one: it writes Forget's
// deletes in the Save's transaction, ahead of the Save's keys, so that a
// Tree's commit costs one Badger commit (one sync of the write-ahead log,
// with SyncWrites) rather than two. Its Forget goes no further than the
// committed version before the Save, and none is made with a Save not
// above it; what it leaves, the next Forget or SaveForget deletes (each
// deals with every list of saved buckets up to its version). If it fails,
// the Save may not have been made, and the Forget may have been made or
// not. (Tree.CommitAt calls it in place of Save and Forget.)
func (s *BadgerStore) SaveForget(version uint64, changed map[uint32][]Entry, forget uint64) error {
	if err := s.save(version, changed, true, forget); err != nil {
		return fmt.Errorf("vmap: saving version %d and forgetting below %d: %w", version, forget, err)
	}
	return nil
}

// save is Save; it leaves the committed version as it was unless mark,
// and does Forget(forget) too if forget is not 0.
func (s *BadgerStore) save(version uint64, changed map[uint32][]Entry, mark bool, forget uint64) error {
	if version == 0 {
		return errors.New("version 0 is the empty map")
	}
	bs := make([]uint32, 0, len(changed))
	for b := range changed {
		if b >= buckets {
			return fmt.Errorf("bucket %d out of range", b)
		}
		bs = append(bs, b)
	}
	slices.Sort(bs)
	// The index gives the version each bucket saved above the committed
	// one supersedes.
	if _, _, err := s.index(0); err != nil {
		return err
	}
	pl, err := s.planSave(version, bs, forget)
	if err != nil {
		return err
	}
	// What failed Saves of other versions above the committed one left
	// would show through once the committed version reaches them: drop it.
	if err := s.drop(pl.left); err != nil {
		return err
	}
	return s.writeSave(version, changed, bs, mark, pl)
}

// savePlan is what a save read before it writes.
type savePlan struct {
	c      uint64                 // the committed version
	listed []listEntry            // the buckets an earlier, failed Save of the version listed (they stay listed)
	left   []uint64               // other versions above c that failed Saves left
	fixes  map[uint64][]listEntry // lists of later versions to rewrite (a Save not above c)
	forgot [][]byte               // Forget's deletes, when made with the Save's keys
}

// planSave reads, in one transaction, what a save of buckets bs under
// version (and a Forget(forget) with it) needs to know.
func (s *BadgerStore) planSave(version uint64, bs []uint32, forget uint64) (savePlan, error) {
	var pl savePlan
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		if pl.c, err = s.readCommitted(txn); err != nil {
			return err
		}
		if forget > 0 && version > pl.c {
			if pl.forgot, err = s.forgetKeys(txn, forget, pl.c); err != nil {
				return err
			}
		}
		if pl.listed, err = s.savedBuckets(txn, version); err != nil {
			return err
		}
		if pl.c < ^uint64(0) {
			if pl.left, err = s.savedVersionsIn(txn, pl.c+1, ^uint64(0)); err != nil {
				return err
			}
			pl.left = slices.DeleteFunc(pl.left, func(v uint64) bool { return v == version })
		}
		if version <= pl.c {
			pl.fixes, err = s.successorLists(txn, version, pl.c, bs)
		}
		return err
	})
	return pl, err
}

// savedList returns the list of saved buckets of a save of bs under
// version: with the version each supersedes when the index knows it.
func (s *BadgerStore) savedList(version uint64, bs []uint32, pl savePlan) []listEntry {
	prev := make(map[uint32]uint64, len(pl.listed)+len(bs))
	for _, e := range pl.listed {
		prev[e.bucket] = e.prev
	}
	s.mu.RLock()
	known := s.indexed && s.committed == pl.c && version > pl.c
	for _, b := range bs {
		if _, ok := prev[b]; ok && !known {
			continue // saved again under version: it supersedes the same one
		}
		prev[b] = unknownPrev
		if known {
			prev[b] = s.latest[b]
		}
	}
	s.mu.RUnlock()
	list := make([]listEntry, 0, len(prev))
	for b, p := range prev {
		list = append(list, listEntry{b, p})
	}
	slices.SortFunc(list, func(x, y listEntry) int { return cmp.Compare(x.bucket, y.bucket) })
	return list
}

// writeSave writes a planned save (and its Forget's deletes) and, if mark,
// the committed version, then updates the index.
func (s *BadgerStore) writeSave(version uint64, changed map[uint32][]Entry, bs []uint32, mark bool, pl savePlan) error {
	list := s.savedList(version, bs, pl)
	w := newWriter(s.db)
	defer w.discard()
	for _, k := range pl.forgot {
		if err := w.write(k, nil, true); err != nil {
			return err
		}
	}
	for _, v := range slices.Sorted(maps.Keys(pl.fixes)) {
		if err := w.write(s.savedKey(v), encodeBucketList(pl.fixes[v]), false); err != nil {
			return err
		}
	}
	if err := w.write(s.savedKey(version), encodeBucketList(list), false); err != nil {
		return err
	}
	for _, b := range bs {
		if err := w.write(s.bucketKey(b, version), encodeBucket(changed[b]), false); err != nil {
			return err
		}
	}
	if !mark {
		return w.commit()
	}
	if version > pl.c {
		if err := w.write(s.committedKey(), binary.BigEndian.AppendUint64(nil, version), false); err != nil {
			return err
		}
	}
	// Loads go on during the synced commit, under the index as it was:
	// a version is committed once save returns.
	err := w.commit()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.indexed, s.latest = false, nil // the committed version is unknown
		return err
	}
	if s.indexed {
		s.committed = max(s.committed, version)
		for _, b := range bs {
			s.latest[b] = max(s.latest[b], version)
		}
	}
	return nil
}

// successorLists returns, for a Save of buckets bs under version, not
// above the committed version c, the lists of the versions up to c that
// next saved one of them, with the previous version of each such bucket
// made unknown: the version they supersede is now version, not the one
// they list. (A Tree never saves a version not above the committed one.)
func (s *BadgerStore) successorLists(txn *badger.Txn, version, c uint64, bs []uint32) (map[uint64][]listEntry, error) {
	next := map[uint64][]uint32{}
	for _, b := range bs {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: s.key(bucketKind, b, 0, true, false)})
		it.Seek(s.bucketKey(b, version+1))
		if it.Valid() {
			k := it.Item().Key()
			if v := binary.BigEndian.Uint64(k[len(k)-8:]); v <= c {
				next[v] = append(next[v], b)
			}
		}
		it.Close()
	}
	fixes := map[uint64][]listEntry{}
	for v, nb := range next {
		list, err := s.savedBuckets(txn, v)
		if err != nil {
			return nil, err
		}
		if list == nil {
			continue // Forget has dealt with it
		}
		for i := range list {
			if slices.Contains(nb, list[i].bucket) {
				list[i].prev = unknownPrev
			}
		}
		fixes[v] = list
	}
	return fixes, nil
}

// listEntry is a bucket listed as saved under a version, with the version
// of it that it supersedes: 0 if none, unknownPrev if not known.
type listEntry struct {
	bucket uint32
	prev   uint64
}

// encodeBucketList returns the stored form of a list of saved buckets.
func encodeBucketList(list []listEntry) []byte {
	b := make([]byte, 0, 1+listEntrySize*len(list))
	b = append(b, listFormat)
	for _, e := range list {
		b = binary.BigEndian.AppendUint16(b, uint16(e.bucket))
		b = binary.BigEndian.AppendUint64(b, e.prev)
	}
	return b
}

// decodeBucketList parses the stored form of the list of the buckets saved
// under version, in either form.
func decodeBucketList(version uint64, b []byte) ([]listEntry, error) {
	var list []listEntry
	if len(b)%2 == 0 { // buckets alone, as stored before listFormat
		for i := 0; i < len(b); i += 2 {
			list = append(list, listEntry{uint32(binary.BigEndian.Uint16(b[i:])), unknownPrev})
		}
		return list, nil
	}
	if b[0] != listFormat || (len(b)-1)%listEntrySize != 0 {
		return nil, fmt.Errorf("vmap: malformed list of the buckets of version %d: %d bytes, format %d", version, len(b), b[0])
	}
	for i := 1; i < len(b); i += listEntrySize {
		e := listEntry{uint32(binary.BigEndian.Uint16(b[i:])), binary.BigEndian.Uint64(b[i+2:])}
		if e.prev >= version && e.prev != unknownPrev {
			return nil, fmt.Errorf("vmap: malformed list of the buckets of version %d: bucket %d supersedes version %d", version, e.bucket, e.prev)
		}
		list = append(list, e)
	}
	return list, nil
}

// savedBuckets returns the buckets listed as saved under version, nil if
// none.
func (s *BadgerStore) savedBuckets(txn *badger.Txn, version uint64) ([]listEntry, error) {
	item, err := txn.Get(s.savedKey(version))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var list []listEntry
	err = item.Value(func(b []byte) error {
		list, err = decodeBucketList(version, b)
		return err
	})
	return list, err
}

// savedVersions returns the versions whose lists of saved buckets are
// still kept, from the smallest, that are at least from and at most to.
func (s *BadgerStore) savedVersions(from, to uint64) ([]uint64, error) {
	var vs []uint64
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		vs, err = s.savedVersionsIn(txn, from, to)
		return err
	})
	return vs, err
}

// savedVersionsIn is savedVersions in txn.
func (s *BadgerStore) savedVersionsIn(txn *badger.Txn, from, to uint64) ([]uint64, error) {
	var vs []uint64
	it := txn.NewIterator(badger.IteratorOptions{Prefix: s.key(savedKind, 0, 0, false, false)})
	defer it.Close()
	for it.Seek(s.savedKey(from)); it.Valid(); it.Next() {
		k := it.Item().Key()
		v := binary.BigEndian.Uint64(k[len(k)-8:])
		if v > to {
			break
		}
		vs = append(vs, v)
	}
	return vs, nil
}

// Forget deletes, for each bucket, the saved versions older than the newest
// one not above version. Its work is in proportion to the buckets saved
// under the versions not above version since the last Forget: for each
// such version it deletes the versions the buckets it saved superseded,
// and then the list of those buckets, all in one Badger transaction if
// they fit. A bucket whose superseded version its list does not know (a
// store written before the lists kept them, or a Save not above the
// committed version) has its older versions found with an iterator.
func (s *BadgerStore) Forget(version uint64) error {
	if err := s.forget(version); err != nil {
		return fmt.Errorf("vmap: forgetting below version %d: %w", version, err)
	}
	return nil
}

func (s *BadgerStore) forget(version uint64) error {
	var keys [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		c, err := s.readCommitted(txn)
		if err != nil {
			return err
		}
		keys, err = s.forgetKeys(txn, version, c)
		return err
	})
	if err != nil {
		return err
	}
	return s.delete(keys)
}

// forgetKeys returns the keys Forget(version) deletes, in order, with the
// committed version c: for each version not above version nor c whose
// list of saved buckets is kept, from the oldest, the versions its
// buckets superseded and then the list.
func (s *BadgerStore) forgetKeys(txn *badger.Txn, version, c uint64) ([][]byte, error) {
	var keys [][]byte
	vs, err := s.savedVersionsIn(txn, 0, min(version, c))
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		list, err := s.savedBuckets(txn, v)
		if err != nil {
			return nil, err
		}
		for _, e := range list {
			switch e.prev {
			case 0:
			case unknownPrev:
				it := txn.NewIterator(badger.IteratorOptions{
					Reverse: true,
					Prefix:  s.key(bucketKind, e.bucket, 0, true, false),
				})
				for it.Seek(s.bucketKey(e.bucket, v-1)); it.Valid(); it.Next() {
					keys = append(keys, it.Item().KeyCopy(nil))
				}
				it.Close()
			default:
				keys = append(keys, s.bucketKey(e.bucket, e.prev))
			}
		}
		keys = append(keys, s.savedKey(v))
	}
	return keys, nil
}

// delete deletes keys, in as many transactions as it takes, in order.
func (s *BadgerStore) delete(keys [][]byte) error {
	w := newWriter(s.db)
	defer w.discard()
	for _, k := range keys {
		if err := w.write(k, nil, true); err != nil {
			return err
		}
	}
	return w.commit()
}

// Clear deletes every key of the store, leaving the empty map: the
// committed version is lowered to 0 first, so a Clear cut short leaves an
// empty map (and leftovers the next Clear deletes). It is the way to empty
// or rewind a map below the last Forget, which DiscardAbove is not. It must
// not run while a Tree uses the store.
func (s *BadgerStore) Clear() error {
	if err := s.DiscardAbove(0); err != nil {
		return err
	}
	defer s.forgetIndex()
	for {
		var keys [][]byte
		err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: s.prefix}) // keys only
			defer it.Close()
			for it.Rewind(); it.Valid() && len(keys) < clearChunk; it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("vmap: clearing: %w", err)
		}
		if len(keys) == 0 {
			return nil
		}
		wb := s.db.NewWriteBatch()
		for _, k := range keys {
			if err := wb.Delete(k); err != nil {
				wb.Cancel()
				return fmt.Errorf("vmap: clearing: %w", err)
			}
		}
		if err := wb.Flush(); err != nil {
			return fmt.Errorf("vmap: clearing: %w", err)
		}
	}
}

// clearChunk is how many keys Clear lists and deletes at a time.
const clearChunk = 10000

// LowerCommittedTxn lowers the committed version in txn, a transaction of
// the caller's that cuts back the records the map covers to size, so that
// the map is cut back with them: if the committed version is above size,
// it becomes the newest of kept (versions the open Tree keeps, Versions)
// not above size, or 0 if there is none. It returns the committed version
// txn leaves. What the Saves above it wrote stays until DiscardAbove (or,
// at 0, Clear) drops it, which Open does after a crash; no Tree may use
// the store from then on, and its index is forgotten.
func (s *BadgerStore) LowerCommittedTxn(txn *badger.Txn, size uint64, kept []uint64) (uint64, error) {
	c, err := s.readCommitted(txn)
	if err != nil {
		return 0, fmt.Errorf("vmap: reading the committed version: %w", err)
	}
	if c <= size {
		return c, nil
	}
	var v uint64
	for _, k := range kept {
		if k <= size && k > v {
			v = k
		}
	}
	s.forgetIndex()
	if err := txn.Set(s.committedKey(), binary.BigEndian.AppendUint64(nil, v)); err != nil {
		return 0, fmt.Errorf("vmap: lowering the committed version to %d: %w", v, err)
	}
	return v, nil
}

// DiscardAbove deletes what Saves above version wrote, complete or not,
// and lowers the committed version to version if it is above; OpenTree
// requires that the store hold nothing above the version it opens. Open
// calls it with the committed version, to drop a Save cut short. Versions
// below version that Forget dropped stay dropped. It must not run while a
// Tree uses the store.
//
// Lowering the committed version to one at or below the last Forget is not
// a way to empty or rewind a map: Forget keeps each bucket's newest save at
// or below its cut-off without its version's list, and those saves would
// come back once the map is committed past them. To empty a map, Clear it.
func (s *BadgerStore) DiscardAbove(version uint64) error {
	if err := s.discardAbove(version); err != nil {
		return fmt.Errorf("vmap: discarding above version %d: %w", version, err)
	}
	return nil
}

func (s *BadgerStore) discardAbove(version uint64) error {
	defer s.forgetIndex()
	err := s.db.Update(func(txn *badger.Txn) error {
		c, err := s.readCommitted(txn)
		if err != nil || c <= version {
			return err
		}
		return txn.Set(s.committedKey(), binary.BigEndian.AppendUint64(nil, version))
	})
	if err != nil {
		return err
	}
	if version == ^uint64(0) {
		return nil
	}
	vs, err := s.savedVersions(version+1, ^uint64(0))
	if err != nil {
		return err
	}
	return s.drop(vs)
}

// drop deletes what the Saves of versions vs wrote, the last first.
func (s *BadgerStore) drop(vs []uint64) error {
	for _, v := range slices.Backward(vs) {
		var keys [][]byte
		err := s.db.View(func(txn *badger.Txn) error {
			list, err := s.savedBuckets(txn, v)
			for _, e := range list {
				keys = append(keys, s.bucketKey(e.bucket, v))
			}
			return err
		})
		if err != nil {
			return err
		}
		if err := s.delete(append(keys, s.savedKey(v))); err != nil {
			return err
		}
	}
	return nil
}

package vmap

import (
	"cmp"
	"slices"
	"sort"
	"sync"
)

// Entry is one key of the map with its value.
type Entry struct {
	Key   Key
	Value Value
}

// Store keeps the buckets of a Tree, each under the versions at which it
// changed. A bucket is the sorted entries whose keys share their first
// BucketBits bits; bucket i holds the keys whose first BucketBits bits, read
// as a big-endian number, are i.
//
// A Tree saves the buckets that changed in version v when it commits
// version v, and loads a bucket as of version v to read or change it. A
// Store may be kept in memory (MemStore) or on disk.
type Store interface {
	// Load returns the entries of bucket as saved under the newest version
	// not above version, and nil if there is none. The caller does not
	// change the slice returned.
	Load(bucket uint32, version uint64) ([]Entry, error)
	// Save keeps the entries of each bucket in changed, by bucket, sorted
	// by key, under version, replacing what an earlier Save kept under the
	// same bucket and version. It saves all of them or, failing, none: a
	// Store on disk writes them in one transaction. The caller does not
	// change changed or its slices afterwards.
	Save(version uint64, changed map[uint32][]Entry) error
	// Forget allows the store to drop what only Loads of versions below
	// version need: for each bucket, every saved version older than the
	// newest one not above version. Loads of versions below version may
	// then return anything.
	Forget(version uint64) error
}

// MemStore is a Store held in memory. The zero MemStore is empty and
// ready to use; it is safe for concurrent use.
type MemStore struct {
	mu      sync.RWMutex
	buckets map[uint32][]savedBucket
}

// savedBucket is a bucket's entries under one version.
type savedBucket struct {
	version uint64
	entries []Entry
}

// Load returns bucket's entries under the newest version not above
// version. It never fails.
func (s *MemStore) Load(bucket uint32, version uint64) ([]Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	saved := s.buckets[bucket]
	i := sort.Search(len(saved), func(i int) bool { return saved[i].version > version })
	if i == 0 {
		return nil, nil
	}
	return saved[i-1].entries, nil
}

// Save keeps a copy of the entries of each bucket in changed under
// version. It never fails.
func (s *MemStore) Save(version uint64, changed map[uint32][]Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buckets == nil {
		s.buckets = map[uint32][]savedBucket{}
	}
	for b, e := range changed {
		s.save(b, version, e)
	}
	return nil
}

// save keeps a copy of entries as bucket's entries under version.
func (s *MemStore) save(bucket uint32, version uint64, entries []Entry) {
	sb := savedBucket{version, slices.Clip(slices.Clone(entries))}
	saved := s.buckets[bucket]
	i, found := slices.BinarySearchFunc(saved, version, func(b savedBucket, v uint64) int {
		return cmp.Compare(b.version, v)
	})
	if found {
		saved[i] = sb
	} else {
		saved = slices.Insert(saved, i, sb)
	}
	s.buckets[bucket] = saved
}

// Forget drops, for each bucket, the versions older than the newest one not
// above version. It never fails.
func (s *MemStore) Forget(version uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for b, saved := range s.buckets {
		i := sort.Search(len(saved), func(i int) bool { return saved[i].version > version })
		if i > 1 {
			s.buckets[b] = slices.Clone(saved[i-1:])
		}
	}
	return nil
}

package vmap

import (
	"fmt"
	"sync"
)

// BufferedStore is a Store that keeps the versions a Tree commits in
// memory and writes them to a BadgerStore later, when Flush is called, so
// that a commit costs no disk write: a log's map commits at an epoch close
// and its owner flushes after the close. Loads see the versions not yet
// flushed as if they were saved.
//
// Until Flush, the BadgerStore's committed version stays where it was, so a
// crash loses the versions not flushed, never a part of one: the map
// reopens (Open) at the last version flushed, which the log it maps still
// holds, and is brought forward by following the log again. The versions
// held in memory take what their changed buckets take (about 100 bytes a
// key); once maxBuffered are held, a commit flushes them itself.
//
// It is safe for concurrent use: Flush may run while the Tree loads and
// commits, and one Flush or Open at a time runs.
type BufferedStore struct {
	under *BadgerStore

	flushing sync.Mutex // held by Flush and Open
	mu       sync.RWMutex
	queue    []bufferedOp // not yet written to under, oldest first
}

// bufferedOp is a Save (version not 0) with its Forget (forget not 0), or
// a Forget alone (version 0).
type bufferedOp struct {
	version uint64
	changed map[uint32][]Entry
	forget  uint64
}

// maxBuffered is how many operations a BufferedStore holds before a commit
// flushes them itself, when Flush is not called often enough.
const maxBuffered = 4 * DefaultKeep

// NewBufferedStore returns a BufferedStore that writes to under, which
// nothing else may use while it does.
func NewBufferedStore(under *BadgerStore) *BufferedStore {
	return &BufferedStore{under: under}
}

// Open drops the versions not flushed and opens the tree at the committed
// version of the BadgerStore (BadgerStore.Open), keeping proofs for the
// last keep versions it commits. The tree saves to s. If it fails, the
// versions not flushed are kept, for the tree that used s before.
func (s *BufferedStore) Open(keep int) (*Tree, error) {
	s.flushing.Lock()
	defer s.flushing.Unlock()
	v, err := s.under.Committed()
	if err != nil {
		return nil, err
	}
	if err := s.under.DiscardAbove(v); err != nil {
		return nil, err
	}
	t, err := OpenTree(s.under, v, keep) // the versions not flushed are above v
	if err != nil {
		return nil, err // the tree using s goes on as it was
	}
	s.mu.Lock()
	s.queue = nil
	s.mu.Unlock()
	t.store = s
	return t, nil
}

// Load returns bucket's entries under the newest version not above
// version, from the versions not flushed or else from the BadgerStore.
func (s *BufferedStore) Load(bucket uint32, version uint64) ([]Entry, error) {
	s.mu.RLock()
	for i := len(s.queue) - 1; i >= 0; i-- {
		op := s.queue[i]
		if e, ok := op.changed[bucket]; ok && op.version <= version {
			s.mu.RUnlock()
			return e, nil
		}
	}
	s.mu.RUnlock()
	// A version Flush writes meanwhile is in the BadgerStore before it
	// leaves the queue.
	return s.under.Load(bucket, version)
}

// Save keeps changed under version in memory, to be written by Flush. It
// fails only if it has to flush (see maxBuffered) and that fails.
func (s *BufferedStore) Save(version uint64, changed map[uint32][]Entry) error {
	return s.SaveForget(version, changed, 0)
}

// SaveForget is Save and then Forget(forget), kept in memory to be written
// by Flush in one Badger write (BadgerStore.SaveForget).
func (s *BufferedStore) SaveForget(version uint64, changed map[uint32][]Entry, forget uint64) error {
	if version == 0 {
		return fmt.Errorf("vmap: saving version %d: version 0 is the empty map", version)
	}
	return s.push(bufferedOp{version: version, changed: changed, forget: forget})
}

// Forget keeps Forget(version) in memory, to be done by Flush after the
// Saves before it.
func (s *BufferedStore) Forget(version uint64) error {
	return s.push(bufferedOp{forget: version})
}

// push queues op, flushing first if the queue is full.
func (s *BufferedStore) push(op bufferedOp) error {
	s.mu.RLock()
	full := len(s.queue) >= maxBuffered
	s.mu.RUnlock()
	if full {
		if err := s.Flush(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, op)
	return nil
}

// Committed returns the last version flushed whole, 0 if none: the
// version Open opens the map at (BadgerStore.Committed).
func (s *BufferedStore) Committed() (uint64, error) {
	return s.under.Committed()
}

// Buffered returns how many operations wait for Flush.
func (s *BufferedStore) Buffered() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.queue)
}

// Flush writes the versions held in memory to the BadgerStore, oldest
// first, each in one write (synced if the database syncs its writes),
// and then drops them from memory. If a write fails, Flush stops and
// returns the error, keeping that version and the later ones; what the
// failed write left in the BadgerStore, the next Flush or Open deals with.
func (s *BufferedStore) Flush() error {
	s.flushing.Lock()
	defer s.flushing.Unlock()
	for {
		s.mu.RLock()
		if len(s.queue) == 0 {
			s.mu.RUnlock()
			return nil
		}
		op := s.queue[0]
		s.mu.RUnlock()
		var err error
		switch {
		case op.version == 0:
			err = s.under.Forget(op.forget)
		case op.forget == 0:
			err = s.under.Save(op.version, op.changed)
		default:
			err = s.under.SaveForget(op.version, op.changed, op.forget)
		}
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.queue[0] = bufferedOp{}
		s.queue = s.queue[1:]
		s.mu.Unlock()
	}
}

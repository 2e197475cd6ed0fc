package merkle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/intermesh/intermesh/log"
)

// hashSize is the size of every node hash (SHA-256).
const hashSize = 32

// hasher is the RFC 6962 SHA-256 tree hasher; it holds no mutable state.
var hasher = rfc6962.DefaultHasher

// Tree is an RFC 6962 Merkle tree over a log, stored in a Badger database
// under a key prefix (see "Keys" in the package comment).
//
// A Tree keeps nothing in memory: every method reads the database, and
// appends happen inside the caller's transaction, so the tree commits or
// aborts together with the records it covers. A Tree is safe for concurrent
// use. Appends must be serialized by the caller (the log's sequencer does);
// two concurrent appending transactions both read the tree state, so Badger's
// conflict detection aborts one of them with badger.ErrConflict.
type Tree struct {
	db      *badger.DB
	keys    keys
	factory *compact.RangeFactory
}

// NewTree returns the tree stored in db under prefix. The local log's tree
// and each replica log's tree use different prefixes; any two different
// prefixes give disjoint key spaces.
//
// IndexBatch and AppendLeafHashes use only the caller's transaction, so a
// Tree made with a nil db can serve as the log's batch indexer before the
// log has opened the database; as a Tree keeps no state, NewTree(l.DB(),
// prefix) afterwards reads the very same tree:
//
//	indexer := merkle.NewTree(nil, prefix)
//	l, err := log.Open(ctx, log.Options{BatchIndexers: []log.BatchIndexer{indexer}, ...})
//	...
//	tree := merkle.NewTree(l.DB(), prefix)
func NewTree(db *badger.DB, prefix []byte) *Tree {
	return &Tree{
		db:      db,
		keys:    newKeys(prefix),
		factory: &compact.RangeFactory{Hash: hasher.HashChildren},
	}
}

// IndexBatch appends the leaf hashes of recs to the tree inside txn. It is
// the log's batch indexer: the log calls it in the transaction that commits
// recs, which must be in sequence order, starting at the current tree size.
// The leaf hash of a record is SHA-256(0x00 || rec.MarshalLeaf()).
func (t *Tree) IndexBatch(txn *badger.Txn, recs []log.Record) error {
	if len(recs) == 0 {
		return nil
	}
	hashes := make([][]byte, len(recs))
	for i := range recs {
		if want := recs[0].Seq + uint64(i); recs[i].Seq != want {
			return fmt.Errorf("merkle: index batch: record %d has seq %d, want %d: %w", i, recs[i].Seq, want, ErrNotNextLeaf)
		}
		if err := recs[i].Validate(); err != nil {
			return fmt.Errorf("merkle: index batch: record seq %d: %w", recs[i].Seq, err)
		}
		hashes[i] = hasher.HashLeaf(recs[i].MarshalLeaf())
	}
	return t.AppendLeafHashes(txn, recs[0].Seq, hashes)
}

// AppendLeafHashes appends leaf hashes to the tree inside txn; first must be
// the current tree size. It stores the leaf hashes, every full subtree node
// they complete and the new tree state (size, root and compact range). The
// hashes are copied, so the caller may reuse the slices.
func (t *Tree) AppendLeafHashes(txn *badger.Txn, first uint64, hashes [][]byte) error {
	st, err := t.readState(txn)
	if err != nil {
		return err
	}
	if first != st.size {
		return fmt.Errorf("merkle: append at leaf %d to a tree of size %d: %w", first, st.size, ErrNotNextLeaf)
	}
	if len(hashes) == 0 {
		return nil
	}
	if uint64(len(hashes)) > ^uint64(0)-first {
		return fmt.Errorf("merkle: append of %d leaves at %d overflows the tree size", len(hashes), first)
	}
	rng, err := t.factory.NewRange(0, st.size, st.hashes)
	if err != nil {
		return fmt.Errorf("merkle: tree state at size %d: %w: %w", st.size, ErrCorrupt, err)
	}
	var setErr error
	visit := func(id compact.NodeID, hash []byte) {
		if setErr == nil {
			setErr = txn.Set(t.keys.node(id.Level, id.Index), hash)
		}
	}
	for i, h := range hashes {
		if len(h) != hashSize {
			return fmt.Errorf("merkle: leaf hash %d is %d bytes, want %d", first+uint64(i), len(h), hashSize)
		}
		if err := rng.Append(append([]byte(nil), h...), visit); err != nil {
			return fmt.Errorf("merkle: append leaf %d: %w", first+uint64(i), err)
		}
		if setErr != nil {
			return fmt.Errorf("merkle: store nodes of leaf %d: %w", first+uint64(i), setErr)
		}
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return fmt.Errorf("merkle: root at size %d: %w", rng.End(), err)
	}
	next := state{size: rng.End(), root: root, hashes: rng.Hashes()}
	if err := txn.Set(t.keys.state(), next.marshal()); err != nil {
		return fmt.Errorf("merkle: store tree state at size %d: %w", next.size, err)
	}
	return nil
}

// Size returns the number of leaves in the tree.
func (t *Tree) Size() (uint64, error) {
	var size uint64
	err := t.db.View(func(txn *badger.Txn) error {
		var err error
		size, err = t.SizeTxn(txn)
		return err
	})
	return size, err
}

// SizeTxn returns the number of leaves in the tree as seen by txn.
func (t *Tree) SizeTxn(txn *badger.Txn) (uint64, error) {
	st, err := t.readState(txn)
	return st.size, err
}

// state is the stored tree state: the size, the root hash and the compact
// range [0, size). Its encoding is size (8 bytes, big-endian), root (32
// bytes), then one 32-byte hash per set bit of size, left to right. The empty
// tree has no stored state.
type state struct {
	size   uint64
	root   []byte
	hashes [][]byte
}

func (s state) marshal() []byte {
	b := make([]byte, 0, 8+hashSize*(1+len(s.hashes)))
	b = binary.BigEndian.AppendUint64(b, s.size)
	b = append(b, s.root...)
	for _, h := range s.hashes {
		b = append(b, h...)
	}
	return b
}

func unmarshalState(b []byte) (state, error) {
	if len(b) < 8+hashSize {
		return state{}, fmt.Errorf("merkle: tree state is %d bytes: %w", len(b), ErrCorrupt)
	}
	s := state{size: binary.BigEndian.Uint64(b), root: b[8 : 8+hashSize]}
	rest := b[8+hashSize:]
	n := bits.OnesCount64(s.size)
	if len(rest) != n*hashSize {
		return state{}, fmt.Errorf("merkle: tree state of size %d has %d range bytes, want %d: %w",
			s.size, len(rest), n*hashSize, ErrCorrupt)
	}
	s.hashes = make([][]byte, n)
	for i := range s.hashes {
		s.hashes[i] = rest[i*hashSize : (i+1)*hashSize : (i+1)*hashSize]
	}
	return s, nil
}

// readState reads the tree state in txn; the empty tree has size 0 and the
// root of the empty tree.
func (t *Tree) readState(txn *badger.Txn) (state, error) {
	item, err := txn.Get(t.keys.state())
	if errors.Is(err, badger.ErrKeyNotFound) {
		return state{root: hasher.EmptyRoot()}, nil
	}
	if err != nil {
		return state{}, fmt.Errorf("merkle: read tree state: %w", err)
	}
	b, err := item.ValueCopy(nil)
	if err != nil {
		return state{}, fmt.Errorf("merkle: read tree state: %w", err)
	}
	return unmarshalState(b)
}

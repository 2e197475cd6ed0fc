package merkle

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// TileHeight is the height of a C2SP tlog-tiles tile: a tile at level L
// holds hashes of tree level 8L, and a full tile holds TileWidth of them.
const (
	TileHeight = 8
	TileWidth  = 1 << TileHeight
)

// ErrNoTile reports a tile that no tree of the given size has (beyond the
// size, or wider than 256 hashes).
var ErrNoTile = errors.New("merkle: no such tile")

// TileHashes returns the tlog-tiles hash tile (level, index) of the given
// width, as the tree of the given size (at most Size()) has it: the
// concatenated 32-byte hashes of the full subtree nodes (TileHeight·level,
// index·256 + i) for i in [0, width). Because every full subtree node is
// stored, each hash is one database read (one iterator step: the nodes of
// a tile are adjacent keys); nothing is recomputed.
//
// A tile of width w exists in a tree of size s if its last hash covers
// leaves below s: (index·256 + w) · 256^level <= s. Any narrower tile than
// the rightmost one is a prefix of it, so all are served alike.
func (t *Tree) TileHashes(level uint, index uint64, width int, size uint64) ([]byte, error) {
	if err := CheckTile(level, index, width, size); err != nil {
		return nil, err
	}
	var out []byte
	err := t.db.View(func(txn *badger.Txn) error {
		if _, err := t.checkSize(txn, size); err != nil {
			return err
		}
		out = make([]byte, 0, width*hashSize)
		first := index * TileWidth
		// The node keys of one level sort by index: one iterator walks them.
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
		defer it.Close()
		it.Seek(t.keys.node(level*TileHeight, first))
		for i := range uint64(width) {
			want := t.keys.node(level*TileHeight, first+i)
			if !it.Valid() || !bytes.Equal(it.Item().Key(), want) {
				return fmt.Errorf("merkle: node (level %d, index %d) missing: %w", level*TileHeight, first+i, ErrCorrupt)
			}
			item := it.Item()
			if item.ValueSize() != hashSize {
				return fmt.Errorf("merkle: node (level %d, index %d) is %d bytes: %w", level*TileHeight, first+i, item.ValueSize(), ErrCorrupt)
			}
			if err := item.Value(func(v []byte) error { out = append(out, v...); return nil }); err != nil {
				return fmt.Errorf("merkle: read node (level %d, index %d): %w", level*TileHeight, first+i, err)
			}
			it.Next()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CheckTile returns nil if the tlog-tiles tile (level, index) of width
// exists in a tree of size (see TileHashes), and an ErrNoTile otherwise. The
// entry bundle of index and width exists exactly when the level-0 tile does.
func CheckTile(level uint, index uint64, width int, size uint64) error {
	if width < 1 || width > TileWidth {
		return fmt.Errorf("merkle: tile width %d: %w", width, ErrNoTile)
	}
	if level*TileHeight >= 64 {
		return fmt.Errorf("merkle: tile level %d beyond a tree of size %d: %w", level, size, ErrNoTile)
	}
	nodes := size >> (level * TileHeight) // full subtree nodes at that level
	if index > nodes/TileWidth || index*TileWidth+uint64(width) > nodes {
		return fmt.Errorf("merkle: tile %d/%d of width %d beyond a tree of size %d: %w", level, index, width, size, ErrNoTile)
	}
	return nil
}

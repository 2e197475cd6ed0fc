package merkle

import (
	"bytes"
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func TestExtendedRootsAreTheRootsOfTheStoredPrefixFollowedByTheNewLeaves(t *testing.T) {
	db := openDB(t)
	tree := NewTree(db, []byte("t"))
	stored := testLeafHashes(13)
	if err := db.Update(func(txn *badger.Txn) error { return tree.AppendLeafHashes(txn, 0, stored) }); err != nil {
		t.Fatal(err)
	}
	other := testLeafHashes(40)[20:] // 20 leaves unlike the stored ones
	for first := uint64(0); first <= 13; first++ {
		all := append(append([][]byte(nil), stored[:first]...), other...)
		var sizes [][]uint64
		for s := first + 1; s <= uint64(len(all)); s++ {
			sizes = append(sizes, []uint64{s})
		}
		sizes = append(sizes, []uint64{uint64(len(all)), first + 1}) // out of order
		for _, ss := range sizes {
			roots, err := tree.ExtendedRoots(first, other, ss)
			if err != nil {
				t.Fatalf("first %d sizes %v: %v", first, ss, err)
			}
			for i, s := range ss {
				if want := refRoot(all[:s]); !bytes.Equal(roots[i], want) {
					t.Fatalf("first %d: root at %d is %x, want %x", first, s, roots[i], want)
				}
			}
		}
	}
	for _, c := range []struct{ first, size uint64 }{{14, 15}, {5, 5}, {5, 26}} {
		if _, err := tree.ExtendedRoots(c.first, other, []uint64{c.size}); !errors.Is(err, ErrBeyondTree) {
			t.Errorf("first %d size %d: %v, want ErrBeyondTree", c.first, c.size, err)
		}
	}
}

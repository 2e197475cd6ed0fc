package vmap

import (
	"bytes"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// TestClearEmptiesAStorePastItsForgetting: a store that committed and
// forgot several versions, then Cleared, holds no key, reopens as the
// empty map, and a new map committed in it has the root of a fresh one
// (no bucket kept by Forget shows through).
func TestClearEmptiesAStorePastItsForgetting(t *testing.T) {
	db := openBadger(t, 0)
	prefix := StorePrefix("replica/test/node1")
	store := NewBadgerStore(db, prefix)
	tr, err := store.Open(2)
	if err != nil {
		t.Fatal(err)
	}
	for v := range uint64(6) {
		for i := range 50 {
			if err := tr.Set(benchKey(int(v)*50+i), Value{}.Append(v, Hash{byte(i)})); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := tr.CommitAt((v + 1) * 50); err != nil {
			t.Fatal(err)
		}
	}
	if err := NewBadgerStore(db, prefix).Clear(); err != nil {
		t.Fatal(err)
	}
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			t.Errorf("key %x left after Clear", it.Item().Key())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	again, err := NewBadgerStore(db, prefix).Open(2)
	if err != nil || again.Version() != 0 || again.Len() != 0 {
		t.Fatalf("reopened after Clear: version %d, %d keys, %v; want the empty map", again.Version(), again.Len(), err)
	}
	fresh := NewTree()
	for _, tree := range []*Tree{again, fresh} {
		if err := tree.Set(benchKey(7), Value{}.Append(1, Hash{1})); err != nil {
			t.Fatal(err)
		}
		if _, err := tree.CommitAt(300); err != nil {
			t.Fatal(err)
		}
	}
	if a, f := again.Root(), fresh.Root(); !bytes.Equal(a[:], f[:]) {
		t.Fatalf("root after Clear %x, a fresh map's %x", a, f)
	}
}

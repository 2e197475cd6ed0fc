package merkle

import (
	"bytes"
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

func TestTruncateGivesTheTreeOfTheSmallerSizeAndAppendsContinueFromIt(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tr := NewTree(db, []byte("trunc"))
	leaf := func(tag string, i int) []byte { return rfc6962.DefaultHasher.HashLeaf([]byte{tag[0], byte(i)}) }
	var a, b [][]byte
	for i := range 13 {
		a = append(a, leaf("a", i))
		b = append(b, leaf("b", i))
	}
	write := func(f func(txn *badger.Txn) error) error { return db.Update(f) }
	if err := write(func(txn *badger.Txn) error { return tr.AppendLeafHashes(txn, 0, a) }); err != nil {
		t.Fatal(err)
	}
	if err := write(func(txn *badger.Txn) error { return tr.TruncateTxn(txn, 14) }); !errors.Is(err, ErrBeyondTree) {
		t.Fatalf("truncate past the size: %v, want ErrBeyondTree", err)
	}
	for _, size := range []uint64{13, 7, 0} {
		if err := write(func(txn *badger.Txn) error { return tr.TruncateTxn(txn, size) }); err != nil {
			t.Fatal(err)
		}
		if got, _ := tr.Size(); got != size {
			t.Fatalf("size %d after truncating to %d", got, size)
		}
		if size == 0 {
			break
		}
		want, _ := LeafRoot(a, size)
		if got, err := tr.Root(size); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("root at %d after truncating: %x, %v; want %x", size, got, err, want)
		}
	}
	// Grow again with other leaves from 5: the tree is a[:5] + b[5:].
	if err := write(func(txn *badger.Txn) error { return tr.AppendLeafHashes(txn, 0, a[:5]) }); err != nil {
		t.Fatal(err)
	}
	if err := write(func(txn *badger.Txn) error { return tr.AppendLeafHashes(txn, 5, b[5:]) }); err != nil {
		t.Fatal(err)
	}
	mixed := append(append([][]byte(nil), a[:5]...), b[5:]...)
	for _, size := range []uint64{5, 6, 8, 13} {
		want, _ := LeafRoot(mixed, size)
		if got, err := tr.Root(size); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("root at %d: %x, %v; want %x", size, got, err, want)
		}
	}
	// Truncate into the rewritten part, then check a proof reads no stale node.
	if err := write(func(txn *badger.Txn) error { return tr.TruncateTxn(txn, 9) }); err != nil {
		t.Fatal(err)
	}
	if err := write(func(txn *badger.Txn) error { return tr.AppendLeafHashes(txn, 9, a[9:]) }); err != nil {
		t.Fatal(err)
	}
	final := append(append([][]byte(nil), mixed[:9]...), a[9:]...)
	want, _ := LeafRoot(final, 13)
	if got, err := tr.Root(13); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("root at 13 after a second cut: %x, %v; want %x", got, err, want)
	}
	p, err := tr.InclusionProof(10, 13)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, 10, 13, final[10], p, want); err != nil {
		t.Fatal(err)
	}
}

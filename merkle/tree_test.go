package merkle

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

func TestTreeMatchesReferenceOverRandomBatches(t *testing.T) {
	const leaves = 260
	for _, seed := range []uint64{1, 2} {
		rng := rand.New(rand.NewPCG(seed, 7))
		db := openDB(t)
		tree := NewTree(db, []byte("local"))
		var hashes [][]byte
		for uint64(len(hashes)) < leaves {
			n := 1 + rng.IntN(40)
			recs := testRecords(uint64(len(hashes)), n)
			indexBatch(t, db, tree, recs)
			for _, r := range recs {
				hashes = append(hashes, refLeafHash(r.MarshalLeaf()))
			}
			size, err := tree.Size()
			if err != nil || size != uint64(len(hashes)) {
				t.Fatalf("Size() = %d, %v; want %d", size, err, len(hashes))
			}
		}
		checkTree(t, tree, hashes)
	}
}

// checkTree checks every root, inclusion proof and consistency proof of tree
// against the reference computation over hashes.
func checkTree(t *testing.T, tree *Tree, hashes [][]byte) {
	t.Helper()
	h := rfc6962.DefaultHasher
	roots := make([][]byte, len(hashes)+1)
	for size := range roots {
		roots[size] = refRoot(hashes[:size])
		got, err := tree.Root(uint64(size))
		if err != nil {
			t.Fatalf("Root(%d): %v", size, err)
		}
		if !bytes.Equal(got, roots[size]) {
			t.Fatalf("Root(%d) = %x, reference %x", size, got, roots[size])
		}
	}
	for size := uint64(0); size <= uint64(len(hashes)); size++ {
		for index := uint64(0); index < size; index++ {
			p, err := tree.InclusionProof(index, size)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", index, size, err)
			}
			if err := proof.VerifyInclusion(h, index, size, hashes[index], p, roots[size]); err != nil {
				t.Fatalf("InclusionProof(%d, %d) does not verify: %v", index, size, err)
			}
		}
		for size1 := uint64(0); size1 <= size; size1++ {
			p, err := tree.ConsistencyProof(size1, size)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", size1, size, err)
			}
			if err := proof.VerifyConsistency(h, size1, size, p, roots[size1], roots[size]); err != nil {
				t.Fatalf("ConsistencyProof(%d, %d) does not verify: %v", size1, size, err)
			}
		}
	}
}

func TestEmptyTreeHasSizeZeroAndTheEmptyRoot(t *testing.T) {
	tree := NewTree(openDB(t), nil)
	size, err := tree.Size()
	if err != nil || size != 0 {
		t.Fatalf("Size() = %d, %v; want 0", size, err)
	}
	root, err := tree.Root(0)
	if err != nil || !bytes.Equal(root, refRoot(nil)) {
		t.Fatalf("Root(0) = %x, %v; want %x", root, err, refRoot(nil))
	}
}

func TestAppendMustStartAtTheTreeSize(t *testing.T) {
	db := openDB(t)
	tree := NewTree(db, nil)
	indexBatch(t, db, tree, testRecords(0, 3))
	for _, first := range []uint64{0, 2, 4} {
		err := db.Update(func(txn *badger.Txn) error { return tree.IndexBatch(txn, testRecords(first, 2)) })
		if !errors.Is(err, ErrNotNextLeaf) {
			t.Errorf("IndexBatch at %d on size 3: err = %v, want ErrNotNextLeaf", first, err)
		}
	}
	recs := testRecords(3, 3)
	recs[2].Seq = 9
	if err := db.Update(func(txn *badger.Txn) error { return tree.IndexBatch(txn, recs) }); err == nil {
		t.Error("IndexBatch with a gap inside the batch succeeded")
	}
	err := db.Update(func(txn *badger.Txn) error { return tree.AppendLeafHashes(txn, 3, [][]byte{{1, 2, 3}}) })
	if err == nil {
		t.Error("AppendLeafHashes of a 3-byte hash succeeded")
	}
	if size, _ := tree.Size(); size != 3 {
		t.Errorf("Size() = %d after rejected appends, want 3", size)
	}
}

func TestDiscardedTransactionLeavesTreeUnchanged(t *testing.T) {
	db := openDB(t)
	tree := NewTree(db, nil)
	indexBatch(t, db, tree, testRecords(0, 10))
	before, err := tree.Root(10)
	if err != nil {
		t.Fatal(err)
	}

	txn := db.NewTransaction(true)
	if err := tree.IndexBatch(txn, testRecords(10, 7)); err != nil {
		t.Fatal(err)
	}
	if size, err := tree.SizeTxn(txn); err != nil || size != 17 {
		t.Fatalf("SizeTxn inside the transaction = %d, %v; want 17", size, err)
	}
	txn.Discard()

	if size, err := tree.Size(); err != nil || size != 10 {
		t.Fatalf("Size() after discard = %d, %v; want 10", size, err)
	}
	if root, err := tree.Root(10); err != nil || !bytes.Equal(root, before) {
		t.Fatalf("Root(10) after discard = %x, %v; want %x", root, err, before)
	}
	if _, err := tree.InclusionProof(12, 17); !errors.Is(err, ErrBeyondTree) {
		t.Fatalf("InclusionProof(12, 17) after discard: err = %v, want ErrBeyondTree", err)
	}
	// The same records append cleanly afterwards.
	indexBatch(t, db, tree, testRecords(10, 7))
	var hashes [][]byte
	for _, r := range testRecords(0, 17) {
		hashes = append(hashes, refLeafHash(r.MarshalLeaf()))
	}
	checkTree(t, tree, hashes)
}

func TestSeveralAppendsInOneTransactionSeeEachOther(t *testing.T) {
	db := openDB(t)
	tree := NewTree(db, nil)
	var hashes [][]byte
	err := db.Update(func(txn *badger.Txn) error {
		for first := uint64(0); first < 12; first += 4 {
			recs := testRecords(first, 4)
			if err := tree.IndexBatch(txn, recs); err != nil {
				return err
			}
			for _, r := range recs {
				hashes = append(hashes, refLeafHash(r.MarshalLeaf()))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, tree, hashes)
}

func TestAppendLeafHashesCopiesItsInput(t *testing.T) {
	db := openDB(t)
	tree := NewTree(db, nil)
	leaf := bytes.Repeat([]byte{7}, 32)
	want := append([]byte(nil), leaf...)
	txn := db.NewTransaction(true)
	defer txn.Discard()
	if err := tree.AppendLeafHashes(txn, 0, [][]byte{leaf}); err != nil {
		t.Fatal(err)
	}
	leaf[0] = 8 // the caller reuses its buffer before the commit
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	if root, _ := tree.Root(1); !bytes.Equal(root, want) {
		t.Fatalf("Root(1) = %x, want the original leaf hash %x", root, want)
	}
}

func TestProofsBeyondTheTreeFail(t *testing.T) {
	db := openDB(t)
	tree := NewTree(db, nil)
	indexBatch(t, db, tree, testRecords(0, 5))
	for name, err := range map[string]error{
		"Root(6)":                second(tree.Root(6)),
		"InclusionProof(5, 5)":   second(tree.InclusionProof(5, 5)),
		"InclusionProof(2, 6)":   second(tree.InclusionProof(2, 6)),
		"ConsistencyProof(3, 6)": second(tree.ConsistencyProof(3, 6)),
		"ConsistencyProof(4, 3)": second(tree.ConsistencyProof(4, 3)),
		"InclusionProof(0, 0)":   second(tree.InclusionProof(0, 0)),
		"ConsistencyProof(6, 6)": second(tree.ConsistencyProof(6, 6)),
		"Root(max uint64)":       second(tree.Root(math.MaxUint64)),
	} {
		if !errors.Is(err, ErrBeyondTree) {
			t.Errorf("%s: err = %v, want ErrBeyondTree", name, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestTreesWithDifferentPrefixesAreIndependent(t *testing.T) {
	db := openDB(t)
	// "a" is a prefix of "ab": the length in every key keeps them apart.
	a, ab := NewTree(db, []byte("a")), NewTree(db, []byte("ab"))
	indexBatch(t, db, a, testRecords(0, 3))
	if size, _ := ab.Size(); size != 0 {
		t.Fatalf("tree ab has size %d after appends to tree a", size)
	}
	indexBatch(t, db, ab, testRecords(0, 6))
	if size, _ := a.Size(); size != 3 {
		t.Fatalf("tree a has size %d after appends to tree ab, want 3", size)
	}
}

func TestKeyLayoutMatchesTheDocumentedExample(t *testing.T) {
	k := newKeys([]byte("L"))
	for _, c := range []struct {
		name string
		got  []byte
		want string
	}{
		{"leaf 5", k.node(0, 5), "74014c6e000000000000000005"},
		{"state", k.state(), "74014c73"},
		{"round 3", k.round(3), "63014c720000000000000003"},
		{"latest", k.latest(), "63014c6c"},
	} {
		if hex.EncodeToString(c.got) != c.want {
			t.Errorf("%s key = %x, want %s", c.name, c.got, c.want)
		}
	}
}

package merkle

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

func TestLeafRootIsTheRFC6962RootOfEveryPrefix(t *testing.T) {
	leaves := testLeafHashes(40)
	if got, err := LeafRoot(leaves, 0); err != nil || !bytes.Equal(got, rfc6962.DefaultHasher.EmptyRoot()) {
		t.Errorf("LeafRoot(0) = %x, %v; want the empty root", got, err)
	}
	for size := 1; size <= len(leaves); size++ {
		got, err := LeafRoot(leaves, uint64(size))
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if want := naiveRoot(t, leaves[:size]); !bytes.Equal(got, want) {
			t.Fatalf("size %d: root %x, want %x", size, got, want)
		}
	}
	if _, err := LeafRoot(leaves, 41); !errors.Is(err, ErrBeyondTree) {
		t.Errorf("LeafRoot past the end: %v, want ErrBeyondTree", err)
	}
}

func TestLeafConsistencyProofVerifiesForEveryPairOfSmallSizes(t *testing.T) {
	leaves := testLeafHashes(40)
	for size2 := uint64(1); size2 <= 40; size2++ {
		root2 := naiveRoot(t, leaves[:size2])
		for size1 := uint64(1); size1 <= size2; size1++ {
			root1 := naiveRoot(t, leaves[:size1])
			p, err := LeafConsistencyProof(leaves, size1, size2)
			if err != nil {
				t.Fatalf("%d → %d: %v", size1, size2, err)
			}
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, p, root1, root2); err != nil {
				t.Fatalf("%d → %d: %v", size1, size2, err)
			}
			if size1 == size2 {
				continue
			}
			// The same proof does not verify another root at size1.
			other := naiveRoot(t, leaves[1:size1+1])
			if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, p, other, root2); err == nil {
				t.Fatalf("%d → %d: the proof also verifies a wrong root at %d", size1, size2, size1)
			}
		}
	}
}

func TestLeafConsistencyProofShowsThatARewrittenTreeIsNotAnExtension(t *testing.T) {
	old := testLeafHashes(7)
	rewritten := testLeafHashes(20)
	rewritten[3] = rfc6962.DefaultHasher.HashLeaf([]byte("rewritten"))
	r1 := naiveRoot(t, old)
	r2 := naiveRoot(t, rewritten)
	r1x, err := LeafRoot(rewritten, 7)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(r1x, r1) {
		t.Fatal("the rewritten tree has the old root at size 7")
	}
	p, err := LeafConsistencyProof(rewritten, 7, 20)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 7, 20, p, r1x, r2); err != nil {
		t.Fatalf("the proof of the rewritten tree's own root at 7: %v", err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, 7, 20, p, r1, r2); err == nil {
		t.Fatal("the rewritten tree verified as an extension of the old one")
	}
}

func TestLeafConsistencyProofRefusesSizesPastTheLeaves(t *testing.T) {
	leaves := testLeafHashes(5)
	for _, c := range [][2]uint64{{3, 6}, {6, 5}} {
		if _, err := LeafConsistencyProof(leaves, c[0], c[1]); err == nil {
			t.Errorf("a proof from %d to %d over 5 leaves was given", c[0], c[1])
		}
	}
}

func testLeafHashes(n int) [][]byte {
	leaves := make([][]byte, n)
	for i := range leaves {
		leaves[i] = rfc6962.DefaultHasher.HashLeaf(fmt.Appendf(nil, "leaf %d", i))
	}
	return leaves
}

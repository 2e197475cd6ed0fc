package merkle

import (
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

func TestLeafInclusionProofVerifiesForEveryLeafOfSmallTrees(t *testing.T) {
	for size := 1; size <= 33; size++ {
		leaves := make([][]byte, size)
		for i := range leaves {
			leaves[i] = rfc6962.DefaultHasher.HashLeaf(fmt.Appendf(nil, "leaf %d", i))
		}
		root := naiveRoot(t, leaves)
		for i := range leaves {
			p, err := LeafInclusionProof(leaves, uint64(i))
			if err != nil {
				t.Fatalf("size %d leaf %d: %v", size, i, err)
			}
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(i), uint64(size), leaves[i], p, root); err != nil {
				t.Fatalf("size %d leaf %d: %v", size, i, err)
			}
		}
	}
	if _, err := LeafInclusionProof(make([][]byte, 3), 3); err == nil {
		t.Error("a proof of a leaf past the end was given")
	}
}

// naiveRoot is RFC 6962's MTH over leaf hashes, computed recursively.
func naiveRoot(t *testing.T, leaves [][]byte) []byte {
	t.Helper()
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(naiveRoot(t, leaves[:k]))
	h.Write(naiveRoot(t, leaves[k:]))
	return h.Sum(nil)
}

package merkle

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/intermesh/intermesh/log"
)

func TestTreeFollowsTheRealLog(t *testing.T) {
	ctx := context.Background()
	prefix := []byte("local")
	l, err := log.Open(ctx, log.Options{
		Dir:           t.TempDir(),
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		BatchIndexers: []log.BatchIndexer{NewTree(nil, prefix)},
		Origin:        exampleOrigin,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	tree := NewTree(l.DB(), prefix)

	// Concurrent appends, so that the log commits them in batches.
	const writers, each = 8, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				rec := testRecords(0, 1)[0]
				rec.Payload = fmt.Appendf(nil, `{"writer":%d,"i":%d}`, w, i)
				if _, err := l.Append(ctx, rec); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	size, err := tree.Size()
	if err != nil || size != l.Size() || size != writers*each {
		t.Fatalf("tree size %d (%v), log size %d, want %d", size, err, l.Size(), writers*each)
	}
	var hashes [][]byte
	for seq := range size {
		rec, err := l.Get(seq)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, refLeafHash(rec.MarshalLeaf()))
	}
	root, err := tree.Root(size)
	if err != nil || !bytes.Equal(root, refRoot(hashes)) {
		t.Fatalf("Root(%d) = %x, %v; reference over the log's records %x", size, root, err, refRoot(hashes))
	}
	for index := range size {
		p, err := tree.InclusionProof(index, size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, hashes[index], p, root); err != nil {
			t.Fatalf("record %d: %v", index, err)
		}
	}
}

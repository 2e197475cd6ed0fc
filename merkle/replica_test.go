package merkle

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/log"
)

// openReplicatingLog opens a log whose replicas keep their trees under
// ReplicaPrefix, as a node does.
func openReplicatingLog(t *testing.T, origin string) *log.Log {
	t.Helper()
	l, err := log.Open(context.Background(), log.Options{
		Dir:           t.TempDir(),
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Origin:        origin,
		BatchIndexers: []log.BatchIndexer{NewTree(nil, []byte("local"))},
		ReplicaIndexers: func(origin string) log.ReplicaOptions {
			return log.ReplicaOptions{BatchIndexers: []log.BatchIndexer{NewTree(nil, ReplicaPrefix(origin))}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// The replica of a log, copied record by record into another database, has
// the origin's tree: the same root at every size, and it verifies the
// origin's signed checkpoint.
func TestReplicaTreeMatchesTheOriginsCheckpoint(t *testing.T) {
	ctx := context.Background()
	const originName, replicaName = exampleOrigin, "example.org/node2"
	origin := openReplicatingLog(t, originName)
	for i := range 37 {
		if _, err := origin.Append(ctx, log.Record{Kind: "Profile", Identifier: strings.Repeat("M", i%5+1), Payload: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	originTree := NewTree(origin.DB(), []byte("local"))
	signer, err := NewSigner(originName, testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	signed, _, err := originTree.CloseEpoch(ctx, 1, time.Unix(1728000000, 0), signer, originName)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := NewVerifier(originName, testKey(1).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	cp, _, err := OpenCheckpoint(signed, note.VerifierList(verifier))
	if err != nil {
		t.Fatal(err)
	}

	node := openReplicatingLog(t, replicaName)
	replica, err := node.Replica(originName)
	if err != nil {
		t.Fatal(err)
	}
	tree := NewTree(node.DB(), ReplicaPrefix(originName))
	// Behind the checkpoint: not yet verifiable, and not inconsistent.
	if err := tree.VerifyCheckpoint(cp); !errors.Is(err, ErrBeyondTree) {
		t.Fatalf("VerifyCheckpoint of an empty replica = %v, want ErrBeyondTree", err)
	}
	page, err := origin.Range(ctx, log.Constraints{})
	if err != nil {
		t.Fatal(err)
	}
	for from := 0; from < len(page.Records); from += 10 {
		if _, err := replica.Append(ctx, page.Records[from:min(from+10, len(page.Records))]); err != nil {
			t.Fatal(err)
		}
	}
	for size := uint64(0); size <= cp.Size; size++ {
		want, err := originTree.Root(size)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := tree.Root(size); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("replica root at %d = %x, %v; origin's is %x", size, got, err, want)
		}
	}
	if err := tree.VerifyCheckpoint(cp); err != nil {
		t.Fatalf("VerifyCheckpoint: %v", err)
	}
	// The node's own tree is untouched by the replica.
	if size, err := NewTree(node.DB(), []byte("local")).Size(); err != nil || size != 0 {
		t.Errorf("node's own tree size = %d, %v", size, err)
	}

	// A checkpoint of the same size with another root is inconsistent with
	// the records held, and the error says both roots.
	forged := cp
	forged.Root = bytes.Repeat([]byte{7}, 32)
	err = tree.VerifyCheckpoint(forged)
	if !errors.Is(err, ErrInconsistent) || !strings.Contains(err.Error(), "0707") {
		t.Fatalf("VerifyCheckpoint of a forged root = %v, want ErrInconsistent naming it", err)
	}
}

func TestReplicaPrefixesNeverMeetTheLocalTree(t *testing.T) {
	if got := string(ReplicaPrefix("example.org/node2")); got != "replica/example.org/node2" {
		t.Errorf("ReplicaPrefix = %q", got)
	}
	// Even a peer named "local" gets a tree of its own.
	if bytes.Equal(ReplicaPrefix("local"), []byte("local")) {
		t.Error("the replica of origin \"local\" shares the local tree's prefix")
	}
}

package merkle

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/intermesh/intermesh/log"
)

// openDB opens a Badger database in a test directory, closed at cleanup.
func openDB(tb testing.TB) *badger.DB {
	tb.Helper()
	db, err := badger.Open(badger.DefaultOptions(tb.TempDir()).WithLogger(nil))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// testRecords returns n records with sequence numbers from first on.
func testRecords(first uint64, n int) []log.Record {
	recs := make([]log.Record, n)
	for i := range recs {
		seq := first + uint64(i)
		recs[i] = log.Record{
			Seq:     seq,
			Time:    time.Unix(1728000000, int64(seq)).UTC(),
			Kind:    "Profile",
			Account: "alice@example.com",
			Payload: fmt.Appendf(nil, `{"n":%d}`, seq),
			Origin:  "example.org/node1",
		}
	}
	return recs
}

// indexBatch commits recs to tree in one transaction, as the log does.
func indexBatch(tb testing.TB, db *badger.DB, tree *Tree, recs []log.Record) {
	tb.Helper()
	if err := db.Update(func(txn *badger.Txn) error { return tree.IndexBatch(txn, recs) }); err != nil {
		tb.Fatal(err)
	}
}

// refLeafHash is the RFC 6962 leaf hash, computed independently of the
// package: SHA-256(0x00 || leaf).
func refLeafHash(leaf []byte) []byte {
	h := sha256.Sum256(append([]byte{0x00}, leaf...))
	return h[:]
}

// refRoot is the RFC 6962 Merkle tree hash (section 2.1) of leaf hashes,
// computed naively by recursion: split at the largest power of two smaller
// than n, hash SHA-256(0x01 || left || right).
func refRoot(leafHashes [][]byte) []byte {
	switch n := len(leafHashes); n {
	case 0:
		h := sha256.Sum256(nil)
		return h[:]
	case 1:
		return leafHashes[0]
	default:
		k := 1
		for k*2 < n {
			k *= 2
		}
		buf := append([]byte{0x01}, refRoot(leafHashes[:k])...)
		h := sha256.Sum256(append(buf, refRoot(leafHashes[k:])...))
		return h[:]
	}
}

// testKey returns the Ed25519 key whose seed is 32 bytes of b.
func testKey(b byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = b
	}
	return ed25519.NewKeyFromSeed(seed)
}

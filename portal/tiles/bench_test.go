package tiles

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
)

// benchEntries is the log size of BenchmarkReadEntries.
const benchEntries = 100_000

// BenchmarkReadEntries reads a whole log of 100,000 records of ~200 bytes
// over HTTP with torchwood's tile client, which checks every entry against
// the tiles and the tiles against the checkpoint. "cold" reopens the
// database before each read (empty Badger caches; the OS page cache stays
// warm); "cached" reads the same open database again.
func BenchmarkReadEntries(b *testing.B) {
	dir := b.TempDir()
	const origin = "bench.example/log"
	_, key, _ := ed25519.GenerateKey(nil)
	signer, err := merkle.NewSigner(origin, key)
	if err != nil {
		b.Fatal(err)
	}
	verifier, _ := merkle.NewVerifier(origin, key.Public().(ed25519.PublicKey))
	open := func() (*log.Log, *merkle.Tree) {
		l, err := log.Open(context.Background(), log.Options{Dir: dir, Origin: origin,
			BatchIndexers: []log.BatchIndexer{merkle.NewTree(nil, []byte("local"))}})
		if err != nil {
			b.Fatal(err)
		}
		return l, merkle.NewTree(l.DB(), []byte("local"))
	}
	l, tree := open()
	var wg sync.WaitGroup
	for w := range 256 {
		wg.Go(func() {
			for i := w; i < benchEntries; i += 256 {
				rec := log.Record{Kind: "Evidence", Identifier: fmt.Sprint(i), Payload: []byte(strings.Repeat("p", 150))}
				if _, err := l.Append(context.Background(), rec); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if _, _, err := tree.CloseEpoch(context.Background(), 1, time.Unix(1, 0), signer, origin); err != nil {
		b.Fatal(err)
	}
	l.Close()

	read := func(b *testing.B, l *log.Log, tree *merkle.Tree) {
		mux := http.NewServeMux()
		New(Config{Own: Log{Checkpoint: func() ([]byte, error) {
			c, err := tree.LatestCheckpoint()
			if errors.Is(err, merkle.ErrNotFound) {
				return nil, nil
			}
			return c, err
		}, Hashes: tree, Entries: l}}).Register(mux)
		srv := httptest.NewServer(mux)
		defer srv.Close()
		signed, err := tree.LatestCheckpoint()
		if err != nil {
			b.Fatal(err)
		}
		n, err := note.Open(signed, note.VerifierList(verifier))
		if err != nil {
			b.Fatal(err)
		}
		cp, err := torchwood.ParseCheckpoint(n.Text)
		if err != nil {
			b.Fatal(err)
		}
		f, _ := torchwood.NewTileFetcher(srv.URL)
		c, _ := torchwood.NewClient(f)
		count := int64(0)
		for count < cp.N {
			for range c.Entries(context.Background(), cp.Tree, count) {
				count++
			}
			if err := c.Err(); err != nil {
				b.Fatal(err)
			}
		}
	}
	report := func(b *testing.B, start time.Time) {
		b.ReportMetric(float64(benchEntries*b.N)/time.Since(start).Seconds(), "entries/s")
	}
	b.Run("cold", func(b *testing.B) {
		var elapsed time.Duration
		for b.Loop() {
			l, tree := open()
			start := time.Now()
			read(b, l, tree)
			elapsed += time.Since(start)
			l.Close()
		}
		b.ReportMetric(float64(benchEntries*b.N)/elapsed.Seconds(), "entries/s")
	})
	b.Run("cached", func(b *testing.B) {
		l, tree := open()
		defer l.Close()
		read(b, l, tree) // warm the caches
		start := time.Now()
		for b.Loop() {
			read(b, l, tree)
		}
		report(b, start)
	})
}

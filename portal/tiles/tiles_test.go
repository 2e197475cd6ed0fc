package tiles

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
)

func TestPathsAreWrittenAndParsedAsTheSpecSays(t *testing.T) {
	for _, c := range []struct {
		tile Tile
		path string
	}{
		{Tile{Level: 0, Index: 0, Width: 256}, "tile/0/000"},
		{Tile{Level: 1, Index: 1234067, Width: 256}, "tile/1/x001/x234/067"},
		{Tile{Level: 2, Index: 5, Width: 17}, "tile/2/005.p/17"},
		{Tile{Entries: true, Index: 1000, Width: 1}, "tile/entries/x001/000.p/1"},
		{Tile{Level: 63, Index: 18446744073709551615, Width: 255}, "tile/63/x018/x446/x744/x073/x709/x551/615.p/255"},
	} {
		if got := c.tile.Path(); got != c.path {
			t.Errorf("%+v.Path() = %q, want %q", c.tile, got, c.path)
		}
		got, err := ParsePath(c.path)
		if err != nil || got != c.tile {
			t.Errorf("ParsePath(%q) = %+v, %v; want %+v", c.path, got, err, c.tile)
		}
	}
}

func TestMalformedPathsAreRefused(t *testing.T) {
	for _, p := range []string{
		"", "tile/", "tile/0", "tile/0/", "tile/00/000", "tile/64/000", "tile/-1/000", "tile/a/000",
		"tile/0/00", "tile/0/0000", "tile/0/x000/001", "tile/0/001/002", "tile/0/x001", "tile/0/x001/02a",
		"tile/0/000.p/0", "tile/0/000.p/256", "tile/0/000.p/07", "tile/0/000.p/", "tile/0/000.p/1/2",
		"tile/entries/", "tile/data/000", "tile/0/x999/x999/x999/x999/x999/x999/x999/999",
		"tile/0/x018/x446/x744/x073/x709/x551/616", "tile/0/000/", "tile/0/000.p/1.p/1",
		"tile/0/" + strings.Repeat("x001/", 20) + "000",
	} {
		if tile, err := ParsePath(p); !errors.Is(err, ErrBadPath) {
			t.Errorf("ParsePath(%q) = %+v, %v; want ErrBadPath", p, tile, err)
		}
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"tile/0/000", "tile/1/x001/x234/067.p/5", "tile/entries/000.p/1", "tile/0/x000/001"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tile, err := ParsePath(s)
		if err != nil {
			return
		}
		// Only the canonical form parses.
		if got := tile.Path(); got != s {
			t.Fatalf("ParsePath(%q) = %+v, which writes as %q", s, tile, got)
		}
	})
}

// testLog is a real log with its stored tree, served by a Server.
type testLog struct {
	log   *log.Log
	tree  *merkle.Tree
	srv   *httptest.Server
	close func(size uint64) // closes an epoch
}

func newTestLog(t *testing.T, records int) *testLog {
	t.Helper()
	const origin = "test.example/log"
	indexer := merkle.NewTree(nil, []byte("local"))
	l, err := log.Open(t.Context(), log.Options{Dir: t.TempDir(), BatchIndexers: []log.BatchIndexer{indexer}, Origin: origin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	tree := merkle.NewTree(l.DB(), []byte("local"))
	_, key, _ := ed25519.GenerateKey(nil)
	signer, err := merkle.NewSigner(origin, key)
	if err != nil {
		t.Fatal(err)
	}
	for i := range records {
		if _, err := l.Append(t.Context(), log.Record{Kind: "Evidence", Identifier: fmt.Sprint(i), Payload: bytes.Repeat([]byte{'a'}, i%100)}); err != nil {
			t.Fatal(err)
		}
	}
	round := uint64(1)
	tl := &testLog{log: l, tree: tree}
	tl.close = func(uint64) {
		if _, _, err := tree.CloseEpoch(t.Context(), round, time.Unix(int64(round), 0), signer, origin); err != nil {
			t.Fatal(err)
		}
		round++
	}
	mux := http.NewServeMux()
	New(Config{Own: Log{
		Checkpoint: func() ([]byte, error) {
			b, err := tree.LatestCheckpoint()
			if errors.Is(err, merkle.ErrNotFound) {
				return nil, nil
			}
			return b, err
		},
		Hashes: tree, Entries: l,
	}}).Register(mux)
	tl.srv = httptest.NewServer(mux)
	t.Cleanup(tl.srv.Close)
	return tl
}

// fetch GETs path with the given Accept-Encoding, without the transport's
// transparent decompression.
func fetch(t *testing.T, base, path, encoding string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	req.Header.Set("Accept-Encoding", encoding)
	resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func leafHash(b []byte) []byte {
	h := sha256.Sum256(append([]byte{0}, b...))
	return h[:]
}

func TestTilesAndBundlesAreServedUpToTheCheckpointWithTheirHeaders(t *testing.T) {
	tl := newTestLog(t, 600)
	base := tl.srv.URL + "/"
	if resp, _ := fetch(t, base, "tile/0/000", "identity"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a tile before any checkpoint: %s, want 404", resp.Status)
	}
	tl.close(600)

	resp, body := fetch(t, base, "checkpoint", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || resp.Header.Get("Cache-Control") != "no-store" ||
		resp.Header.Get("Access-Control-Allow-Origin") != "*" || !bytes.HasPrefix(body, []byte("test.example/log\n600\n")) {
		t.Fatalf("checkpoint: %s %v %q", resp.Status, resp.Header, body)
	}

	// Level-0 tile 1 holds the leaf hashes of records 256 to 511.
	resp, body = fetch(t, base, "tile/0/001", "gzip")
	if resp.StatusCode != 200 || len(body) != 256*32 || resp.Header.Get("Content-Type") != "application/octet-stream" ||
		!strings.Contains(resp.Header.Get("Cache-Control"), "immutable") || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("tile/0/001: %s %v, %d bytes", resp.Status, resp.Header, len(body))
	}
	for i := range 256 {
		rec, err := tl.log.Get(uint64(256 + i))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(body[i*32:(i+1)*32], leafHash(rec.MarshalLeaf())) {
			t.Fatalf("tile/0/001 hash %d is not record %d's leaf hash", i, 256+i)
		}
	}
	// Level-1 tile 0 of width 2 holds the roots of leaves [0,256) and [256,512).
	_, body = fetch(t, base, "tile/1/000.p/2", "")
	for i := range 2 {
		root, err := tl.tree.Root(256)
		if i == 1 {
			proofRoot, err2 := subtreeRoot(tl, 256, 512)
			root, err = proofRoot, err2
		}
		if err != nil || !bytes.Equal(body[i*32:(i+1)*32], root) {
			t.Fatalf("tile/1/000.p/2 hash %d: %v", i, err)
		}
	}

	// The partial bundle, gzip-compressed on request.
	resp, body = fetch(t, base, "tile/entries/002.p/88", "gzip, identity")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("bundle: %s %v", resp.Status, resp.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body, err = io.ReadAll(zr); err != nil {
		t.Fatal(err)
	}
	for i := range 88 {
		rec, _ := tl.log.Get(uint64(512 + i))
		leaf := rec.MarshalLeaf()
		if int(binary.BigEndian.Uint16(body)) != len(leaf) || !bytes.Equal(body[2:2+len(leaf)], leaf) {
			t.Fatalf("bundle entry %d is not record %d's leaf", i, 512+i)
		}
		body = body[2+len(leaf):]
	}
	if len(body) != 0 {
		t.Fatalf("%d trailing bytes in the bundle", len(body))
	}
	if resp, _ := fetch(t, base, "tile/entries/002.p/88", "identity"); resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("a bundle asked with identity encoding came as %q", resp.Header.Get("Content-Encoding"))
	}

	// Nothing beyond the checkpoint, though the log holds more.
	for range 10 {
		if _, err := tl.log.Append(t.Context(), log.Record{Kind: "Evidence"}); err != nil {
			t.Fatal(err)
		}
	}
	for path, want := range map[string]int{
		"tile/0/002.p/89":        404,
		"tile/0/002":             404,
		"tile/entries/002.p/89":  404,
		"tile/1/000":             404,
		"tile/1/000.p/3":         404,
		"tile/2/000.p/1":         404,
		"tile/0/003.p/1":         404,
		"tile/0/002.p/88":        200,
		"tile/0/002.p/1":         200,
		"tile/0/000.p/5":         200,
		"tile/0/x001/000":        404,
		"tile/0/0002":            400,
		"tile/8/data/000":        400,
		"replica/x/checkpoint":   404,
		"tile/entries/000.p/256": 400,
	} {
		if resp, _ := fetch(t, base, path, ""); resp.StatusCode != want {
			t.Errorf("GET /%s: %s, want %d", path, resp.Status, want)
		}
	}
	req, _ := http.NewRequest(http.MethodOptions, base+"tile/0/000", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("CORS preflight: %v %v", resp, err)
	}
	resp.Body.Close()
}

// subtreeRoot is the root of leaves [begin, end), from an inclusion-free
// path: root(end) of a tree whose first half is known.
func subtreeRoot(tl *testLog, begin, end uint64) ([]byte, error) {
	var hashes [][]byte
	for i := begin; i < end; i++ {
		rec, err := tl.log.Get(i)
		if err != nil {
			return nil, err
		}
		hashes = append(hashes, leafHash(rec.MarshalLeaf()))
	}
	return merkle.LeafRoot(hashes, uint64(len(hashes)))
}

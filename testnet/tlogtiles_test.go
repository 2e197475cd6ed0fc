package testnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/intermesh/intermesh/intermesh"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/portal/mesh"
	"github.com/intermesh/intermesh/portal/tiles"
)

// This file reads running nodes through the C2SP tlog-tiles API with two
// clients this project did not write: golang.org/x/mod/sumdb/tlog (the Go
// checksum database's tile client) and filippo.io/torchwood.

// tlogTiles is a tlog.TileReader over HTTP for x/mod's sumdb/tlog. x/mod
// names tiles go.dev/design/25530-sumdb's way ("tile/8/L/N", data tiles
// "tile/8/data/N"); tlog-tiles writes "tile/L/N" and "tile/entries/N", so
// the path is converted.
type tlogTiles struct {
	base string // ends in "/"
}

func (r tlogTiles) Height() int { return 8 }

func (r tlogTiles) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(ts))
	for i, t := range ts {
		b, err := httpGet(r.base + tlogTilesPath(t))
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (r tlogTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// tlogTilesPath converts an x/mod tile path to the tlog-tiles one.
func tlogTilesPath(t tlog.Tile) string {
	p := strings.TrimPrefix(t.Path(), "tile/8/")
	if rest, ok := strings.CutPrefix(p, "data/"); ok {
		p = "entries/" + rest
	}
	return "tile/" + p
}

func httpGet(u string) ([]byte, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return b, nil
}

// readCheckpoint fetches and verifies base's checkpoint with the federation's
// keys (x/mod's note) and parses it with torchwood.
func readCheckpoint(base string, verifiers note.Verifiers) (torchwood.Checkpoint, error) {
	signed, err := httpGet(base + "checkpoint")
	if err != nil {
		return torchwood.Checkpoint{}, err
	}
	n, err := note.Open(signed, verifiers)
	if err != nil {
		return torchwood.Checkpoint{}, fmt.Errorf("checkpoint signature: %w", err)
	}
	return torchwood.ParseCheckpoint(n.Text)
}

// readWithXMod reads the whole log at base with x/mod's sumdb/tlog: it
// recomputes the root from the tiles, checks every entry of the bundles
// against the level-0 tiles with an inclusion proof, and proves the
// checkpoint consistent with an earlier tree. It returns the entries.
func readWithXMod(base string, cp torchwood.Checkpoint, earlier tlog.Tree) ([][]byte, error) {
	hr := tlog.TileHashReader(cp.Tree, tlogTiles{base})
	root, err := tlog.TreeHash(cp.N, hr)
	if err != nil {
		return nil, fmt.Errorf("tree hash: %w", err)
	}
	if root != cp.Hash {
		return nil, fmt.Errorf("root of the tiles %s, checkpoint says %s", root, cp.Hash)
	}
	var entries [][]byte
	for n := int64(0); n*256 < cp.N; n++ {
		w := int(min(256, cp.N-n*256))
		bundle, err := tlogTiles{base}.ReadTiles([]tlog.Tile{{H: 8, L: -1, N: n, W: w}})
		if err != nil {
			return nil, err
		}
		b := bundle[0]
		for range w {
			if len(b) < 2 {
				return nil, fmt.Errorf("bundle %d is short", n)
			}
			l := int(b[0])<<8 | int(b[1])
			if len(b) < 2+l {
				return nil, fmt.Errorf("bundle %d is short", n)
			}
			entries = append(entries, b[2:2+l])
			b = b[2+l:]
		}
		if len(b) != 0 {
			return nil, fmt.Errorf("bundle %d has %d trailing bytes", n, len(b))
		}
	}
	for i, e := range entries {
		p, err := tlog.ProveRecord(cp.N, int64(i), hr)
		if err != nil {
			return nil, fmt.Errorf("inclusion proof of %d: %w", i, err)
		}
		if err := tlog.CheckRecord(p, cp.N, cp.Hash, int64(i), tlog.RecordHash(e)); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
	}
	if earlier.N > 0 {
		p, err := tlog.ProveTree(cp.N, earlier.N, hr)
		if err != nil {
			return nil, fmt.Errorf("consistency proof: %w", err)
		}
		if err := tlog.CheckTree(p, cp.N, cp.Hash, earlier.N, earlier.Hash); err != nil {
			return nil, fmt.Errorf("consistency from %d to %d: %w", earlier.N, cp.N, err)
		}
	}
	return entries, nil
}

// readWithTorchwood reads every entry of the log at base with torchwood's
// client, which checks each against the tree, and checks one inclusion
// proof per bundle that its Entry method returns.
func readWithTorchwood(ctx context.Context, base string, cp torchwood.Checkpoint) ([][]byte, error) {
	f, err := torchwood.NewTileFetcher(base)
	if err != nil {
		return nil, err
	}
	c, err := torchwood.NewClient(f)
	if err != nil {
		return nil, err
	}
	var entries [][]byte
	for int64(len(entries)) < cp.N {
		before := len(entries)
		for i, e := range c.Entries(ctx, cp.Tree, int64(len(entries))) {
			if i != int64(len(entries)) {
				return nil, fmt.Errorf("entry %d came as %d", len(entries), i)
			}
			entries = append(entries, bytes.Clone(e))
		}
		if err := c.Err(); err != nil {
			return nil, err
		}
		if len(entries) == before {
			return nil, fmt.Errorf("torchwood stopped at %d of %d entries", before, cp.N)
		}
	}
	for i := int64(0); i < cp.N; i += 97 {
		e, p, err := c.Entry(ctx, cp.Tree, i)
		if err != nil {
			return nil, err
		}
		if err := tlog.CheckRecord(p, cp.N, cp.Hash, i, tlog.RecordHash(e)); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
	}
	return entries, nil
}

// appendRecords appends n small records to l, concurrently.
func appendRecords(t *testing.T, l *log.Log, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := l.Append(t.Context(), log.Record{Kind: intermesh.KindMasterHash, Identifier: "test/" + strconv.Itoa(i), Payload: []byte(`{"n":` + strconv.Itoa(i) + `}`)})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// waitForCheckpointSize waits until node i has a checkpoint of at least size
// records and its peer's replica verified one, and returns node i's.
func waitForCheckpointSize(t *testing.T, tn *Testnet, i int, size uint64) {
	t.Helper()
	origin := tn.Federation().Members[i].Origin
	err := WaitFor(t.Context(), 30*time.Second, fmt.Sprintf("checkpoints of %d records", size), func() bool {
		cp, _, ok := latestCheckpoint(t, tn, i)
		if !ok || cp.Size < size {
			return false
		}
		for j := range tn.Size() {
			if j != i && tn.Node(j).Mesh().Replicas()[origin].VerifiedSize < size {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestStandardTlogClientsReadEveryNodeAndReplicaThroughTlogTiles(t *testing.T) {
	tn := startTestnet(t, 2)
	verifiers := federationVerifiers(t, tn)
	origin := tn.Federation().Members[0].Origin
	n0 := tn.Node(0)
	own := tn.PortalURL(0) + "/"
	mirror := tn.PortalURL(1) + tiles.ReplicaPrefix(origin)

	appendRecords(t, n0.Log(), 300)
	waitForCheckpointSize(t, tn, 0, 300)
	first, err := readCheckpoint(own, verifiers)
	if err != nil {
		t.Fatal(err)
	}
	// 700 records: two full level-0 tiles and a partial one, a partial
	// level-1 tile of width 2, and bundles of both kinds.
	appendRecords(t, n0.Log(), 400)
	waitForCheckpointSize(t, tn, 0, 700)

	for _, base := range []string{own, mirror} {
		cp, err := readCheckpoint(base, verifiers)
		if err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		if cp.Origin != origin || cp.N < 700 {
			t.Fatalf("%s: checkpoint of %s at size %d", base, cp.Origin, cp.N)
		}
		xmod, err := readWithXMod(base, cp, first.Tree)
		if err != nil {
			t.Fatalf("%s: x/mod sumdb/tlog: %v", base, err)
		}
		tw, err := readWithTorchwood(t.Context(), base, cp)
		if err != nil {
			t.Fatalf("%s: torchwood: %v", base, err)
		}
		for i := range cp.N {
			rec, err := n0.Log().Get(uint64(i))
			if err != nil {
				t.Fatal(err)
			}
			if leaf := rec.MarshalLeaf(); !bytes.Equal(xmod[i], leaf) || !bytes.Equal(tw[i], leaf) {
				t.Fatalf("%s: entry %d differs from record %d's leaf", base, i, i)
			}
		}
	}
}

// corruptingProxy serves base through a reverse proxy that flips one bit of
// every response whose path ends with suffix.
func corruptingProxy(t *testing.T, base, suffix string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	// The proxy asks for identity encoding so the corruption hits the
	// bytes the client hashes.
	p := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		r.Out.Header.Set("Accept-Encoding", "identity")
	}}
	p.ModifyResponse = func(resp *http.Response) error {
		if !strings.HasSuffix(resp.Request.URL.Path, suffix) || resp.StatusCode != http.StatusOK {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		b[len(b)-1] ^= 1
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.Header.Del("Content-Encoding")
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
		resp.ContentLength = int64(len(b))
		return nil
	}
	s := httptest.NewServer(p)
	t.Cleanup(s.Close)
	return s.URL + "/"
}

func TestStandardTlogClientsRejectACorruptedTileOrBundle(t *testing.T) {
	tn := startTestnet(t, 1)
	verifiers := federationVerifiers(t, tn)
	appendRecords(t, tn.Node(0).Log(), 300)
	waitForCheckpointSize(t, tn, 0, 300)
	cp, err := readCheckpoint(tn.PortalURL(0)+"/", verifiers)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readWithXMod(tn.PortalURL(0)+"/", cp, tlog.Tree{}); err != nil {
		t.Fatalf("the honest node does not read: %v", err)
	}
	// The proxy itself passes an untouched log through.
	if _, err := readWithXMod(corruptingProxy(t, tn.PortalURL(0), "/no-such-path"), cp, tlog.Tree{}); err != nil {
		t.Fatalf("reading through a proxy that corrupts nothing: %v", err)
	}
	if _, err := readWithTorchwood(t.Context(), corruptingProxy(t, tn.PortalURL(0), "/no-such-path"), cp); err != nil {
		t.Fatalf("reading through a proxy that corrupts nothing: %v", err)
	}
	for _, c := range []struct {
		name, suffix string
	}{
		{"a full level-0 hash tile", "/tile/0/000"},
		{"a partial level-0 hash tile", fmt.Sprintf("/tile/0/001.p/%d", cp.N-256)},
		{"a full entry bundle", "/tile/entries/000"},
		{"a partial entry bundle", fmt.Sprintf("/tile/entries/001.p/%d", cp.N-256)},
	} {
		t.Run(c.name, func(t *testing.T) {
			base := corruptingProxy(t, tn.PortalURL(0), c.suffix)
			if _, err := readWithXMod(base, cp, tlog.Tree{}); err == nil {
				t.Errorf("x/mod sumdb/tlog read the log through a proxy that corrupts %s", c.suffix)
			}
			if _, err := readWithTorchwood(t.Context(), base, cp); err == nil {
				t.Errorf("torchwood read the log through a proxy that corrupts %s", c.suffix)
			}
		})
	}
}

// bigProfile returns a signed ProfileMesh whose entry is between lo and hi
// bytes long, its identifier and its offline key. It is padded with names (each within the
// profile limits) of '<', which JSON writes as 6 bytes.
func bigProfile(t *testing.T, lo, hi int) ([]byte, string, *mesh.PrivateKey) {
	t.Helper()
	offline, err := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := mesh.GenerateKey(rand.Reader, mesh.CurveX448)
	if err != nil {
		t.Fatal(err)
	}
	p := &mesh.ProfileMesh{Profile: mesh.Profile{
		KeyOfflineSignature: mesh.NewKeyData(offline.Public()),
		KeysOnlineSignature: []mesh.KeyData{*mesh.NewKeyData(admin.Public())},
	}, KeyEncryption: mesh.NewKeyData(enc.Public())}
	for {
		env, err := mesh.SignObject(p, offline)
		if err != nil {
			t.Fatal(err)
		}
		entry, err := mesh.MarshalEntry(p.TypeName(), env)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case len(entry) > hi:
			t.Fatalf("the entry grew past %d bytes (%d)", hi, len(entry))
		case len(entry) >= lo:
			return entry, offline.UDF().String(), offline
		}
		step := min(1000, max(1, (lo-len(entry))/8/2))
		if n := len(p.Names); n == 0 || len(p.Names[n-1])+step > 1000 {
			p.Names = append(p.Names, "")
		}
		p.Names[len(p.Names)-1] += strings.Repeat("<", step)
	}
}

func TestAnEntryWhoseLeafWouldNotFitAnEntryBundleIsRefusedWith413(t *testing.T) {
	tn := startTestnet(t, 1)
	// Under the portal's 64 KiB entry limit, but its record's leaf (the
	// entry in a portal entry, plus the record fields) is over 65,535 bytes.
	entry, id, offline := bigProfile(t, log.MaxLeafLen-200, 64<<10)
	c, err := client.New(tn.PortalURL(0))
	if err != nil {
		t.Fatal(err)
	}
	before := tn.Node(0).Log().Size()
	_, err = CreateAccountWith(t.Context(), c, tn.Account(0, id), entry, offline)
	var pe *portal.Error
	t.Logf("CreateAccount with a %d-byte entry: %v", len(entry), err)
	if !errors.As(err, &pe) || pe.Status != portal.TooLarge || !strings.Contains(pe.Description, "65535") {
		t.Fatalf("CreateAccount with a %d-byte entry: %v; want 413 naming the 65,535-byte leaf limit", len(entry), err)
	}
	if got := tn.Node(0).Log().Size(); got > before+1 { // a round's MasterHash record may land meanwhile
		t.Fatalf("the log grew from %d to %d records", before, got)
	}
	if _, err := c.Get(t.Context(), &portal.GetRequest{Identifier: id}); err == nil {
		t.Fatal("the refused profile is served")
	}
}

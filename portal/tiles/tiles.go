// Package tiles serves a node's log, and each replica it holds of its
// federation's other logs, over the C2SP tlog-tiles read API
// (https://c2sp.org/tlog-tiles), so that standard transparency-log clients
// (golang.org/x/mod/sumdb/tlog, filippo.io/torchwood, Tessera's tools) read
// and verify them with no code of this project.
//
// # Resources
//
// Under a log's prefix ("/" for the node's own log, "/replica/<origin>/"
// for its replica of member <origin>, e.g. "/replica/testnet/node1/", and
// "/cosigned/" for the node's own log as of its latest checkpoint that its
// witnesses cosigned, the checkpoint carrying their cosignatures):
//
//	GET <prefix>checkpoint                the latest signed checkpoint (for a replica:
//	                                      the origin's latest checkpoint the replica verified)
//	GET <prefix>tile/<L>/<N>[.p/<W>]      a hash tile: W (256 if full) 32-byte hashes of tree level 8L
//	GET <prefix>tile/entries/<N>[.p/<W>]  an entry bundle: W leaves, each a big-endian uint16 length then the
//	                                      record's leaf encoding (log.Record.MarshalLeaf)
//
// <N> is written in 3-digit groups, all but the last prefixed with "x"
// (1234067 is "x001/x234/067"). Nothing beyond the latest checkpoint is
// served: a tile or bundle that the checkpoint's tree does not hold is a
// 404, a malformed path a 400. Every tile and bundle, partial or full, is
// immutable once it can be served, so it is sent with a year-long
// immutable Cache-Control; a checkpoint is sent with no-store. Bundles are
// gzip-compressed when the client accepts gzip. Every answer carries
// Access-Control-Allow-Origin: *, and OPTIONS answers CORS preflights.
//
// Every hash of a tile is one read of a stored tree node (the merkle
// package stores every full subtree node); nothing is recomputed from the
// log. A bundle reads its records.
//
// The package reads; it does not decide which replicas a node holds or
// trusts (the node gives it the replicas and their verified checkpoints).
package tiles

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
)

// tileWidth is the width of a full tile.
const tileWidth = merkle.TileWidth

// Hashes reads the hash tiles of a stored tree (merkle.Tree).
type Hashes interface {
	TileHashes(level uint, index uint64, width int, size uint64) ([]byte, error)
}

// Entries reads records of a log (log.Log, log.Replica).
type Entries interface {
	Range(ctx context.Context, c log.Constraints) (log.Page, error)
}

// Log is one log served over tlog-tiles.
type Log struct {
	// Checkpoint returns the latest signed checkpoint note to serve, or nil
	// if there is none yet. Tiles are served up to its tree size.
	Checkpoint func() ([]byte, error)
	// Hashes reads the log's tree.
	Hashes Hashes
	// Entries reads the log's records.
	Entries Entries
}

// Config says what a Server serves.
type Config struct {
	// Own is the node's own log, served at "/".
	Own Log
	// Replica returns the replica of origin's log, served at
	// "/replica/<origin>/"; ok is false if the node holds none. Optional.
	Replica func(origin string) (l Log, ok bool)
	// Replicas lists the origins Replica serves. Optional.
	Replicas func() []string
	// Cosigned returns the latest checkpoint of the own log that its
	// witness policy's quorum cosigned, with the cosignatures, or nil.
	// Optional: if set, the own log is also served under "/cosigned/"
	// with that checkpoint, so a client that requires cosignatures reads
	// the log at that prefix.
	Cosigned func() ([]byte, error)
	// Logger logs failures to read the store. Optional.
	Logger *slog.Logger
}

// Server answers tlog-tiles requests.
type Server struct {
	cfg Config
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{cfg: cfg}
}

// ReplicaPrefix is the URL path prefix under which a node serves its
// replica of origin's log.
func ReplicaPrefix(origin string) string { return "/replica/" + origin + "/" }

// Register adds the server's routes to mux: GET and OPTIONS of
// "/checkpoint", "/tile/", "/replica/" and, with Config.Cosigned,
// "/cosigned/".
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /checkpoint", func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, s.cfg.Own, "checkpoint") })
	mux.HandleFunc("GET /tile/", func(w http.ResponseWriter, r *http.Request) {
		s.serve(w, r, s.cfg.Own, strings.TrimPrefix(r.URL.Path, "/"))
	})
	mux.HandleFunc("GET /replica/", s.serveReplica)
	prefixes := []string{"/checkpoint", "/tile/", "/replica/"}
	if s.cfg.Cosigned != nil {
		cosigned := Log{Checkpoint: s.cfg.Cosigned, Hashes: s.cfg.Own.Hashes, Entries: s.cfg.Own.Entries}
		mux.HandleFunc("GET /cosigned/", func(w http.ResponseWriter, r *http.Request) {
			s.serve(w, r, cosigned, strings.TrimPrefix(r.URL.Path, "/cosigned/"))
		})
		prefixes = append(prefixes, "/cosigned/")
	}
	for _, p := range prefixes {
		mux.HandleFunc("OPTIONS "+p, preflight)
	}
}

// serveReplica routes "/replica/<origin>/<resource>" to the replica whose
// origin is the longest one that prefixes the path.
func (s *Server) serveReplica(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/replica/")
	best := ""
	if s.cfg.Replicas != nil {
		for _, o := range s.cfg.Replicas() {
			if strings.HasPrefix(rest, o+"/") && len(o) > len(best) {
				best = o
			}
		}
	}
	var l Log
	ok := best != "" && s.cfg.Replica != nil
	if ok {
		l, ok = s.cfg.Replica(best)
	}
	if !ok {
		fail(w, http.StatusNotFound, "this node holds no replica of that log")
		return
	}
	s.serve(w, r, l, strings.TrimPrefix(rest, best+"/"))
}

// serve answers one resource of l.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, l Log, resource string) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	signed, err := l.Checkpoint()
	if err != nil {
		s.cfg.Logger.Error("tiles: reading the latest checkpoint", "err", err)
		fail(w, http.StatusInternalServerError, "cannot read the latest checkpoint")
		return
	}
	if resource == "checkpoint" {
		if len(signed) == 0 {
			fail(w, http.StatusNotFound, "no checkpoint yet")
			return
		}
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		_, _ = w.Write(signed)
		return
	}
	t, err := ParsePath(resource)
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	size, err := checkpointSize(signed)
	if err != nil {
		s.cfg.Logger.Error("tiles: parsing the latest checkpoint", "err", err)
		fail(w, http.StatusInternalServerError, "cannot parse the latest checkpoint")
		return
	}
	level := t.Level
	if t.Entries {
		level = 0
	}
	if err := merkle.CheckTile(level, t.Index, t.Width, size); err != nil {
		fail(w, http.StatusNotFound, fmt.Sprintf("%s is beyond the latest checkpoint (tree size %d)", t.Path(), size))
		return
	}
	var body []byte
	if t.Entries {
		body, err = bundle(r.Context(), l.Entries, t)
	} else {
		body, err = l.Hashes.TileHashes(t.Level, t.Index, t.Width, size)
	}
	if err != nil {
		s.cfg.Logger.Error("tiles: reading a tile", "tile", t.Path(), "err", err)
		fail(w, http.StatusInternalServerError, "cannot read "+t.Path())
		return
	}
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	if t.Entries {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			var zb bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&zb, gzip.BestSpeed)
			_, _ = zw.Write(body)
			_ = zw.Close()
			h.Set("Content-Encoding", "gzip")
			body = zb.Bytes()
		}
	}
	_, _ = w.Write(body)
}

// bundle reads the entry bundle t: each leaf prefixed with its length as a
// big-endian uint16.
func bundle(ctx context.Context, e Entries, t Tile) ([]byte, error) {
	first := t.Index * tileWidth
	page, err := e.Range(ctx, log.Constraints{From: first, MaxEntries: t.Width})
	if err != nil {
		return nil, err
	}
	if len(page.Records) != t.Width {
		return nil, fmt.Errorf("tiles: bundle %s: read %d records, want %d", t.Path(), len(page.Records), t.Width)
	}
	var out []byte
	for i := range page.Records {
		rec := &page.Records[i]
		if rec.Seq != first+uint64(i) {
			return nil, fmt.Errorf("tiles: bundle %s: record %d has seq %d", t.Path(), first+uint64(i), rec.Seq)
		}
		leaf := rec.MarshalLeaf()
		if len(leaf) > log.MaxLeafLen {
			return nil, fmt.Errorf("tiles: record %d: leaf of %d bytes does not fit a bundle", rec.Seq, len(leaf))
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(leaf)))
		out = append(out, leaf...)
	}
	return out, nil
}

// checkpointSize returns the tree size of a signed checkpoint note, 0 for
// none.
func checkpointSize(signed []byte) (uint64, error) {
	if len(signed) == 0 {
		return 0, nil
	}
	i := bytes.Index(signed, []byte("\n\n"))
	if i < 0 {
		return 0, errors.New("tiles: checkpoint note has no signature block")
	}
	cp, err := merkle.ParseCheckpoint(signed[:i+1])
	if err != nil {
		return 0, err
	}
	return cp.Size, nil
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.TrimSpace(name) != "*" {
			continue
		}
		q := strings.ReplaceAll(params, " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

// preflight answers a CORS preflight request.
func preflight(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}

// fail answers an error in plain text.
func fail(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, msg, status)
}

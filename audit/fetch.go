package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
)

// logCopy is the auditor's copy of one log as one node serves it (its own
// log, or its replica of another origin's log): the leaf hash of every
// entry, in order, and the MasterHash and Evidence records decoded.
//
// With a cache directory, every item fetched is also kept as a JSON line in
// <cache>/<node>/<origin>.jsonl (the format of 'meshctl transfer'), and a
// later audit reads the file back (checking every item again) and asks the
// node only for what follows. The leaf hashes stay in memory (32 bytes per
// entry and log) until the cross-node root checks have run.
type logCopy struct {
	origin  string
	replica bool
	hashes  [][]byte
	records map[uint64]Leaf // MasterHash and Evidence records
	// problems are the entries check failures (one per bad entry).
	problems []string
	cache    string // file path, or ""
	// mapped says whether vmap collects what the log's map needs: for own
	// logs, and for one replica of each origin (see auditor.mapReplicas).
	mapped bool
	vmap   logMap
}

// size is the number of entries held.
func (l *logCopy) size() uint64 { return uint64(len(l.hashes)) }

// errGap is returned when a node sends an entry out of order: the copy
// cannot go on.
var errGap = errors.New("entries out of order")

// add checks one Transfer item and appends it: its index must be the next
// one and it must carry its leaf; the leaf must decode, and its fields must
// be the item's and the log's origin. Only a missing index or leaf stops
// the copy (an error); other faults are recorded in problems.
func (l *logCopy) add(item *portal.DataItem) error {
	next := l.size()
	if item.Index == nil || *item.Index != next {
		return fmt.Errorf("%w: entry %s arrived where %d was expected", errGap, indexString(item.Index), next)
	}
	if len(item.Leaf) == 0 {
		return fmt.Errorf("entry %d has no leaf bytes", next)
	}
	l.hashes = append(l.hashes, rfc6962.DefaultHasher.HashLeaf(item.Leaf))
	leaf, err := ParseLeaf(item.Leaf)
	if err != nil {
		l.problems = append(l.problems, fmt.Sprintf("entry %d: %v", next, err))
		if l.mapped {
			l.vmap.add(next, nil, fmt.Sprintf("entry %d: %v", next, err))
		}
		return nil
	}
	if l.mapped {
		l.vmap.add(next, &leaf, "")
	}
	if why := leafMismatch(&leaf, item, l.origin); why != "" {
		l.problems = append(l.problems, fmt.Sprintf("entry %d: %s", next, why))
	}
	if leaf.Kind == "MasterHash" || leaf.Kind == "Evidence" || leaf.Kind == "FederationUpdate" {
		if l.records == nil {
			l.records = map[uint64]Leaf{}
		}
		l.records[next] = leaf
	}
	return nil
}

// leafMismatch compares a decoded leaf with the item's own fields and the
// log's origin, and says what differs ("" if nothing).
func leafMismatch(leaf *Leaf, item *portal.DataItem, origin string) string {
	var diffs []string
	differs := func(field string, leafValue, itemValue any) {
		diffs = append(diffs, fmt.Sprintf("%s is %v in the leaf, %v in the item", field, leafValue, itemValue))
	}
	if leaf.Seq != *item.Index {
		differs("seq", leaf.Seq, *item.Index)
	}
	if item.Time != nil && !leaf.Time.Equal(*item.Time) {
		differs("time", leaf.Time, *item.Time)
	}
	for _, f := range []struct{ name, leaf, item string }{
		{"kind", leaf.Kind, item.Kind}, {"identifier", leaf.Identifier, item.Identifier},
		{"account", leaf.Account, item.Account}, {"origin", leaf.Origin, item.Origin},
	} {
		if f.leaf != f.item {
			differs(f.name, fmt.Sprintf("%q", f.leaf), fmt.Sprintf("%q", f.item))
		}
	}
	if leaf.Origin != origin {
		diffs = append(diffs, fmt.Sprintf("origin %q in a log of %s", leaf.Origin, origin))
	}
	if !samePayload(leaf.Payload, item) {
		diffs = append(diffs, "the payload differs from the item's")
	}
	return strings.Join(diffs, "; ")
}

// samePayload reports whether the item carries the leaf's payload: as
// Payload bytes, or as Entry JSON (which the server's encoder may have
// compacted and HTML-escaped).
func samePayload(payload []byte, item *portal.DataItem) bool {
	if len(item.Entry) == 0 {
		return bytes.Equal(payload, item.Payload)
	}
	if bytes.Equal(payload, item.Entry) {
		return true
	}
	norm := func(b []byte) []byte {
		var c, e bytes.Buffer
		if json.Compact(&c, b) != nil {
			return nil
		}
		json.HTMLEscape(&e, c.Bytes())
		return e.Bytes()
	}
	a := norm(payload)
	return a != nil && bytes.Equal(a, norm(item.Entry))
}

// cachePath is the cache file of origin's log at the node at nodeURL.
func cachePath(dir, nodeURL, origin string) string {
	return filepath.Join(dir, safeName(nodeURL), safeName(origin)+".jsonl")
}

// safeName maps s to a file name: its letters, digits, dots and dashes,
// then a short hash of s so that different strings never collide.
func safeName(s string) string {
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, s)
	h := sha256.Sum256([]byte(s))
	return clean + "-" + hex.EncodeToString(h[:4])
}

// loadCache reads the items cached by an earlier audit into l. A line that
// does not decode (cut short by an interrupted audit) and everything after
// it is dropped from the file.
func (l *logCopy) loadCache() error {
	f, err := os.OpenFile(l.cache, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var good int64
	for {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			break // the end, or a line cut short
		}
		if err != nil {
			return fmt.Errorf("cache: %w", err)
		}
		var item portal.DataItem
		if json.Unmarshal(line, &item) != nil || l.add(&item) != nil {
			break
		}
		good += int64(len(line))
	}
	if err := f.Truncate(good); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}

// fetch asks the node for the entries after those held, page by page with
// Transfer, until it has no more, appending them to the cache file.
func (l *logCopy) fetch(ctx context.Context, c *client.Client, progress Progress) error {
	var w *bufio.Writer
	if l.cache != "" {
		f, err := os.OpenFile(l.cache, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("cache: %w", err)
		}
		defer f.Close()
		w = bufio.NewWriterSize(f, 1<<20)
		defer w.Flush()
	}
	req := &portal.TransferRequest{From: l.size(), SearchConstraints: &portal.SearchConstraints{}}
	if l.replica {
		req.Origin = l.origin
	}
	for {
		resp, err := c.Transfer(ctx, req)
		if err != nil {
			return fmt.Errorf("Transfer from index %d: %w", l.size(), err)
		}
		for i := range resp.DataItems {
			if err := l.add(&resp.DataItems[i]); err != nil {
				return err
			}
			progress.Add()
			if w != nil {
				line, err := json.Marshal(resp.DataItems[i])
				if err != nil {
					return fmt.Errorf("cache: %w", err)
				}
				if _, err := w.Write(append(line, '\n')); err != nil {
					return fmt.Errorf("cache: %w", err)
				}
			}
		}
		if w != nil {
			if err := w.Flush(); err != nil {
				return fmt.Errorf("cache: %w", err)
			}
		}
		if resp.PageKey == "" || len(resp.DataItems) == 0 {
			return nil
		}
		req.SearchConstraints.PageKey = resp.PageKey
	}
}

// indexString names an item's index, which a node may have left out.
func indexString(i *uint64) string {
	if i == nil {
		return "without an index"
	}
	return fmt.Sprint(*i)
}

// mkdirFor creates the directory of a file.
func mkdirFor(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}

package vmap

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/intermesh/intermesh/log"
)

// TestFollowReadsARealLogInPages: Follow over a log of more records than a
// page gives the map of appending every leaf, and can stop anywhere.
func TestFollowReadsARealLogInPages(t *testing.T) {
	ctx := context.Background()
	l, err := log.Open(ctx, log.Options{Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Origin: "test/follow"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const n = log.MaxPageEntries + 123
	recs := make([]log.Record, n)
	for i := range recs {
		recs[i] = log.Record{Kind: kindProfile, Identifier: fmt.Sprintf("ID-%d", i%5000), Payload: []byte("x")}
	}
	for i := 0; i < n; i += 1000 {
		for _, r := range recs[i:min(i+1000, n)] {
			if _, err := l.Append(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := NewLogMap()
	for i := range uint64(n) {
		r, err := l.Get(i)
		if err != nil {
			t.Fatal(err)
		}
		if err := want.Append(r.MarshalLeaf()); err != nil {
			t.Fatal(err)
		}
	}
	got := NewLogMap()
	if err := got.Follow(ctx, l, 7); err != nil || got.Size() != 7 {
		t.Fatalf("Follow to 7: size %d, %v", got.Size(), err)
	}
	if err := got.Follow(ctx, l, n); err != nil {
		t.Fatal(err)
	}
	if got.Size() != n || got.Root() != want.Root() {
		t.Fatalf("Follow gave size %d root %x, want %d %x", got.Size(), got.Root(), n, want.Root())
	}
	if err := got.Follow(ctx, l, n+1); err == nil || !strings.Contains(err.Error(), "none from") {
		t.Fatalf("Follow past the log's end: %v", err)
	}
}

// pages is a Ranger serving fixed pages, for the refusals.
type pages []log.Page

func (p pages) Range(_ context.Context, c log.Constraints) (log.Page, error) {
	for _, pg := range p {
		if len(pg.Records) > 0 && pg.Records[0].Seq >= c.From {
			return pg, nil
		}
	}
	return log.Page{}, nil
}

func TestFollowRefusesRecordsOutOfPlace(t *testing.T) {
	rec := func(seq uint64) log.Record { return log.Record{Seq: seq, Kind: kindProfile, Identifier: "X"} }
	src := pages{{Records: []log.Record{rec(0), rec(2)}}}
	m := NewLogMap()
	if err := m.Follow(context.Background(), src, 3); err == nil || !strings.Contains(err.Error(), "gave record 2 where 1") {
		t.Fatalf("a skipped record: %v", err)
	}
	if m.Size() != 1 {
		t.Fatalf("the map covers %d records, want the 1 before the gap", m.Size())
	}
}

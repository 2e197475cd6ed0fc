package log

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// rangeBase is the time of record 0 in rangeTestLog; record i is i seconds
// later, except that records 10 and 11 share a time.
var rangeBase = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func rangeTime(seq int) time.Time {
	if seq == 11 {
		seq = 10
	}
	return rangeBase.Add(time.Duration(seq) * time.Second)
}

// rangeTestLog returns a log of n records whose times are rangeTime(seq).
func rangeTestLog(t *testing.T, n int) *Log {
	t.Helper()
	next := 0
	l := openTestLog(t, "", Options{Clock: func() time.Time { return rangeTime(next) }})
	for i := range n {
		next = i
		if _, err := l.Append(t.Context(), testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func seqsOf(recs []Record) []uint64 {
	var seqs []uint64
	for _, r := range recs {
		seqs = append(seqs, r.Seq)
	}
	return seqs
}

func seqRange(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

func TestRangeConstraints(t *testing.T) {
	l := rangeTestLog(t, 30)
	leafLen := len(func() []byte { r, _ := l.Get(0); return r.MarshalLeaf() }())
	tests := []struct {
		name     string
		c        Constraints
		want     []uint64
		wantMore bool
	}{
		{"no constraints give the whole log", Constraints{}, seqRange(0, 30), false},
		{"NotBefore starts at the first record at that time", Constraints{NotBefore: rangeTime(5)}, seqRange(5, 30), false},
		{"NotBefore between two records starts at the later one", Constraints{NotBefore: rangeTime(5).Add(time.Millisecond)}, seqRange(6, 30), false},
		{"NotBefore on a shared time starts at the first record of that time", Constraints{NotBefore: rangeTime(11)}, seqRange(10, 30), false},
		{"NotBefore before the log gives the whole log", Constraints{NotBefore: rangeBase.Add(-time.Hour)}, seqRange(0, 30), false},
		{"NotBefore after the log gives nothing", Constraints{NotBefore: rangeTime(30)}, nil, false},
		{"Before stops before the first record at that time", Constraints{Before: rangeTime(4)}, seqRange(0, 4), false},
		{"Before on a shared time leaves out every record of that time", Constraints{Before: rangeTime(10)}, seqRange(0, 10), false},
		{"NotBefore and Before select a window", Constraints{NotBefore: rangeTime(3), Before: rangeTime(7)}, seqRange(3, 7), false},
		{"Before not after NotBefore gives nothing", Constraints{NotBefore: rangeTime(7), Before: rangeTime(7)}, nil, false},
		{"MaxEntries ends a page early", Constraints{MaxEntries: 4}, seqRange(0, 4), true},
		{"MaxEntries equal to what is left needs no next page", Constraints{From: 26, MaxEntries: 4}, seqRange(26, 30), false},
		{"MaxBytes ends the page at the last record that fits", Constraints{MaxBytes: 3*leafLen + 1}, seqRange(0, 3), true},
		{"a page holds one record even if it alone exceeds MaxBytes", Constraints{MaxBytes: 1}, seqRange(0, 1), true},
		{"From starts mid-log", Constraints{From: 25}, seqRange(25, 30), false},
		{"From past the end gives nothing", Constraints{From: 99}, nil, false},
		{"From later than NotBefore wins", Constraints{From: 20, NotBefore: rangeTime(5)}, seqRange(20, 30), false},
		{"NotBefore later than From wins", Constraints{From: 2, NotBefore: rangeTime(5)}, seqRange(5, 30), false},
		{"a page key continues where it says", Constraints{PageKey: encodePageKey(17), MaxEntries: 3}, seqRange(17, 20), true},
		{"a page key at the end gives nothing", Constraints{PageKey: encodePageKey(30)}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := l.Range(t.Context(), tt.c)
			if err != nil {
				t.Fatal(err)
			}
			if got := seqsOf(page.Records); !slices.Equal(got, tt.want) {
				t.Errorf("seqs = %v, want %v", got, tt.want)
			}
			if (page.PageKey != "") != tt.wantMore {
				t.Errorf("PageKey = %q, want one: %v", page.PageKey, tt.wantMore)
			}
			for _, r := range page.Records {
				if want := testRecord(int(r.Seq)); r.Identifier != want.Identifier || !r.Time.Equal(rangeTime(int(r.Seq))) {
					t.Errorf("record %d = %+v, want %q at %s", r.Seq, r, want.Identifier, rangeTime(int(r.Seq)))
				}
			}
		})
	}
}

func TestRangePagesThroughTheWholeLog(t *testing.T) {
	l := rangeTestLog(t, 50)
	leafLen := len(func() []byte { r, _ := l.Get(0); return r.MarshalLeaf() }())
	tests := []struct {
		name string
		c    Constraints
		want []uint64
	}{
		{"with MaxEntries 1", Constraints{MaxEntries: 1}, seqRange(0, 50)},
		{"with MaxEntries 7", Constraints{MaxEntries: 7}, seqRange(0, 50)},
		{"with MaxBytes for two records", Constraints{MaxBytes: 2*leafLen + 3}, seqRange(0, 50)},
		{"with MaxBytes below one record", Constraints{MaxBytes: 1}, seqRange(0, 50)},
		{"with a time window and MaxEntries 4", Constraints{NotBefore: rangeTime(12), Before: rangeTime(31), MaxEntries: 4}, seqRange(12, 31)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint64
			c := tt.c
			for pages := 0; ; pages++ {
				if pages > 100 {
					t.Fatal("paging does not end")
				}
				page, err := l.Range(t.Context(), c)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, seqsOf(page.Records)...)
				if page.PageKey == "" {
					break
				}
				c.PageKey = page.PageKey
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("seqs = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRangePageSizeLimits(t *testing.T) {
	l := openTestLog(t, "", Options{})
	appendConcurrently(t, l, MaxPageEntries+10, 64)
	if t.Failed() {
		t.FailNow()
	}
	tests := []struct {
		name       string
		maxEntries int
		want       int
	}{
		{"no MaxEntries gives the default page size", 0, DefaultPageEntries},
		{"a negative MaxEntries gives the default page size", -5, DefaultPageEntries},
		{"MaxEntries above the default is honoured", DefaultPageEntries + 5, DefaultPageEntries + 5},
		{"MaxEntries above the maximum gives the maximum", MaxPageEntries + 5, MaxPageEntries},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := l.Range(t.Context(), Constraints{MaxEntries: tt.maxEntries})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Records) != tt.want || page.PageKey == "" {
				t.Errorf("page of %d records, PageKey %q; want %d and a next page", len(page.Records), page.PageKey, tt.want)
			}
		})
	}
}

func TestRangeRefusesInvalidPageKeys(t *testing.T) {
	l := rangeTestLog(t, 5)
	valid := encodePageKey(3)
	tests := []struct {
		name string
		key  string
	}{
		{"a word", "hello"},
		{"a key with one character changed", valid[:3] + string(valid[3]^1) + valid[4:]},
		{"a key cut short", valid[:len(valid)-1]},
		{"a key with a character added", valid + "A"},
		{"a key that is not base64url", "!!!!!!!!!!!!!!!!!!"},
		{"a key in standard base64 with padding", "AQAAAAAAAAADx+/+/w=="},
		{"a key past the end of the log", encodePageKey(6)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := l.Range(t.Context(), Constraints{PageKey: tt.key}); !errors.Is(err, ErrInvalidPageKey) {
				t.Errorf("Range(PageKey %q) error = %v, want ErrInvalidPageKey", tt.key, err)
			}
		})
	}
}

func TestRangeStopsWhenTheContextEnds(t *testing.T) {
	l := rangeTestLog(t, 3)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := l.Range(ctx, Constraints{From: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("Range error = %v, want context.Canceled", err)
	}
}

// appendConcurrently appends n records from the given number of goroutines.
func appendConcurrently(t testing.TB, l *Log, n, goroutines int) {
	t.Helper()
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := g; i < n; i += goroutines {
				if _, err := l.Append(context.Background(), testRecord(i)); err != nil {
					t.Errorf("append %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestRangeWhileAppending(t *testing.T) {
	l := openTestLog(t, "", Options{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		appendConcurrently(t, l, 4000, 32)
	}()
	var failure error
	for reading := true; reading && failure == nil; {
		select {
		case <-done:
			reading = false
		default:
		}
		size := l.Size()
		from := max(size, 5) - 5
		page, err := l.Range(t.Context(), Constraints{From: from})
		if err != nil {
			failure = fmt.Errorf("Range from %d while appending: %w", from, err)
		} else if uint64(len(page.Records)) < size-from {
			failure = fmt.Errorf("Range from %d gave %d records, want at least %d", from, len(page.Records), size-from)
		}
	}
	<-done
	if failure != nil {
		t.Fatal(failure)
	}
}

func TestTheLargestLeafReadsBackAndALargerOneIsRefused(t *testing.T) {
	l := openTestLog(t, "", Options{})
	rec := testRecord(0)
	rec.Payload = nil
	rec.Origin = l.Origin()
	rec.Payload = make([]byte, MaxLeafLen-len(rec.MarshalLeaf()))
	for i := range rec.Payload {
		rec.Payload[i] = byte(i * 7)
	}
	got, err := l.Append(t.Context(), rec)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := l.Get(got.Seq)
	if err != nil || !sameRecord(stored, got) || len(stored.MarshalLeaf()) != MaxLeafLen {
		t.Fatalf("Get = %v; the %d-byte leaf did not read back", err, MaxLeafLen)
	}
	rec.Payload = append(rec.Payload, 0)
	if _, err := l.Append(t.Context(), rec); !errors.Is(err, ErrInvalidRecord) || !strings.Contains(err.Error(), "tlog-tiles") {
		t.Fatalf("appending a %d-byte leaf: %v, want ErrInvalidRecord naming the tlog-tiles limit", MaxLeafLen+1, err)
	}
	if l.Size() != 1 {
		t.Fatalf("log size %d after a refused append, want 1", l.Size())
	}
}

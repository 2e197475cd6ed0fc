package intermesh

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/intermesh/intermesh/log"
)

// TestTransferReadsStopAtThePageLimitsAskedFor runs a member's key in a
// rogue host whose Transfer server ignores the limits of the request: it
// sends more records than asked, a record larger than the bytes asked, or
// records without end. The honest member's client fails each page as soon
// as it exceeds the limits it asked for, having read at most the limits
// (plus one frame header), and keeps nothing of it.
func TestTransferReadsStopAtThePageLimitsAskedFor(t *testing.T) {
	t.Parallel()
	fed, keys := testFederation(t, 6)
	origin := fed.Members[5].Origin
	a := startNode(t, fed, keys, 0, nil, nil, nil)
	small := testRecords(origin, 0, 2000, 10)
	big := testRecords(origin, 1, 1, 300)[0]
	cases := []struct {
		name       string
		maxEntries int
		maxBytes   int
		frames     func(i uint64) ([]byte, bool) // the i-th record frame, false to end the page
		want       string
	}{
		{"more records than asked", 10, 1 << 20, func(i uint64) ([]byte, bool) { return small[i].MarshalLeaf(), i < 1000 }, "limit 0"},
		{"a record beyond the bytes asked", 10, 200, func(i uint64) ([]byte, bool) {
			if i == 1 {
				return big.MarshalLeaf(), true
			}
			return small[i].MarshalLeaf(), i < 2
		}, "limit"},
		{"a frame larger than any leaf", 10, 1 << 20, func(i uint64) ([]byte, bool) {
			return make([]byte, log.MaxLeafLen+1), true
		}, "limit"},
		{"records without end", 10, 1 << 20, func(i uint64) ([]byte, bool) { return small[i%2000].MarshalLeaf(), true }, "limit 0"},
	}
	for i, c := range cases {
		rh := rogueHost(t, keys[1+i]) // a member of its own: no connection left over from another case
		sent := make(chan int, 1)
		rh.SetStreamHandler(TransferProtocol, func(s network.Stream) {
			n, err := serveFrames(s, c.frames)
			sent <- n
			if err != nil {
				s.Reset()
				return
			}
			s.Close()
		})
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		if err := a.AddPeer(ctx, peer.AddrInfo{ID: rh.ID(), Addrs: rh.Addrs()}); err != nil {
			t.Fatal(err)
		}
		page, err := a.fetchPage(ctx, rh.ID(), origin, 0, c.maxEntries, c.maxBytes)
		cancel()
		if err == nil || !errors.Is(err, ErrTransfer) || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: page of %d records, err %v; want a page-limit error", c.name, len(page.records), err)
		}
		if page.records != nil {
			t.Fatalf("%s: %d records kept from a failed page", c.name, len(page.records))
		}
		rh.Close()
		<-sent
	}
}

// serveFrames answers a Transfer request with a header claiming a huge log
// and the frames given, whatever the request asked; it returns how many
// record frames it wrote.
func serveFrames(s network.Stream, frames func(i uint64) ([]byte, bool)) (int, error) {
	r := bufio.NewReader(s)
	if _, err := readFrame(r, maxTransferFrame); err != nil {
		return 0, err
	}
	w := bufio.NewWriter(s)
	hb, err := json.Marshal(transferHeader{Size: 1 << 40})
	if err != nil {
		return 0, err
	}
	if err := writeFrame(w, hb); err != nil {
		return 0, err
	}
	n := 0
	for j := uint64(0); ; j++ {
		f, more := frames(j)
		if !more {
			if err := writeFrame(w, nil); err != nil {
				return n, err
			}
			return n, w.Flush()
		}
		if err := writeFrame(w, f); err != nil {
			return n, err
		}
		if err := w.Flush(); err != nil {
			return n, err
		}
		n++
	}
}

// TestAMemberHoldingTransferStreamsIsServedAtMostTheCap: a member's key in
// a rogue host opens maxTransferStreams+2 Transfer streams to a member and
// holds them (it sends half a request and never reads). The member serves
// maxTransferStreams of them at once and answers the other two at once
// with a "busy" header, counted in intermesh_transfer_refused_total;
// meanwhile an honest member's Transfer page completes. Once the rogue
// resets its streams, nothing of them is held.
func TestAMemberHoldingTransferStreamsIsServedAtMostTheCap(t *testing.T) {
	t.Parallel()
	fed, keys := testFederation(t, 3)
	la, lb := openTestLog(t, fed.Members[0].Origin), openTestLog(t, fed.Members[1].Origin)
	for i := range 50 {
		if _, err := la.Append(t.Context(), log.Record{Kind: "Profile", Identifier: fmt.Sprint(i), Payload: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := startReplicating(t, fed, keys, 0, la)
	b, _ := startReplicating(t, fed, keys, 1, lb)
	waitFor(t, 5*time.Second, "the Transfer server started", func() bool {
		return slices.Contains(a.Host().Mux().Protocols(), TransferProtocol)
	})

	rh := rogueHost(t, keys[2])
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := rh.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	const opened = maxTransferStreams + 2
	var (
		mu       sync.Mutex
		answered []string // the header errors of the streams answered
		streams  []network.Stream
		readers  sync.WaitGroup
	)
	for range opened {
		s, err := rh.NewStream(ctx, a.ID(), TransferProtocol)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, s)
		if _, err := s.Write([]byte{0, 0}); err != nil { // half a frame length
			t.Fatal(err)
		}
		readers.Go(func() {
			hb, err := readFrame(s, maxTransferFrame)
			if err != nil {
				return // reset by the rogue at the end
			}
			var h transferHeader
			_ = json.Unmarshal(hb, &h)
			mu.Lock()
			answered = append(answered, h.Error)
			mu.Unlock()
		})
	}
	t.Cleanup(func() {
		for _, s := range streams {
			s.Reset()
		}
		readers.Wait()
	})
	waitFor(t, 10*time.Second, "two streams refused", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(answered) >= opened-maxTransferStreams
	})
	waitFor(t, 5*time.Second, "the cap served", func() bool { return a.repl.srv.serving(rh.ID()) == maxTransferStreams })
	mu.Lock()
	got := slices.Clone(answered)
	mu.Unlock()
	if len(got) != opened-maxTransferStreams || !strings.HasPrefix(got[0], "busy") || !strings.HasPrefix(got[1], "busy") {
		t.Fatalf("streams answered with %q, want two busy", got)
	}
	refused := a.metrics.xferRefused.WithLabelValues(fed.Members[2].Origin, "busy")
	if n := counterValue(t, refused); n != opened-maxTransferStreams {
		t.Errorf("intermesh_transfer_refused_total = %v, want %d", n, opened-maxTransferStreams)
	}

	connect(t, []*node{{Mesh: a}, {Mesh: b}})
	page, err := b.fetchPage(ctx, a.ID(), fed.Members[0].Origin, 0, 100, 1<<20)
	if err != nil {
		t.Fatalf("an honest member's Transfer while the rogue holds its streams: %v", err)
	}
	if len(page.records) != 50 {
		t.Fatalf("an honest member's Transfer page holds %d records, want 50", len(page.records))
	}
	if a.repl.srv.serving(rh.ID()) != maxTransferStreams {
		t.Fatalf("%d of the rogue's streams served, want %d", a.repl.srv.serving(rh.ID()), maxTransferStreams)
	}

	for _, s := range streams {
		s.Reset()
	}
	waitFor(t, 5*time.Second, "the rogue's streams released", func() bool { return a.repl.srv.serving(rh.ID()) == 0 })
}

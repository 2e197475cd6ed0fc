package intermesh

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"strings"
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

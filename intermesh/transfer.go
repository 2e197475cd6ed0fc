package intermesh

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/intermesh/intermesh/log"
)

// TransferProtocol is the libp2p stream protocol that pages records of a log
// (the server's own, or a replica it holds) to a federation member.
//
// One stream carries one page. Every frame is a 4-byte big-endian length
// followed by that many bytes. The client writes one request frame, JSON:
//
//	{"origin":"testnet/node2","from":1200,"max_entries":20000,"max_bytes":8388608}
//
// and closes its write side. The server answers with a header frame, JSON,
// giving how many records of origin it holds (or why it cannot serve):
//
//	{"size":5310}
//	{"size":0,"error":"no replica of \"testnet/node9\""}
//
// then one frame per record, in sequence order from "from": the record's
// leaf encoding (log.Record.MarshalLeaf), at most max_entries records and
// (beyond the first) max_bytes bytes of leaves, then an empty frame that ends
// the page. Fewer records than asked with from+count < size just means the
// page limits were reached: ask again from from+count. The client holds the
// server to the limits it asked for: a frame that would exceed them fails
// the page before it is read, so a server cannot make it read more
// (records past max_entries, a leaf past max_bytes, frames without end).
// Only federation
// members can open streams at all (the connection gater), and both sides set
// a deadline on the whole stream, so a stalled peer (one that never sends
// its request, or never reads the page) holds a stream at most
// transferTimeout.
//
// The server serves at most maxTransferStreams streams of one member at
// once. A stream beyond that is answered at once, before its request is
// read, with a header frame whose error starts with "busy" and closed:
//
//	{"size":0,"error":"busy: 4 Transfer streams of this member are served already"}
//
// The client opens at most clientTransferStreams streams to a member at
// once, below that cap, so an honest member is never refused.
const TransferProtocol = protocol.ID("/intermesh/transfer/1")

// Transfer limits.
const (
	transferTimeout      = 30 * time.Second
	maxTransferFrame     = 4 << 10        // request and header frames
	maxLeafFrame         = log.MaxLeafLen // a record's leaf encoding
	defaultTransferCount = 20000
	maxTransferCount     = 100000
	defaultTransferBytes = 8 << 20
	maxTransferBytes     = 32 << 20

	// maxTransferStreams is how many Transfer streams the server serves
	// to one member at once; more are refused ("busy").
	maxTransferStreams = 4
	// clientTransferStreams is how many Transfer streams the client opens
	// to one member at once: below maxTransferStreams, with room for a
	// stream the server is still closing when the next one arrives.
	clientTransferStreams = 2
	// refusalTimeout bounds the answer to a refused stream.
	refusalTimeout = time.Second
	// refusalLogInterval is how often refusals of one member are logged at
	// most; the metric counts them all.
	refusalLogInterval = time.Minute
)

// ErrTransfer reports a Transfer page that failed or did not hold the
// records asked for.
var ErrTransfer = errors.New("intermesh: transfer")

// errPageLimits marks a page whose server broke the protocol: a frame over
// the limits asked for, or records past them. The server is penalized
// (pullAny).
var errPageLimits = errors.New("page exceeds the limits asked for")

type transferRequest struct {
	Origin     string `json:"origin"`
	From       uint64 `json:"from"`
	MaxEntries int    `json:"max_entries"`
	MaxBytes   int    `json:"max_bytes"`
}

type transferHeader struct {
	Size  uint64 `json:"size"`
	Error string `json:"error,omitempty"`
}

// transferPage is what a Transfer stream returned.
type transferPage struct {
	records []log.Record
	size    uint64 // records of the origin the server holds
	bytes   int
}

func writeFrame(w io.Writer, b []byte) error {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}

// readFrame reads one frame of at most limit bytes; a longer one is an
// error before any of it is read.
func readFrame(r io.Reader, limit int) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint32(n[:])
	if uint64(size) > uint64(limit) {
		return nil, fmt.Errorf("%w: frame of %d bytes, limit %d", errPageLimits, size, limit)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// transferServer serves TransferProtocol from the node's log and replicas,
// at most maxTransferStreams streams of each member at once. Its handlers
// run on libp2p's goroutines; stop waits for them.
type transferServer struct {
	m  *Mesh
	l  *log.Log
	mu sync.Mutex
	wg sync.WaitGroup
	on bool

	active map[peer.ID]int       // streams being served, by member
	logged map[peer.ID]time.Time // when a refusal of the member was last logged
}

// start registers the handler.
func (t *transferServer) start() {
	t.mu.Lock()
	t.on = true
	if t.active == nil {
		t.active = map[peer.ID]int{}
		t.logged = map[peer.ID]time.Time{}
	}
	t.mu.Unlock()
	t.m.host.SetStreamHandler(TransferProtocol, t.handle)
}

// serving returns how many streams of p are being served now.
func (t *transferServer) serving(p peer.ID) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.active[p]
}

// stop removes the handler and waits for the streams being served.
func (t *transferServer) stop() {
	t.m.host.RemoveStreamHandler(TransferProtocol)
	t.mu.Lock()
	t.on = false
	t.mu.Unlock()
	t.wg.Wait()
}

// handle serves a stream, or refuses it if its member already has
// maxTransferStreams streams being served.
func (t *transferServer) handle(s network.Stream) {
	p := s.Conn().RemotePeer()
	t.mu.Lock()
	if !t.on {
		t.mu.Unlock()
		s.Reset()
		return
	}
	if t.active[p] >= maxTransferStreams {
		logIt := time.Since(t.logged[p]) >= refusalLogInterval
		if logIt {
			t.logged[p] = time.Now()
		}
		t.mu.Unlock()
		t.refuse(s, logIt)
		return
	}
	t.active[p]++
	t.wg.Add(1)
	t.mu.Unlock()
	defer t.wg.Done()
	err := t.serve(s)
	t.mu.Lock()
	if t.active[p]--; t.active[p] <= 0 {
		delete(t.active, p)
	}
	t.mu.Unlock()
	if err != nil {
		t.m.log.Debug("transfer stream failed", "peer", p, "err", err)
		s.Reset()
		return
	}
	s.Close()
}

// refuse answers a stream over the member's cap with a "busy" header,
// without reading its request, and closes it; it counts the refusal in
// intermesh_transfer_refused_total and, if logIt, logs it.
func (t *transferServer) refuse(s network.Stream, logIt bool) {
	p := s.Conn().RemotePeer()
	member := t.m.byPeer[p]
	t.m.metrics.xferRefused.WithLabelValues(member, "busy").Inc()
	if logIt {
		t.m.log.Warn("a member holds the most Transfer streams served at once; refusing more (logged once a minute)",
			"member", member, "limit", maxTransferStreams)
	}
	hb, err := json.Marshal(transferHeader{Error: fmt.Sprintf("busy: %d Transfer streams of this member are served already", maxTransferStreams)})
	if err != nil || s.SetDeadline(time.Now().Add(refusalTimeout)) != nil || writeFrame(s, hb) != nil {
		s.Reset()
		return
	}
	s.Close()
}

func (t *transferServer) serve(s network.Stream) error {
	if _, ok := t.m.byPeer[s.Conn().RemotePeer()]; !ok {
		return errors.New("not a member") // unreachable behind the gater
	}
	if err := s.SetDeadline(time.Now().Add(transferTimeout)); err != nil {
		return err
	}
	b, err := readFrame(s, maxTransferFrame)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	var req transferRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	count, limit := req.MaxEntries, req.MaxBytes
	if count <= 0 {
		count = defaultTransferCount
	}
	if limit <= 0 {
		limit = defaultTransferBytes
	}
	count, limit = min(count, maxTransferCount), min(limit, maxTransferBytes)
	w := bufio.NewWriterSize(s, 64<<10)
	rangeOf, size, why := t.source(req.Origin)
	hb, err := json.Marshal(transferHeader{Size: size, Error: why})
	if err != nil {
		return err
	}
	if err := writeFrame(w, hb); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), transferTimeout)
	defer cancel()
	sent, bytes, from := 0, 0, req.From
	for rangeOf != nil && sent < count && bytes < limit && from < size {
		page, err := rangeOf(ctx, log.Constraints{From: from, MaxEntries: min(count-sent, log.MaxPageEntries)})
		if err != nil {
			return err
		}
		if len(page.Records) == 0 {
			break
		}
		for i := range page.Records {
			leaf := page.Records[i].MarshalLeaf()
			if sent > 0 && bytes+len(leaf) > limit {
				count = sent // stop here
				break
			}
			if err := writeFrame(w, leaf); err != nil {
				return err
			}
			sent++
			bytes += len(leaf)
			from = page.Records[i].Seq + 1
		}
	}
	if err := writeFrame(w, nil); err != nil {
		return err
	}
	t.m.metrics.transfer("served", sent, bytes)
	return w.Flush()
}

// source returns how to read origin's records, how many there are, or why
// this node cannot serve them.
func (t *transferServer) source(origin string) (func(context.Context, log.Constraints) (log.Page, error), uint64, string) {
	if origin == t.l.Origin() {
		return t.l.Range, t.l.Size(), ""
	}
	if !t.l.HasReplica(origin) {
		return nil, 0, fmt.Sprintf("no replica of %q", origin)
	}
	r, err := t.l.Replica(origin)
	if err != nil {
		return nil, 0, err.Error()
	}
	return r.Range, r.Size(), ""
}

// fetchPage asks peer p for a page of origin's records from from, and
// checks that it holds exactly the records asked for, in order, within the
// limits asked for (readRecords). maxEntries and maxBytes must be positive.
//
// At most clientTransferStreams pages are fetched from one member at once;
// fetchPage waits for its turn (or ctx) before opening the stream.
func (m *Mesh) fetchPage(ctx context.Context, p peer.ID, origin string, from uint64, maxEntries, maxBytes int) (transferPage, error) {
	release, err := m.xferSlots.acquire(ctx, p)
	if err != nil {
		return transferPage{}, fmt.Errorf("%w: waiting for a stream to %s: %w", ErrTransfer, m.byPeer[p], err)
	}
	defer release()
	ctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	s, err := m.host.NewStream(ctx, p, TransferProtocol)
	if err != nil {
		return transferPage{}, fmt.Errorf("%w: open stream to %s: %w", ErrTransfer, m.byPeer[p], err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := s.SetDeadline(dl); err != nil {
			s.Reset()
			return transferPage{}, fmt.Errorf("%w: %w", ErrTransfer, err)
		}
	}
	page, err := readPage(s, transferRequest{Origin: origin, From: from, MaxEntries: maxEntries, MaxBytes: maxBytes})
	if err != nil {
		s.Reset()
		return transferPage{}, fmt.Errorf("%w: %s from %s at %d: %w", ErrTransfer, origin, m.byPeer[p], from, err)
	}
	m.metrics.transfer("fetched", len(page.records), page.bytes)
	return page, nil
}

// transferSlots bounds the Transfer streams the client has open to each
// member at once to clientTransferStreams. The zero value is ready to use.
type transferSlots struct {
	mu    sync.Mutex
	slots map[peer.ID]chan struct{}
}

// acquire waits until a stream to p may be opened, or ctx ends; call
// release when the stream is done.
func (ts *transferSlots) acquire(ctx context.Context, p peer.ID) (release func(), err error) {
	ts.mu.Lock()
	if ts.slots == nil {
		ts.slots = map[peer.ID]chan struct{}{}
	}
	c := ts.slots[p]
	if c == nil {
		c = make(chan struct{}, clientTransferStreams)
		ts.slots[p] = c
	}
	ts.mu.Unlock()
	select {
	case c <- struct{}{}:
		return func() { <-c }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// readPage writes req on s and reads the page it answers.
func readPage(s network.Stream, req transferRequest) (transferPage, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return transferPage{}, err
	}
	if err := writeFrame(s, b); err != nil {
		return transferPage{}, fmt.Errorf("request: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		return transferPage{}, err
	}
	r := bufio.NewReaderSize(s, 64<<10)
	hb, err := readFrame(r, maxTransferFrame)
	if err != nil {
		return transferPage{}, fmt.Errorf("header: %w", err)
	}
	var h transferHeader
	if err := json.Unmarshal(hb, &h); err != nil {
		return transferPage{}, fmt.Errorf("header: %w", err)
	}
	if h.Error != "" {
		return transferPage{}, errors.New(h.Error)
	}
	return readRecords(r, req, h.Size)
}

// readRecords reads the record frames of a page answering req, up to the
// empty frame that ends it, and holds the server to the page limits asked
// for: at most req.MaxEntries records (each of the origin, numbered from
// req.From) and, beyond the first, at most req.MaxBytes bytes of leaves. A
// frame that would exceed them fails the page before it is read, so a
// server that sends endless or oversized frames costs at most the limits
// asked for (plus one leaf of at most maxLeafFrame bytes).
func readRecords(r io.Reader, req transferRequest, size uint64) (transferPage, error) {
	page := transferPage{size: size}
	next := req.From
	for {
		limit := maxLeafFrame
		if len(page.records) > 0 {
			limit = min(limit, max(0, req.MaxBytes-page.bytes))
		}
		if len(page.records) >= req.MaxEntries {
			limit = 0 // only the empty frame that ends the page
		}
		leaf, err := readFrame(r, limit)
		if err != nil {
			return transferPage{}, fmt.Errorf("record %d (page limits %d records, %d bytes): %w", next, req.MaxEntries, req.MaxBytes, err)
		}
		if len(leaf) == 0 {
			return page, nil
		}
		rec, err := log.UnmarshalLeaf(leaf)
		if err != nil {
			return transferPage{}, fmt.Errorf("record %d: %w", next, err)
		}
		if rec.Seq != next || rec.Origin != req.Origin {
			return transferPage{}, fmt.Errorf("got record %d of %q, want %d of %q", rec.Seq, rec.Origin, next, req.Origin)
		}
		page.records = append(page.records, rec)
		page.bytes += len(leaf)
		next++
	}
}

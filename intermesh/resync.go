package intermesh

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ResyncProtocol is the stream on which a member hands another member,
// each time that member joins its gossip again, the messages of the rounds
// still open: the checkpoints it holds and its own latest vote of each.
//
// Gossipsub delivers a message to the peers connected when it is published
// and, for a few heartbeats after, to those that ask for it; a member whose
// connection was closed around a round's close (restarted, partitioned, or
// reconnected by gossipWatchdog) missed that round's checkpoints for good,
// and the others missed its own, so that the round could end without a
// quorum although every member was up again before the vote deadline. A
// resync stream is a sequence of frames, each a kind byte (resyncCheckpoint
// or resyncVote), a 4-byte big-endian length and the message as gossiped;
// the receiver checks each exactly as a gossiped message of its topic.
const ResyncProtocol = protocol.ID("/intermesh/resync/1")

// Frame kinds of a resync stream.
const (
	resyncCheckpoint = 1
	resyncVote       = 2
)

// resyncTimeout bounds a resync stream, either side; resyncEvery is the
// least time between two resyncs sent to one member.
const (
	resyncTimeout = 10 * time.Second
	resyncEvery   = time.Second
)

// maxResyncFrames is how many frames a resync stream may carry: a
// checkpoint of every member and a vote for each round the window holds.
func (m *Mesh) maxResyncFrames() int {
	return int(m.cfg.RoundWindow+3) * (len(m.members) + 1)
}

// resyncer sends and serves resync streams.
type resyncer struct {
	m       *Mesh
	mu      sync.Mutex
	serving map[peer.ID]bool      // a stream of the member is being read
	sent    map[peer.ID]time.Time // when a resync was last sent to the member
	closed  bool                  // run has returned: serve nothing more
	wg      sync.WaitGroup        // streams being sent or read
}

func newResyncer(m *Mesh) *resyncer {
	return &resyncer{m: m, serving: map[peer.ID]bool{}, sent: map[peer.ID]time.Time{}}
}

// run registers the handler, sends a resync to each member that joins the
// checkpoint topic until ctx ends, then removes the handler and waits for
// the streams in progress.
func (r *resyncer) run(ctx context.Context) {
	h, err := r.m.topics.checkpoint.EventHandler()
	if err != nil {
		r.m.log.Error("resync: topic events", "err", err)
		return
	}
	defer h.Cancel()
	r.m.host.SetStreamHandler(ResyncProtocol, func(s network.Stream) { r.serve(ctx, s) })
	defer func() {
		r.m.host.RemoveStreamHandler(ResyncProtocol)
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		r.wg.Wait()
	}()
	for {
		ev, err := h.NextPeerEvent(ctx)
		if err != nil {
			return
		}
		if ev.Type != pubsub.PeerJoin {
			continue
		}
		if _, ok := r.m.byPeer[ev.Peer]; !ok || ev.Peer == r.m.host.ID() || !r.due(ev.Peer) {
			continue
		}
		r.wg.Go(func() { r.send(ctx, ev.Peer) })
	}
}

// due reports whether a resync may be sent to p now, and if so notes it.
func (r *resyncer) due(p peer.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.sent[p]) < resyncEvery {
		return false
	}
	r.sent[p] = time.Now()
	return true
}

// errBreaksRules marks a resync stream that breaks the protocol's rules (as
// opposed to one cut short), which costs its sender.
var errBreaksRules = errors.New("breaks the resync rules")

// frame is one message of a resync stream.
type frame struct {
	kind byte
	data []byte
}

// openRounds returns the frames of the rounds whose commit deadline has not
// passed: every checkpoint held, then this node's latest vote of each.
func (st *state) openRounds(now time.Time) []frame {
	var cps, votes []frame
	for _, rs := range st.rounds {
		if !now.Before(rs.close.Add(st.m.cfg.CommitDeadline)) {
			continue
		}
		for _, hc := range rs.held {
			cps = append(cps, frame{resyncCheckpoint, hc.note})
		}
		if rs.own == nil {
			continue
		}
		if data, err := rs.own.wire([]string{st.m.self.origin}); err == nil {
			votes = append(votes, frame{resyncVote, data})
		}
	}
	return append(cps, votes...)
}

// send writes the open rounds' messages to member p.
func (r *resyncer) send(ctx context.Context, p peer.ID) {
	var frames []frame
	if err := r.m.do(ctx, func(st *state) { frames = st.openRounds(r.m.cfg.Now()) }); err != nil || len(frames) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, resyncTimeout)
	defer cancel()
	s, err := r.m.host.NewStream(ctx, p, ResyncProtocol)
	if err != nil {
		r.m.log.Debug("resync: open stream", "member", r.m.byPeer[p], "err", err)
		return
	}
	_ = s.SetDeadline(time.Now().Add(resyncTimeout))
	w := bufio.NewWriter(s)
	for _, f := range frames {
		var hdr [5]byte
		hdr[0] = f.kind
		binary.BigEndian.PutUint32(hdr[1:], uint32(len(f.data)))
		w.Write(hdr[:])
		w.Write(f.data)
	}
	if err := w.Flush(); err != nil {
		s.Reset()
		r.m.log.Debug("resync: send", "member", r.m.byPeer[p], "err", err)
		return
	}
	_ = s.Close()
	r.m.metrics.resyncs.WithLabelValues("sent").Inc()
}

// serve reads a member's resync stream and offers each message to the
// round loop as if gossiped. A second stream of a member whose stream is
// being read is reset. A frame of an unknown kind, empty or over its
// topic's size limit, more than maxResyncFrames frames, or a message its
// topic's validator rejects end the stream and cost the sender
// penaltyBadRelay; a stream cut short or too slow ends free. A message
// already held costs nothing: that is most of them.
func (r *resyncer) serve(ctx context.Context, s network.Stream) {
	p := s.Conn().RemotePeer()
	if !r.begin(p) {
		s.Reset()
		return
	}
	defer r.end(p)
	_ = s.SetDeadline(time.Now().Add(resyncTimeout))
	rd := bufio.NewReader(s)
	for n := 0; ; n++ {
		f, err := r.readFrame(rd, n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if errors.Is(err, errBreaksRules) {
				r.m.penalize(p, penaltyBadRelay)
			}
			r.m.log.Debug("resync: refused", "member", r.m.byPeer[p], "err", err)
			s.Reset()
			return
		}
		if v := r.check(ctx, p, f); v.result == pubsub.ValidationReject {
			r.m.penalize(p, penaltyBadRelay)
			r.m.log.Debug("resync: message rejected", "member", r.m.byPeer[p], "reason", v.reason)
			s.Reset()
			return
		}
	}
	_ = s.Close()
	r.m.metrics.resyncs.WithLabelValues("received").Inc()
}

// begin notes that a stream of p is being read, or reports false if one is
// or run has returned.
func (r *resyncer) begin(p peer.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.serving[p] || r.closed {
		return false
	}
	r.serving[p] = true
	r.wg.Add(1)
	return true
}

// end notes that the stream of p begin admitted has been read.
func (r *resyncer) end(p peer.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.serving, p)
	r.wg.Done()
}

// readFrame reads frame n of a stream: io.EOF at a clean end, an error
// wrapping errBreaksRules for a frame the rules refuse.
func (r *resyncer) readFrame(rd *bufio.Reader, n int) (frame, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(rd, hdr[:1]); err != nil {
		return frame{}, err
	}
	if n >= r.m.maxResyncFrames() {
		return frame{}, fmt.Errorf("%w: more than %d frames", errBreaksRules, r.m.maxResyncFrames())
	}
	if _, err := io.ReadFull(rd, hdr[1:]); err != nil {
		return frame{}, fmt.Errorf("frame %d header: %w", n, err)
	}
	var limit int
	switch hdr[0] {
	case resyncCheckpoint:
		limit = maxCheckpointSize
	case resyncVote:
		limit = r.m.maxVoteSize
	default:
		return frame{}, fmt.Errorf("%w: frame %d of unknown kind %d", errBreaksRules, n, hdr[0])
	}
	size := binary.BigEndian.Uint32(hdr[1:])
	if size == 0 || size > uint32(limit) {
		return frame{}, fmt.Errorf("%w: frame %d of %d bytes, limit %d", errBreaksRules, n, size, limit)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(rd, data); err != nil {
		return frame{}, fmt.Errorf("frame %d: %w", n, err)
	}
	return frame{hdr[0], data}, nil
}

// check offers a frame's message to its topic's checks, and counts the
// verdict under that topic.
func (r *resyncer) check(ctx context.Context, p peer.ID, f frame) verdict {
	var v verdict
	topic := topicCheckpoint
	if f.kind == resyncVote {
		topic = topicMaster
		v = r.m.checkVoteMsg(ctx, p, f.data)
	} else {
		v = r.m.checkCheckpointMsg(ctx, p, f.data)
	}
	r.m.metrics.verdict(topic, v.result)
	return v
}

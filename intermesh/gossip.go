package intermesh

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/intermesh/intermesh/config"
)

// Topic kinds; the topic names are /intermesh/<federation>/<kind>/1.
const (
	topicCheckpoint = "checkpoint"
	topicMaster     = "master"
	topicRecords    = "records"
	topicEvidence   = "evidence"
)

// topicKinds are the topics every member joins.
func topicKinds() []string {
	return []string{topicCheckpoint, topicMaster, topicRecords, topicEvidence}
}

// Gossip limits. Checkpoint notes are a few hundred bytes; a vote carries
// one note plus the origin and hash of each checkpoint it covers (see the
// package comment).
const (
	maxCheckpointSize = 4 << 10
	maxRecordsSize    = 1<<20 - 4<<10 // under pubsub's 1 MiB message limit
	queueSize         = 1024          // per-peer outbound and validation queues
)

// maxVoteSize is the size limit of a vote of a federation: 8 KiB for the
// note and the framing, and per member a cover of its origin (at most 6
// bytes per byte, JSON-escaped) and base64 hash.
func maxVoteSize(fed *config.Federation) int {
	n := 8 << 10
	for _, fm := range fed.Members {
		n += 6*len(fm.Origin) + 96
	}
	return n
}

// TopicName returns the gossip topic of a kind ("checkpoint", "master",
// "records" or "evidence") in a federation: /intermesh/<federation>/<kind>/1.
func TopicName(federation, kind string) string {
	return fmt.Sprintf("/intermesh/%s/%s/1", federation, kind)
}

// topics are the joined gossip topics and their relay registrations.
type topics struct {
	checkpoint, master, records, evidence *pubsub.Topic
	relays                                []pubsub.RelayCancelFunc
}

func (t *topics) byKind(kind string) *pubsub.Topic {
	switch kind {
	case topicCheckpoint:
		return t.checkpoint
	case topicMaster:
		return t.master
	case topicEvidence:
		return t.evidence
	}
	return t.records
}

func (t *topics) close() {
	for _, cancel := range t.relays {
		cancel()
	}
	t.relays = nil
}

// messageID is the content-derived message ID: our payloads carry their
// own signatures, so pubsub neither signs nor numbers messages, and two
// copies of the same payload are one message.
func messageID(m *pb.Message) string {
	h := sha256.Sum256(m.Data)
	return string(h[:])
}

// startGossip starts gossipsub on the host, registers a validator on each
// topic and joins them. The node relays (rather than subscribes): the
// validators hand every valid message to the round loop, so there is
// nothing left to read from a subscription.
func (m *Mesh) startGossip() error {
	ctx, cancel := context.WithCancel(context.Background())
	m.psStop = cancel
	names, kinds := map[string]string{}, map[string]string{}
	for _, k := range topicKinds() {
		names[k] = TopicName(m.fed.Name, k)
		kinds[names[k]] = k
	}
	ps, err := pubsub.NewGossipSub(ctx, m.host,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(messageID),
		pubsub.WithPeerOutboundQueueSize(queueSize),
		pubsub.WithValidateQueueSize(queueSize),
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerExchange(false),
		pubsub.WithPeerFilter(func(p peer.ID, _ string) bool { _, ok := m.byPeer[p]; return ok }),
		pubsub.WithPeerScore(scoreParams(m, names), scoreThresholds()),
		pubsub.WithPeerScoreInspect(m.inspectScores, scoreInspect),
		pubsub.WithRawTracer(gossipTracer{mt: m.metrics, kinds: kinds}),
		pubsub.WithLogger(slog.New(demoted{m.log.Handler()}).With("component", "gossipsub")),
	)
	if err != nil {
		return fmt.Errorf("intermesh: gossipsub: %w", err)
	}
	m.ps = ps
	validators := map[string]pubsub.ValidatorEx{
		topicCheckpoint: m.validateCheckpointMsg,
		topicMaster:     m.validateVoteMsg,
		topicRecords:    m.validateRecordsMsg,
		topicEvidence:   m.validateEvidenceMsg,
	}
	for _, k := range topicKinds() {
		if err := ps.RegisterTopicValidator(names[k], validators[k]); err != nil {
			return fmt.Errorf("intermesh: validator of %s: %w", names[k], err)
		}
		t, err := ps.Join(names[k])
		if err != nil {
			return fmt.Errorf("intermesh: join %s: %w", names[k], err)
		}
		cancel, err := t.Relay()
		if err != nil {
			return fmt.Errorf("intermesh: relay %s: %w", names[k], err)
		}
		m.topics.relays = append(m.topics.relays, cancel)
		switch k {
		case topicCheckpoint:
			m.topics.checkpoint = t
		case topicMaster:
			m.topics.master = t
		case topicEvidence:
			m.topics.evidence = t
		default:
			m.topics.records = t
		}
	}
	return nil
}

// scoreParams penalizes peers whose messages a validator rejects, and adds
// the Mesh's own penalties for valid but useless messages (score.go);
// members are otherwise equal (the gater keeps everyone else out).
func scoreParams(m *Mesh, names map[string]string) *pubsub.PeerScoreParams {
	topic := func() *pubsub.TopicScoreParams {
		return &pubsub.TopicScoreParams{
			SkipAtomicValidation:           true,
			TopicWeight:                    1,
			TimeInMeshQuantum:              time.Second, // unused (weight 0), but divides
			InvalidMessageDeliveriesWeight: -5,
			InvalidMessageDeliveriesDecay:  0.9,
		}
	}
	ts := map[string]*pubsub.TopicScoreParams{}
	for _, n := range names {
		ts[n] = topic()
	}
	return &pubsub.PeerScoreParams{
		SkipAtomicValidation: true,
		Topics:               ts,
		AppSpecificScore:     m.appScore,
		AppSpecificWeight:    1,
		DecayInterval:        time.Second,
		DecayToZero:          0.01,
		// A member's counters outlive its connection (the watchdog in
		// host.go and restarts close connections), so that reconnecting
		// does not wipe a score.
		RetainScore: 10 * time.Minute,
	}
}

// scoreThresholds: a peer below -100 gets no gossip, below -200 none of our
// publications, below -400 its messages are ignored.
func scoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		SkipAtomicValidation: true,
		GossipThreshold:      -100,
		PublishThreshold:     -200,
		GraylistThreshold:    -400,
	}
}

// demoted logs gossipsub's records one level lower than gossipsub does
// (its warnings, e.g. "slow heartbeat" on a busy machine, at info), so that
// a node's warnings stay about what an operator can act on.
type demoted struct{ h slog.Handler }

func (d demoted) Enabled(ctx context.Context, l slog.Level) bool {
	return d.h.Enabled(ctx, l-4)
}

func (d demoted) Handle(ctx context.Context, r slog.Record) error {
	r.Level -= 4
	return d.h.Handle(ctx, r)
}

func (d demoted) WithAttrs(as []slog.Attr) slog.Handler { return demoted{d.h.WithAttrs(as)} }
func (d demoted) WithGroup(g string) slog.Handler       { return demoted{d.h.WithGroup(g)} }

// outbound is a message for the publisher.
type outbound struct {
	kind string
	data []byte
}

// gossip queues data for publication on a topic; it never blocks (gossip is
// not reliable delivery anyway).
func (m *Mesh) gossip(kind string, data []byte) {
	select {
	case m.outbox <- outbound{kind, data}:
	default:
		m.log.Warn("gossip queue full; message dropped", "topic", kind)
	}
}

// publishLoop publishes queued messages until ctx ends. Publishing runs our
// own validator inline, which recognizes the local sender and accepts.
func (m *Mesh) publishLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case o := <-m.outbox:
			if err := m.topics.byKind(o.kind).Publish(ctx, o.data); err != nil && ctx.Err() == nil {
				m.log.Warn("gossip publish failed", "topic", o.kind, "err", err)
			}
		}
	}
}

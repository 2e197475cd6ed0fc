package intermesh

import (
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// gossipTracer counts what gossipsub does below the validators: copies of a
// message already seen (each member floods its own messages to every member
// and every member relays them to its mesh peers, so copies are the price
// of relaying) and RPCs dropped because a peer's outbound queue was full.
// Its methods are called from gossipsub's goroutines; the counters are safe
// for that.
type gossipTracer struct {
	mt    *metrics
	kinds map[string]string // topic name -> kind
}

var _ pubsub.RawTracer = gossipTracer{}

func (t gossipTracer) kind(topic string) string {
	if k, ok := t.kinds[topic]; ok {
		return k
	}
	return "other"
}

// DuplicateMessage counts a copy of a message already seen.
func (t gossipTracer) DuplicateMessage(msg *pubsub.Message) {
	k := t.kind(msg.GetTopic())
	t.mt.duplicates.WithLabelValues(k).Inc()
	t.mt.duplicateBytes.WithLabelValues(k).Add(float64(len(msg.GetData())))
}

// DropRPC counts an RPC dropped because p's outbound queue was full.
func (t gossipTracer) DropRPC(*pubsub.RPC, peer.ID) { t.mt.droppedRPCs.Inc() }

// The other events are not counted.

func (gossipTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (gossipTracer) OnClosedOutboundStream(peer.ID)                       {}
func (gossipTracer) Join(string)                                          {}
func (gossipTracer) Leave(string)                                         {}
func (gossipTracer) Graft(peer.ID, string)                                {}
func (gossipTracer) Prune(peer.ID, string)                                {}
func (gossipTracer) ValidateMessage(*pubsub.Message)                      {}
func (gossipTracer) DeliverMessage(*pubsub.Message)                       {}
func (gossipTracer) RejectMessage(*pubsub.Message, string)                {}
func (gossipTracer) ThrottlePeer(peer.ID)                                 {}
func (gossipTracer) RecvRPC(*pubsub.RPC)                                  {}
func (gossipTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (gossipTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (gossipTracer) UndeliverableMessage(*pubsub.Message)                 {}

package testnet

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/intermesh"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
)

// Byzantine is a member of the testnet run by a test instead of a node: a
// libp2p host with the member's key, on the member's addresses, joined to
// the federation's gossip topics without validating anything. It does
// nothing by itself: it withholds records (it publishes no batch, relays
// none and serves no Transfer page) and relays the other topics' gossip; the test makes it publish what it wants
// (checkpoints early or contradictory, votes for any round, any gossip)
// and serve what it wants on the Transfer stream (pages that lie, that
// exceed the limits asked for, that never end). The honest nodes see the
// member's key, so their gaters admit it and everything it signs verifies.
type Byzantine struct {
	// Origin is the member's origin.
	Origin string
	fed    *config.Federation
	signer note.Signer
	host   host.Host
	topics map[string]*pubsub.Topic
	stop   context.CancelFunc
}

// Byzantine topic kinds, as in intermesh.TopicName.
const (
	KindCheckpoint = "checkpoint"
	KindMaster     = "master"
	KindRecords    = "records"
	KindEvidence   = "evidence"
)

// StartByzantine runs member i (whose node must be stopped) as a Byzantine
// member and connects it to every running node. Close stops it.
func (t *Testnet) StartByzantine(ctx context.Context, i int) (*Byzantine, error) {
	if t.Node(i) != nil {
		return nil, fmt.Errorf("testnet: node %d is running; stop it first", i)
	}
	key, err := config.LoadKey(filepath.Join(t.opts.NodeDir(i), config.KeyFileName))
	if err != nil {
		return nil, err
	}
	fm := t.fed.Members[i]
	b := &Byzantine{Origin: fm.Origin, fed: t.fed, topics: map[string]*pubsub.Topic{}}
	if b.signer, err = merkle.NewSigner(fm.Origin, key); err != nil {
		return nil, err
	}
	sk, err := crypto.UnmarshalEd25519PrivateKey(key)
	if err != nil {
		return nil, err
	}
	b.host, err = libp2p.New(libp2p.Identity(sk), libp2p.ListenAddrStrings(fm.Addrs...), libp2p.DisableMetrics(), libp2p.DisableRelay())
	if err != nil {
		return nil, fmt.Errorf("testnet: byzantine member %d: %w", i, err)
	}
	psCtx, cancel := context.WithCancel(context.Background())
	b.stop = cancel
	ps, err := pubsub.NewGossipSub(psCtx, b.host,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign), pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(func(m *pb.Message) string { h := sha256.Sum256(m.Data); return string(h[:]) }),
		pubsub.WithFloodPublish(true))
	if err != nil {
		b.Close()
		return nil, err
	}
	for _, k := range []string{KindCheckpoint, KindMaster, KindRecords, KindEvidence} {
		tp, err := ps.Join(intermesh.TopicName(t.fed.Name, k))
		if err != nil {
			b.Close()
			return nil, err
		}
		b.topics[k] = tp
		if k == KindRecords {
			continue // it withholds: it relays no records either
		}
		if _, err := tp.Relay(); err != nil {
			b.Close()
			return nil, err
		}
	}
	for j := range t.nodes {
		n := t.Node(j)
		if n == nil || n.Mesh() == nil {
			continue
		}
		m := n.Mesh()
		if err := b.host.Connect(ctx, peer.AddrInfo{ID: m.ID(), Addrs: m.Host().Addrs()}); err != nil {
			b.Close()
			return nil, fmt.Errorf("testnet: byzantine member %d: connect to node %d: %w", i, j, err)
		}
	}
	return b, nil
}

// Close stops the Byzantine member.
func (b *Byzantine) Close() error {
	if b.stop != nil {
		b.stop()
	}
	return b.host.Close()
}

// ID is the member's peer ID.
func (b *Byzantine) ID() peer.ID { return b.host.ID() }

// Peers is how many members of its topic kind's mesh it sees.
func (b *Byzantine) Peers(kind string) int { return len(b.topics[kind].ListPeers()) }

// Checkpoint signs a checkpoint of the member.
func (b *Byzantine) Checkpoint(cp merkle.Checkpoint) ([]byte, error) {
	cp.Origin = b.Origin
	return merkle.SignCheckpoint(cp, b.signer)
}

// Vote signs a vote of the member for round over the given signed
// checkpoint notes (intermesh.SignVote).
func (b *Byzantine) Vote(round uint64, checkpoints ...[]byte) ([]byte, error) {
	return intermesh.SignVote(b.fed.Name, round, checkpoints, b.signer)
}

// Publish publishes data on the topic of a kind (KindCheckpoint, ...).
func (b *Byzantine) Publish(ctx context.Context, kind string, data []byte) error {
	tp := b.topics[kind]
	if tp == nil {
		return fmt.Errorf("testnet: no topic of kind %q", kind)
	}
	return tp.Publish(ctx, data)
}

// TransferRequest is a request of intermesh.TransferProtocol, as the
// Byzantine member's Transfer server reads it.
type TransferRequest struct {
	Origin     string `json:"origin"`
	From       uint64 `json:"from"`
	MaxEntries int    `json:"max_entries"`
	MaxBytes   int    `json:"max_bytes"`
}

// TransferAnswer is what the Byzantine member answers a Transfer request
// with: the size it claims, then the frames of Records, then the empty
// frame that ends a page (unless Endless: then Records again and again,
// renumbered, until the client gives up).
type TransferAnswer struct {
	Size    uint64
	Records []log.Record
	Endless bool
}

// ServeTransfer makes the member serve intermesh.TransferProtocol with the
// answers of f, whatever the limits asked for.
func (b *Byzantine) ServeTransfer(f func(TransferRequest) TransferAnswer) {
	b.host.SetStreamHandler(intermesh.TransferProtocol, func(s network.Stream) {
		if serveAnswer(s, f) != nil {
			s.Reset()
			return
		}
		s.Close()
	})
}

// serveAnswer serves one Transfer stream with the answer of f.
func serveAnswer(s network.Stream, f func(TransferRequest) TransferAnswer) error {
	{
		var n [4]byte
		if _, err := io.ReadFull(s, n[:]); err != nil {
			return err
		}
		if binary.BigEndian.Uint32(n[:]) > 4<<10 {
			return fmt.Errorf("request of %d bytes", binary.BigEndian.Uint32(n[:]))
		}
		body := make([]byte, binary.BigEndian.Uint32(n[:]))
		if _, err := io.ReadFull(s, body); err != nil {
			return err
		}
		var req TransferRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return err
		}
		a := f(req)
		w := bufio.NewWriter(s)
		frame := func(p []byte) error {
			if err := binary.Write(w, binary.BigEndian, uint32(len(p))); err != nil {
				return err
			}
			_, err := w.Write(p)
			return err
		}
		hb, _ := json.Marshal(map[string]uint64{"size": a.Size})
		if err := frame(hb); err != nil {
			return err
		}
		for round := uint64(0); ; round++ {
			for _, r := range a.Records {
				r.Seq += round * uint64(len(a.Records))
				if err := frame(r.MarshalLeaf()); err != nil {
					return err
				}
			}
			if !a.Endless || len(a.Records) == 0 {
				break
			}
			if err := w.Flush(); err != nil {
				return err
			}
		}
		if err := frame(nil); err != nil {
			return err
		}
		return w.Flush()
	}
}

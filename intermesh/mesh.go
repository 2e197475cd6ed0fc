package intermesh

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/log"
)

// Sentinel errors; functions wrap them with %w.
var (
	// ErrConfig reports an invalid Config; the message names the field.
	ErrConfig = errors.New("intermesh: config")
	// ErrRunning reports a second call of Run.
	ErrRunning = errors.New("intermesh: already running")
	// ErrStopped reports a request to a Mesh whose Run has returned.
	ErrStopped = errors.New("intermesh: stopped")
	// ErrInvalidCheckpoint reports a checkpoint that is malformed, not
	// signed by its origin, not of a member, outside the round window or
	// inconsistent with an earlier checkpoint of its origin.
	ErrInvalidCheckpoint = errors.New("intermesh: invalid checkpoint")
	// ErrInvalidVote reports a vote or certificate that is malformed or
	// lacks the member signatures it needs.
	ErrInvalidVote = errors.New("intermesh: invalid vote")
)

// Config configures a Mesh. Durations left zero take the defaults given.
type Config struct {
	// Federation is the federation this node is a member of. Required.
	Federation *config.Federation
	// Origin is this node's origin (log name); it must be a member. Required.
	Origin string
	// Key is the node's Ed25519 key: its libp2p identity and the key of its
	// checkpoints and votes. Its public key must be the member's key. Required.
	Key ed25519.PrivateKey
	// Listen are the multiaddresses to listen on (TCP and QUIC). Optional:
	// the member's addresses in the federation file.
	Listen []string
	// DB is the node's Badger database; the Mesh writes only keys whose
	// first byte is 'x' (see store.go). Optional: nil keeps everything in
	// memory, so nothing survives a restart.
	DB *badger.DB
	// Commit receives the outcome of each round, at most once per round,
	// before the round's commit deadline has passed by much (see RoundResult).
	// It runs on a goroutine of its own with a context that expires one
	// period after the round started, so a slow Commit never stalls the
	// rounds. Optional.
	Commit func(ctx context.Context, r RoundResult) error
	// VoteDeadline is how long after a round's scheduled close, (r+1)·period
	// on the round clock, the node votes over whatever checkpoints it holds,
	// even without a quorum. Default half the period.
	VoteDeadline time.Duration
	// CommitDeadline is how long after a round's scheduled close the node gives up
	// waiting for a certificate and commits its own vote as "no-quorum". It
	// must be after VoteDeadline and before the period. Default 3/4 period.
	CommitDeadline time.Duration
	// QuorumGrace is how long the node waits, once it holds a quorum of
	// checkpoints but not all members', for the rest before voting. Default
	// a tenth of the period.
	QuorumGrace time.Duration
	// RoundWindow is how many rounds away from the current round a gossiped
	// checkpoint or vote may be. Default 2.
	RoundWindow uint64
	// ClockSkew is how much earlier than its scheduled close, (r+1)·period
	// on the round clock, a checkpoint or vote of round r is taken as of a
	// closed round. Earlier messages are held until then (see hold.go). It
	// must be shorter than VoteDeadline. Default a twentieth of the period.
	ClockSkew time.Duration
	// Logger receives the events an operator can act on. Optional.
	Logger *slog.Logger
	// Registerer receives the metrics (metrics.go). Optional.
	Registerer prometheus.Registerer
	// Now is the round clock: the current round is floor(Now()/period), and
	// round r closes at (r+1)·period on it; every deadline of a round counts
	// from that close. Timers wait as long as this clock says, so it must run
	// at the pace of real time. Optional: time.Now.
	Now func() time.Time
	// Log is the node's log. With it the Mesh replicates: it gossips the
	// log's new records, keeps a verified replica log of every other
	// member in it (Log.Replica; the log's ReplicaIndexers must keep each
	// replica's Merkle tree under merkle.ReplicaPrefix(origin) in DB),
	// serves and uses the Transfer stream, and appends Evidence records.
	// DB must then be Log.DB(). Optional: nil replicates nothing.
	Log *log.Log
	// ReplicaReset is called after a replica was cut back to repair it
	// (repair.go), before it is filled again, to rebuild the state the node
	// derived from that replica outside its transactions (the portal's
	// replicated state). Optional.
	ReplicaReset func(ctx context.Context, origin string) error
	// PublishInterval is how often the log's new records are gossiped.
	// Default 250 ms.
	PublishInterval time.Duration
	// CatchUpTimeout bounds the catch-up at start (fetching every replica
	// up to what its source holds) before the node votes. Default half
	// the period.
	CatchUpTimeout time.Duration
	// FirstRound is the first round this Mesh takes part in: the round
	// from which Federation is in force. Messages of earlier rounds are
	// ignored (they belong to the previous member set). Optional: 0.
	FirstRound uint64
	// MapRule is the rule of the records that set keys of the map, which
	// the node applies to every member's records as it recomputes the
	// member's map: a member whose checkpoint covers a record that breaks
	// it is no longer counted, and the evidence is gossiped and logged
	// (see MapRule). Optional: nil checks nothing, and refuses rule
	// evidence from others.
	MapRule MapRule
	// HostOptions are more libp2p options, applied after the host's own
	// (see startHost), e.g. a QUIC transport over a simulated network in a
	// test. Optional.
	HostOptions []libp2p.Option
}

// member is one federation member as the Mesh needs it.
type member struct {
	origin   string
	id       peer.ID
	verifier note.Verifier
	pub      ed25519.PublicKey
}

// Mesh is one member's end of the InterMesh consensus: its libp2p host, the
// gossip topics and the round protocol described in the package comment.
//
// One goroutine (the round loop, started by Run) owns all round state;
// validators and public methods hand it requests over a channel. Accessors
// (Certificate, LatestCheckpoints, Evidence ...) read a snapshot the loop
// publishes, so they never wait for the loop.
//
// The name stays although package portal/mesh is the Mesh data model:
// callers always write it qualified, intermesh.Mesh, which reads as what it
// is (this node's part of the InterMesh), and a caller holding one names
// the variable im, not mesh, so the two never meet unqualified.
type Mesh struct {
	cfg         Config
	fed         *config.Federation
	period      time.Duration
	quorum      int
	self        member
	members     map[string]member // by origin
	byPeer      map[peer.ID]string
	verifiers   note.Verifiers // every member's key
	maxVoteSize int            // the size limit of a vote (maxVoteSize)
	signer      note.Signer
	log         *slog.Logger
	metrics     *metrics
	store       *store
	sigCache    *sigCache

	host   host.Host
	gater  *gater
	ps     *pubsub.PubSub
	topics topics
	psStop context.CancelFunc // stops pubsub

	inbox     chan func(*state) // requests run by the round loop
	outbox    chan outbound     // messages the publisher gossips
	jobs      chan storeJob     // persistence and Commit calls, in order
	repl      *replicator       // nil without Config.Log
	xferSlots transferSlots     // Transfer streams open to each member (transfer.go)
	loopDone  chan struct{}     // closed when the round loop has returned
	state     *state            // owned by the round loop

	running   atomic.Bool
	closeOnce sync.Once
	closeErr  error

	viewMu sync.RWMutex
	view   view

	penalties  penalties // application-specific gossip penalties (score.go)
	grayMu     sync.Mutex
	graylisted map[peer.ID]bool // at the last score inspection
}

// New checks cfg, creates the libp2p host listening on cfg.Listen and joins
// the federation's gossip topics. Nothing is processed until Run is called;
// ctx bounds the setup only. Call Close when done.
func New(ctx context.Context, cfg Config) (*Mesh, error) {
	m, err := newMesh(cfg)
	if err != nil {
		return nil, err
	}
	if err := m.loadState(); err != nil {
		return nil, err
	}
	if err := m.startHost(ctx); err != nil {
		return nil, err
	}
	if err := m.startGossip(); err != nil {
		m.Close()
		return nil, err
	}
	if err := m.metrics.peers(func() float64 { return float64(len(m.Peers())) }); err != nil {
		m.Close()
		return nil, err
	}
	if err := m.metrics.evidenceHeld(func() float64 { return float64(len(m.snapshot().evidence)) }); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// newMesh checks the configuration and derives everything that does not
// need the network.
func newMesh(cfg Config) (*Mesh, error) {
	fed := cfg.Federation
	if fed == nil {
		return nil, badConfig("Federation", "required")
	}
	if err := fed.Validate(); err != nil {
		return nil, fmt.Errorf("%w: Federation: %w", ErrConfig, err)
	}
	cfg = withDefaults(cfg, fed.EpochPeriod.Duration)
	if err := cfg.check(fed.EpochPeriod.Duration); err != nil {
		return nil, err
	}
	m := &Mesh{
		cfg:      cfg,
		fed:      fed,
		period:   fed.EpochPeriod.Duration,
		quorum:   fed.EffectiveQuorum(),
		log:      cfg.Logger.With("component", "intermesh", "origin", cfg.Origin),
		sigCache: newSigCache(),
		inbox:    make(chan func(*state), 64),
		outbox:   make(chan outbound, 256),
		jobs:     make(chan storeJob, jobCapacity),
		loopDone: make(chan struct{}),
		store:    &store{db: cfg.DB},
	}
	if err := m.addMembers(fed); err != nil {
		return nil, err
	}
	if err := m.setSelf(); err != nil {
		return nil, err
	}
	mt, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	m.metrics = mt
	m.state = newState(m)
	m.state.floor = cfg.FirstRound
	if cfg.Log != nil {
		if m.repl, err = newReplicator(m, cfg.Log); err != nil {
			return nil, fmt.Errorf("%w: Log: %w", ErrConfig, err)
		}
	}
	return m, nil
}

// badConfig is an ErrConfig about one field of Config.
func badConfig(field, format string, a ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, a...))
}

// withDefaults fills in the fields of cfg left zero, for an epoch period.
func withDefaults(cfg Config, period time.Duration) Config {
	if cfg.VoteDeadline == 0 {
		cfg.VoteDeadline = period / 2
	}
	if cfg.CommitDeadline == 0 {
		cfg.CommitDeadline = period * 3 / 4
	}
	if cfg.QuorumGrace == 0 {
		cfg.QuorumGrace = period / 10
	}
	if cfg.RoundWindow == 0 {
		cfg.RoundWindow = 2
	}
	if cfg.ClockSkew == 0 {
		cfg.ClockSkew = period / 20
	}
	if cfg.PublishInterval <= 0 {
		cfg.PublishInterval = 250 * time.Millisecond
	}
	if cfg.CatchUpTimeout <= 0 {
		cfg.CatchUpTimeout = period / 2
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg
}

// check validates a configuration with its defaults filled in.
func (cfg *Config) check(period time.Duration) error {
	switch {
	case len(cfg.Key) != ed25519.PrivateKeySize:
		return badConfig("Key", "not an Ed25519 private key")
	case cfg.Log != nil && cfg.DB != cfg.Log.DB():
		return badConfig("DB", "must be Log.DB() when Log is set")
	case cfg.VoteDeadline < 0 || cfg.VoteDeadline >= cfg.CommitDeadline:
		return badConfig("VoteDeadline", "%s must be positive and before CommitDeadline %s", cfg.VoteDeadline, cfg.CommitDeadline)
	case cfg.CommitDeadline >= period:
		return badConfig("CommitDeadline", "%s must be shorter than the epoch period %s", cfg.CommitDeadline, period)
	case cfg.ClockSkew < 0 || cfg.ClockSkew >= cfg.VoteDeadline:
		return badConfig("ClockSkew", "%s must be positive and shorter than VoteDeadline %s", cfg.ClockSkew, cfg.VoteDeadline)
	case cfg.QuorumGrace < 0:
		return badConfig("QuorumGrace", "%s is negative", cfg.QuorumGrace)
	}
	return nil
}

// addMembers derives the member set, the verifiers and the vote size limit
// from the federation.
func (m *Mesh) addMembers(fed *config.Federation) error {
	m.members = make(map[string]member, len(fed.Members))
	m.byPeer = make(map[peer.ID]string, len(fed.Members))
	var vs []note.Verifier
	for i, fm := range fed.Members {
		v, err := note.NewVerifier(fm.Key)
		if err != nil {
			return fmt.Errorf("%w: Federation: member[%d].key: %w", ErrConfig, i, err)
		}
		id, err := peer.Decode(fm.PeerID)
		if err != nil {
			return fmt.Errorf("%w: Federation: member[%d].peer_id: %w", ErrConfig, i, err)
		}
		pub, err := fm.PublicKey()
		if err != nil {
			return fmt.Errorf("%w: Federation: member[%d].key: %w", ErrConfig, i, err)
		}
		m.members[fm.Origin] = member{origin: fm.Origin, id: id, verifier: v, pub: pub}
		m.byPeer[id] = fm.Origin
		vs = append(vs, v)
	}
	m.verifiers = note.VerifierList(vs...)
	m.maxVoteSize = maxVoteSize(fed)
	return nil
}

// setSelf finds this node's member (Config.Origin, whose key must be
// Config.Key), its listen addresses and its signer.
func (m *Mesh) setSelf() error {
	origin := m.cfg.Origin
	self, ok := m.members[origin]
	if !ok {
		return badConfig("Origin", "%q is not a member of federation %q", origin, m.fed.Name)
	}
	fm, _ := m.fed.Member(origin)
	pub, err := fm.PublicKey()
	if err != nil || !pub.Equal(m.cfg.Key.Public()) {
		return badConfig("Key", "is not the key of member %q in the federation file", origin)
	}
	m.self = self
	if len(m.cfg.Listen) == 0 {
		m.cfg.Listen = fm.Addrs
	}
	if len(m.cfg.Listen) == 0 {
		return badConfig("Listen", "no addresses, and the federation file lists none for %q", origin)
	}
	if m.signer, err = newNoteSigner(origin, m.cfg.Key); err != nil {
		return fmt.Errorf("%w: Key: %w", ErrConfig, err)
	}
	return nil
}

// Run runs the round loop, the gossip publisher, the committer, the
// reconnector, the gossip watchdog, the resyncer and (with Config.Log) the
// replicator until ctx ends, then waits for all of them and returns nil.
// It may be called once.
func (m *Mesh) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	var wg sync.WaitGroup
	wg.Go(func() { m.roundLoop(ctx) })
	wg.Go(func() { m.publishLoop(ctx) })
	wg.Go(func() { m.commitLoop(ctx) })
	wg.Go(func() { m.reconnectLoop(ctx) })
	wg.Go(func() { m.gossipWatchdog(ctx) })
	wg.Go(func() { newResyncer(m).run(ctx) })
	if m.repl != nil {
		wg.Go(func() { m.repl.run(ctx) })
	}
	<-ctx.Done()
	wg.Wait()
	return nil
}

// Close stops gossip and closes the libp2p host. Call it after Run has
// returned (or instead of Run). It is safe to call more than once.
func (m *Mesh) Close() error {
	m.closeOnce.Do(func() {
		m.topics.close()
		if m.psStop != nil {
			m.psStop()
		}
		if m.host != nil {
			if err := m.host.Close(); err != nil {
				m.closeErr = fmt.Errorf("intermesh: close host: %w", err)
			}
		}
	})
	return m.closeErr
}

// do runs f on the round loop and waits for it to finish.
func (m *Mesh) do(ctx context.Context, f func(*state)) error {
	done := make(chan struct{})
	req := func(st *state) { f(st); close(done) }
	select {
	case m.inbox <- req:
	case <-ctx.Done():
		return ctx.Err()
	case <-m.loopDone:
		return ErrStopped
	}
	select {
	case <-done:
		return nil
	case <-m.loopDone:
		// The loop may have run req just before returning.
		select {
		case <-done:
			return nil
		default:
			return ErrStopped
		}
	}
}

// poke makes the round loop settle now (after the catch-up ended).
func (m *Mesh) poke() {
	select {
	case m.inbox <- func(*state) {}:
	default:
	}
}

// PublishCheckpoint records this node's signed checkpoint note for round and
// gossips it to the federation. Call it right after closing the round. It
// fails if the note is not a valid checkpoint of this node for that round, or
// is inconsistent with this node's previous checkpoint.
func (m *Mesh) PublishCheckpoint(ctx context.Context, round uint64, signedNote []byte) error {
	hc, err := m.verifyCheckpoint(signedNote)
	if err != nil {
		return err
	}
	if hc.cp.Origin != m.self.origin {
		return fmt.Errorf("%w: origin %q is not this node's %q", ErrInvalidCheckpoint, hc.cp.Origin, m.self.origin)
	}
	if hc.cp.Round != round {
		return fmt.Errorf("%w: note is for round %d, not %d", ErrInvalidCheckpoint, hc.cp.Round, round)
	}
	var res verdict
	if err := m.do(ctx, func(st *state) { res = st.addCheckpoint(hc) }); err != nil {
		return fmt.Errorf("intermesh: publish checkpoint of round %d: %w", round, err)
	}
	if res.result == pubsub.ValidationReject {
		return fmt.Errorf("%w: round %d: %s", ErrInvalidCheckpoint, round, res.reason)
	}
	m.gossip(topicCheckpoint, signedNote)
	return nil
}

// Block cuts the connections to p and refuses new ones until Unblock: fault
// injection for tests and an operator's lever against a misbehaving peer.
func (m *Mesh) Block(p peer.ID) {
	m.gater.block(p, true)
	_ = m.host.Network().ClosePeer(p)
}

// Unblock lets p connect again; the reconnector dials it.
func (m *Mesh) Unblock(p peer.ID) { m.gater.block(p, false) }

// ID returns this node's peer ID.
func (m *Mesh) ID() peer.ID { return m.host.ID() }

// Host returns the libp2p host, for other protocols of the node (the
// Transfer stream). Its lifetime is the Mesh's.
func (m *Mesh) Host() host.Host { return m.host }

// RecordsTopic returns the joined records topic, for record replication.
func (m *Mesh) RecordsTopic() *pubsub.Topic { return m.topics.records }

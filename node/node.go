package node

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/intermesh"
	"github.com/intermesh/intermesh/internal/keyspace"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// treePrefix is the prefix of the node's own Merkle tree in its database;
// replica trees of peers use merkle.ReplicaPrefix(origin) (see
// internal/keyspace).
var treePrefix = []byte(keyspace.TreeLocal)

// shutdownGrace bounds how long in-flight HTTP requests may run after a stop
// is asked for.
const shutdownGrace = 10 * time.Second

// Node is one running intermesh node.
type Node struct {
	debugAddr atomic.Pointer[string] // see DebugAddr
	cfg       config.Config
	logger    *slog.Logger
	key       ed25519.PrivateKey
	signer    note.Signer
	verifier  note.Verifier
	schedule  Schedule

	log      *log.Log
	tree     *merkle.Tree
	vmap     *ownMap // the verifiable map of the node's log
	state    *portal.State
	portal   *portal.Server
	registry *prometheus.Registry
	listener net.Listener

	lastClose atomic.Int64 // Unix nanoseconds of the last epoch close

	mappedReleased atomic.Int64 // bytes of table mappings advised by runMappedLimit, in total
	garbageFiles   atomic.Int64 // value-log files rewritten by runGarbageCollection, in total
	certSigners    certSigners  // the status page's verified certificate signers
	metrics        *nodeMetrics

	genesis   *config.Federation                       // the federation file; nil when the node runs alone
	history   *history                                 // the federation's versions; nil when alone
	active    atomic.Pointer[activeMesh]               // the Mesh of the version in force; nil when none
	following atomic.Pointer[config.FederationVersion] // the version the node follows
	meshReg   *meshRegisterer                          // the active Mesh's metrics
	fedInbox  chan []byte                              // federation updates found in peers' logs
	masters   masterRecords
	// fedRefused counts the federation updates from peers the node refused.
	fedRefused *prometheus.CounterVec

	witnessing witnessing // the witness protocols (witness.go)
}

// New opens a node's store and builds its portal. It does not serve until
// Run. A node that New returned must be Run or Closed.
func New(ctx context.Context, cfg config.Config, logger *slog.Logger) (*Node, error) {
	n, err := newNode(cfg, logger)
	if err != nil {
		return nil, err
	}
	if err := n.openLog(ctx); err != nil {
		return nil, err
	}
	if err := n.build(ctx); err != nil {
		_ = n.closeStores()
		return nil, err
	}
	return n, nil
}

// newNode checks the configuration and loads the node's key; it opens
// nothing.
func newNode(cfg config.Config, logger *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	key, err := config.LoadKey(cfg.KeyPath())
	if err != nil {
		return nil, err
	}
	signer, err := merkle.NewSigner(cfg.Origin, key)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	verifier, err := merkle.NewVerifier(cfg.Origin, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	n := &Node{
		cfg:      cfg,
		logger:   logger,
		key:      key,
		signer:   signer,
		verifier: verifier,
		schedule: Schedule{Period: cfg.Epoch.Period.Duration},
		state:    portal.NewState(),
		registry: prometheus.NewRegistry(),
		fedInbox: make(chan []byte, 256),

		fedRefused: newFedRefused(),
	}
	n.meshReg = &meshRegisterer{reg: n.registry}
	n.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if n.metrics, err = newNodeMetrics(n.registry); err != nil {
		return nil, err
	}
	return n, nil
}

// openLog opens the log with the indexers that keep the tree, the portal's
// state, evidence and the federation history in its transactions.
func (n *Node) openLog(ctx context.Context) error {
	// The tree appends inside the log's commit transaction and needs no
	// database handle for that; the one built after Open reads.
	indexTree := merkle.NewTree(nil, treePrefix)
	var err error
	n.log, err = log.Open(ctx, log.Options{
		Dir:           n.cfg.DataDir(),
		Logger:        n.logger,
		Indexers:      []log.Indexer{n.state, intermesh.EvidenceIndexer{}, FederationIndexer{}},
		BatchIndexers: []log.BatchIndexer{indexTree},
		MaxBatch:      n.cfg.Store.MaxBatch,
		Origin:        n.cfg.Origin,
		Tuning:        logTuning(n.cfg.StoreProfile()),
		ObserveCommit: func(d time.Duration) { n.metrics.commitSeconds.Observe(d.Seconds()) },
		// A replica of a peer's log keeps its own tree and the portal's
		// replicated state in the transactions that append to it.
		ReplicaIndexers: func(origin string) log.ReplicaOptions {
			return log.ReplicaOptions{
				Indexers:      []log.Indexer{n.state.ReplicaIndexer(origin), fedReplicaIndexer{n.fedInbox}},
				BatchIndexers: []log.BatchIndexer{merkle.NewTree(nil, merkle.ReplicaPrefix(origin))},
			}
		},
	})
	if err != nil {
		return err
	}
	n.tree = merkle.NewTree(n.log.DB(), treePrefix)
	return nil
}

// build checks the tree and builds, over the open log, the InterMesh of
// the version in force, the federation's metrics and records, the witness
// and the portal. On error the caller closes the stores.
func (n *Node) build(ctx context.Context) error {
	if err := n.checkTree(); err != nil {
		return err
	}
	var err error
	if n.vmap, err = openOwnMap(n.log, n.metrics); err != nil {
		return err
	}
	if last, err := n.tree.LatestCheckpoint(); err == nil && len(last) > 0 {
		if cp, _, err := merkle.OpenCheckpoint(last, n.verifiers()); err == nil {
			n.lastClose.Store(time.Unix(cp.Time, 0).UnixNano())
		}
	}
	n.registry.MustRegister(newOpsCollector(n))
	if err := n.newMesh(ctx); err != nil {
		return err
	}
	if n.history != nil {
		if err := n.registerFederationMetrics(); err != nil {
			return err
		}
		if err := n.masters.load(ctx, n.log); err != nil {
			return err
		}
	}
	if err := n.newWitnessing(); err != nil {
		return err
	}
	return n.newPortal()
}

// newPortal builds the portal over the node's log, state and tree.
func (n *Node) newPortal() error {
	cfg := n.cfg
	var peers portal.PeerProofs
	if n.history != nil {
		peers = n
	}
	service, err := serviceProfile(n.key)
	if err != nil {
		return err
	}
	proxies, err := cfg.HTTP.TrustedProxyPrefixes()
	if err != nil { // Validate parsed them already
		return err
	}
	n.portal, err = portal.New(portal.Config{
		Service:           cfg.Origin,
		ServiceProfile:    service,
		Domains:           config.ServedDomains(n.FederationChain(), cfg.Origin),
		DomainHomes:       n.domainHomes(),
		MaxBodyBytes:      cfg.HTTP.MaxBodyBytes,
		RateLimit:         cfg.HTTP.RatePerSecond,
		RateBurst:         cfg.HTTP.RateBurst,
		RateClients:       cfg.HTTP.RateClients,
		TrustedProxies:    proxies,
		ProxyHeader:       cfg.HTTP.ProxyHeader,
		TransferToken:     cfg.HTTP.TransferToken,
		TransferPublic:    cfg.HTTP.TransferPublic,
		AdminToken:        cfg.HTTP.AdminToken,
		MaxInFlight:       cfg.HTTP.MaxInFlight,
		MaxConnections:    cfg.HTTP.MaxConnections,
		ReadHeaderTimeout: cfg.HTTP.ReadHeaderTimeout.Duration,
		ReadTimeout:       cfg.HTTP.ReadTimeout.Duration,
		WriteTimeout:      cfg.HTTP.WriteTimeout.Duration,
		IdleTimeout:       cfg.HTTP.IdleTimeout.Duration,
	}, portal.Deps{
		Log:         n.log,
		State:       n.state,
		Checkpoints: n.tree,
		Schedule:    n,
		Peers:       peers,
		Proofs:      n,
		Registerer:  n.registry,
		Gatherer:    n.registry,
		Logger:      n.logger,
	})
	return err
}

// domainHomes names, for each domain another member of the latest
// federation version serves, that member and its portal.
func (n *Node) domainHomes() map[string]string {
	chain := n.FederationChain()
	if len(chain) == 0 {
		return nil
	}
	homes := map[string]string{}
	for _, m := range chain[len(chain)-1].Members {
		if m.Origin == n.cfg.Origin {
			continue
		}
		for _, d := range m.Domains {
			homes[d] = fmt.Sprintf("%s at %s", m.Origin, m.HTTP)
		}
	}
	return homes
}

// closeStores closes the InterMesh host and the log.
func (n *Node) closeStores() error {
	var err error
	if a := n.active.Load(); a != nil {
		err = a.mesh.Close()
	}
	return errors.Join(err, n.log.Close())
}

// checkTree makes sure the tree covers exactly the log: they are written in
// one transaction, so anything else is corruption.
func (n *Node) checkTree() error {
	size, err := n.tree.Size()
	if err != nil {
		return fmt.Errorf("node: reading the Merkle tree: %w", err)
	}
	if size != n.log.Size() {
		return fmt.Errorf("node: the Merkle tree covers %d records but the log holds %d: %w", size, n.log.Size(), log.ErrCorrupt)
	}
	return nil
}

// Listen binds the portal's HTTP listener, so that callers (tests, the
// testnet) know the address before Run. Run calls it if it was not.
func (n *Node) Listen() error {
	if n.listener != nil {
		return nil
	}
	l, err := net.Listen("tcp", n.cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("node: portal listener: %w", err)
	}
	n.listener = l
	return nil
}

// HTTPAddr is the portal's address once Listen or Run has bound it.
func (n *Node) HTTPAddr() string {
	if n.listener == nil {
		return n.cfg.HTTP.Listen
	}
	return n.listener.Addr().String()
}

// Origin is the node's log name.
func (n *Node) Origin() string { return n.cfg.Origin }

// Log is the node's log.
func (n *Node) Log() *log.Log { return n.log }

// Tree is the node's Merkle tree.
func (n *Node) Tree() *merkle.Tree { return n.tree }

// Run serves the portal and closes an epoch at every round boundary until ctx
// ends; then it lets in-flight requests finish, stops, and closes the store.
func (n *Node) Run(ctx context.Context) error {
	if err := n.Listen(); err != nil {
		n.closeStores()
		return err
	}
	srv := n.portal.HTTPServer(slog.NewLogLogger(n.logger.Handler(), slog.LevelWarn))
	srv.Handler = n.handler() // the portal, tlog-tiles reads and the witness
	n.logger.Info("node running", "origin", n.cfg.Origin, "portal", "http://"+n.HTTPAddr(),
		"period", n.schedule.Period, "log_size", n.log.Size())

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	wg.Go(func() { n.stopWhenNotDurable(runCtx, errs, cancel) })
	if n.history != nil {
		wg.Go(func() { n.runMembership(runCtx) })
		wg.Go(func() { n.runLearner(runCtx) })
	}
	if addr := n.cfg.HTTP.DebugListen; addr != "" {
		dbg, err := startDebugServer(addr)
		if err != nil {
			n.listener.Close()
			n.closeStores()
			return err
		}
		n.debugAddr.Store(&dbg.Addr)
		n.logger.Warn("serving Go's profiler without authentication", "debug_listen", "http://"+dbg.Addr+"/debug/pprof/")
		defer dbg.Close()
	}
	if n.cfg.Store.MappedLimitMB > 0 {
		wg.Go(func() { n.runMappedLimit(runCtx) })
	}
	wg.Go(func() { n.runGarbageCollection(runCtx) })
	// The follower runs often, so that an epoch close finds few records
	// left to add to the map (at 10,000 records a period, about 300).
	wg.Go(func() { n.vmap.follow(runCtx, max(n.schedule.Period/32, 20*time.Millisecond), n.logger) })
	wg.Add(3)
	go func() {
		defer wg.Done()
		n.runWitnessSubmissions(runCtx)
	}()
	go func() {
		defer wg.Done()
		if err := srv.Serve(n.portal.LimitListener(n.listener)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("node: portal: %w", err)
			cancel()
		}
	}()
	go func() {
		defer wg.Done()
		n.runEpochs(runCtx)
	}()

	<-runCtx.Done()
	n.logger.Info("node stopping", "origin", n.cfg.Origin)
	shutCtx, done := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	err := srv.Shutdown(shutCtx)
	done()
	wg.Wait()
	close(errs)
	for e := range errs {
		err = errors.Join(err, e)
	}
	if cerr := n.closeStores(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	n.logger.Info("node stopped", "origin", n.cfg.Origin, "log_size", n.log.Size())
	return err
}

// stopWhenNotDurable stops the node (sends the error on errs and cancels its
// run) when a write of its store was not made durable: Badger may hold that
// write in memory, where reads, the tree and checkpoints would count it.
// Restarted, the node recovers what the disk kept.
func (n *Node) stopWhenNotDurable(ctx context.Context, errs chan<- error, cancel context.CancelFunc) {
	select {
	case <-ctx.Done():
	case <-n.log.NotDurable():
		err := n.log.Durability()
		n.logger.Error("a write of the store was not made durable; the node stops (check the disk, then restart it)", "err", err)
		errs <- fmt.Errorf("node: %w", err)
		cancel()
	}
}

// DebugAddr returns the address Go's profiler is served on (http.debug_listen),
// once Run serves it, or "".
func (n *Node) DebugAddr() string {
	if a := n.debugAddr.Load(); a != nil {
		return *a
	}
	return ""
}

// Close releases a node that was never Run.
func (n *Node) Close() error {
	if n.listener != nil {
		n.listener.Close()
	}
	return n.closeStores()
}

// runEpochs closes round r at its wall-clock end, for every round until ctx
// ends.
func (n *Node) runEpochs(ctx context.Context) {
	for {
		at, round := n.schedule.NextClose(time.Now())
		t := time.NewTimer(time.Until(at))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := n.CloseEpoch(ctx, round, at); err != nil {
			n.logger.Error("closing the epoch failed", "round", round, "err", err)
		}
	}
}

// CloseEpoch signs and stores the checkpoint of round at the log's current
// size. Once a write of the store was not made durable it signs nothing:
// Badger may hold that write in memory, where the tree would count it.
func (n *Node) CloseEpoch(ctx context.Context, round uint64, at time.Time) error {
	start := time.Now()
	var signed []byte
	var cp merkle.Checkpoint
	err := n.log.Durability()
	if err == nil {
		err = n.vmap.closeEpoch(ctx, func(mapRoot merkle.MapRoot) error {
			var err error
			signed, cp, err = n.tree.CloseEpochWithMap(ctx, round, at, n.signer, n.cfg.Origin, mapRoot)
			return err
		})
	}
	if err == nil {
		// A write that failed while the checkpoint was made: keep it to
		// this store, which takes no more writes.
		err = n.log.Durability()
	}
	if err != nil {
		n.metrics.epochFailures.Inc()
		return err
	}
	if im := n.Mesh(); im != nil {
		if err := im.PublishCheckpoint(ctx, round, signed); err != nil {
			n.logger.Warn("publishing the checkpoint to the federation failed", "round", round, "err", err)
		}
	}
	n.offerToWitnesses(signed)
	n.lastClose.Store(at.UnixNano())
	n.metrics.epochSeconds.Observe(time.Since(start).Seconds())
	n.metrics.round.Set(float64(round))
	n.logger.Debug("epoch closed", "round", round, "size", cp.Size)
	return nil
}

// LastCheckpointTime is when the latest checkpoint was made (zero if none).
func (n *Node) LastCheckpointTime() time.Time {
	if v := n.lastClose.Load(); v != 0 {
		return time.Unix(0, v).UTC()
	}
	return time.Time{}
}

// NextCheckpointTime is when the next checkpoint is due.
func (n *Node) NextCheckpointTime() time.Time {
	at, _ := n.schedule.NextClose(time.Now())
	return at
}

// Epoch is the current round.
func (n *Node) Epoch() uint64 { return n.schedule.Round(time.Now()) }

// verifiers are the note verifiers of the node's own checkpoints.
func (n *Node) verifiers() note.Verifiers { return note.VerifierList(n.verifier) }

// serviceProfile is the node's ProfileService envelope for Hello, derived
// from its key (mesh.ServiceProfileFromSeed: no second identity to keep).
func serviceProfile(key ed25519.PrivateKey) ([]byte, error) {
	env, _, err := mesh.ServiceProfileFromSeed(key.Seed())
	if err != nil {
		return nil, fmt.Errorf("node: deriving the service profile: %w", err)
	}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("node: encoding the service profile: %w", err)
	}
	return b, nil
}

// logTuning maps a resolved store.profile (config.Config.StoreProfile) to
// the log's Badger tuning.
func logTuning(p string) log.Tuning {
	if p == config.ProfileLarge {
		return log.TuningLarge
	}
	return log.TuningSmall
}

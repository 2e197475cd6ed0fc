package node

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/intermesh"
	"github.com/intermesh/intermesh/internal/metricset"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal"
)

// Membership changes at a round boundary.
//
// A version of the federation in force from round e (its `effective`
// line) runs in its own intermesh.Mesh: the node swaps its Mesh for one
// built from the new version once it has committed round e-1 (or at the
// latest four fifths into round e, after the commit deadline of round
// e-1), and before round e closes. The new Mesh takes part from round e
// (intermesh.Config.FirstRound), so no round mixes two member sets: its
// connection gater, topic validators, quorum and replicas are those of the
// new version. A node that is not a member of the new version runs no Mesh
// from round e on (its portal keeps serving, its log stays auditable); a
// node that joins starts its Mesh at round e.

// activeMesh is the Mesh the node runs and the version it was built from.
type activeMesh struct {
	mesh    *intermesh.Mesh
	version *config.FederationVersion
}

// Mesh is the node's InterMesh side, or nil when it runs alone (or is not a
// member of the federation version in force).
func (n *Node) Mesh() *intermesh.Mesh {
	if a := n.active.Load(); a != nil {
		return a.mesh
	}
	return nil
}

// federation is the federation of the Mesh the node runs, or nil.
func (n *Node) federation() *config.Federation {
	if a := n.active.Load(); a != nil {
		return &a.version.Federation
	}
	return nil
}

// FederationVersion is the version of the federation the node's Mesh runs
// (0 for the genesis file), and whether it runs one.
func (n *Node) FederationVersion() (uint64, bool) {
	if a := n.active.Load(); a != nil {
		return a.version.Version, true
	}
	return 0, false
}

// meshRegisterer registers a Mesh's metrics and unregisters them all when
// the Mesh is replaced.
type meshRegisterer struct {
	reg  prometheus.Registerer
	mu   sync.Mutex
	done []prometheus.Collector
}

func (r *meshRegisterer) Register(c prometheus.Collector) error {
	if err := r.reg.Register(c); err != nil {
		return err
	}
	r.mu.Lock()
	r.done = append(r.done, c)
	r.mu.Unlock()
	return nil
}

func (r *meshRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *meshRegisterer) Unregister(c prometheus.Collector) bool { return r.reg.Unregister(c) }

// unregisterAll removes every collector registered so far.
func (r *meshRegisterer) unregisterAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.done {
		r.reg.Unregister(c)
	}
	r.done = nil
}

// member reports whether the node is a member of v with its own key.
func (n *Node) memberOf(v *config.FederationVersion) bool {
	m, ok := v.Member(n.cfg.Origin)
	if !ok {
		return false
	}
	pub, err := m.PublicKey()
	return err == nil && pub.Equal(n.key.Public())
}

// mapRuleCache is how many profile versions the map's rule remembers
// (portal.NewMapRule): a few hundred bytes each with the cache's own, about
// a megabyte.
const mapRuleCache = 4096

// newVersionMesh builds (not runs) the Mesh of version v.
func (n *Node) newVersionMesh(ctx context.Context, v *config.FederationVersion) (*intermesh.Mesh, error) {
	fed := v.Federation
	return intermesh.New(ctx, intermesh.Config{
		Federation: &fed,
		Origin:     n.cfg.Origin,
		Key:        n.key,
		Listen:     n.cfg.P2P.Listen,
		DB:         n.log.DB(),
		Log:        n.log,
		Commit:     n.commitRound,
		// A replica cut back to repair it: the portal's replicated state
		// of that origin is rebuilt from what the replica holds now.
		ReplicaReset: func(ctx context.Context, origin string) error {
			rep, err := n.log.Replica(origin)
			if err != nil {
				return err
			}
			return n.state.RebuildReplica(ctx, n.log.DB(), origin, rep)
		},
		// Every member's records are checked by the portal's rules as
		// their maps are recomputed; the cache spares decoding a
		// profile's previous version again (about 100 µs each).
		MapRule:    portal.NewMapRule(mapRuleCache),
		Logger:     n.logger.With("federation_version", v.Version),
		Registerer: n.meshReg,
		FirstRound: v.Effective,
	})
}

// runMembership runs the active Mesh and replaces it when a new version of
// the federation comes into force, until ctx ends; then it stops the Mesh
// (Close is left to closeStores).
func (n *Node) runMembership(ctx context.Context) {
	var (
		wg      sync.WaitGroup
		stopRun context.CancelFunc = func() {}
	)
	run := func(a *activeMesh) {
		if a == nil {
			return
		}
		mctx, cancel := context.WithCancel(ctx)
		stopRun = cancel
		wg.Go(func() {
			if err := a.mesh.Run(mctx); err != nil {
				n.logger.Error("intermesh stopped", "err", err)
			}
		})
	}
	run(n.active.Load())
	defer func() { stopRun(); wg.Wait() }()
	for {
		changed := n.history.wait()
		next, at := n.nextSwitch()
		if next == nil {
			select {
			case <-ctx.Done():
				return
			case <-changed:
				continue
			}
		}
		if !n.waitSwitch(ctx, changed, next, at) {
			if ctx.Err() != nil {
				return
			}
			continue // the chain grew meanwhile: recompute
		}
		// Round next.Effective-1 is committed (or its commit deadline has
		// passed): replace the Mesh.
		stopRun()
		wg.Wait()
		stopRun = func() {}
		old := n.active.Load()
		if old != nil {
			if err := old.mesh.Close(); err != nil {
				n.logger.Warn("closing the Mesh of the previous federation version", "err", err)
			}
			n.meshReg.unregisterAll()
		}
		if !n.memberOf(next) {
			n.active.Store(nil)
			n.logger.Warn("not a member of the federation version in force: no longer taking part in rounds",
				"version", next.Version, "effective_round", next.Effective)
			n.switched(next)
			continue
		}
		a, err := n.startVersion(ctx, next)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			n.logger.Error("starting the Mesh of a new federation version failed", "version", next.Version, "err", err)
			n.active.Store(nil)
			n.switched(next)
			continue
		}
		n.active.Store(a)
		n.switched(next)
		n.logger.Info("federation version in force", "version", next.Version, "round", next.Effective,
			"members", len(next.Members), "quorum", next.Quorum)
		run(a)
	}
}

// startVersion builds the Mesh of v, retrying while the old host's ports
// are released.
func (n *Node) startVersion(ctx context.Context, v *config.FederationVersion) (*activeMesh, error) {
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		var m *intermesh.Mesh
		if m, err = n.newVersionMesh(ctx, v); err == nil {
			return &activeMesh{mesh: m, version: v}, nil
		}
		n.meshReg.unregisterAll()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil, err
}

// switched records that the node now follows version v, and makes its
// witness follow v's members.
func (n *Node) switched(v *config.FederationVersion) {
	n.following.Store(v)
	if n.witnessing.witness == nil {
		return
	}
	if err := n.witnessFollow(v); err != nil {
		n.logger.Error("the witness could not follow the federation version in force", "version", v.Version, "err", err)
		return
	}
	n.logger.Info("the witness follows the federation version in force", "version", v.Version, "members", len(v.Members))
}

// nextSwitch returns the version the node must follow next and when: the
// latest version in force at the round where the first version after the
// one it follows takes effect.
func (n *Node) nextSwitch() (*config.FederationVersion, time.Time) {
	cur := n.following.Load()
	_, chain := n.history.current()
	var first *config.FederationVersion
	for _, v := range chain {
		if v.Version > cur.Version {
			first = v
			break
		}
	}
	if first == nil {
		return nil, time.Time{}
	}
	e := max(first.Effective, n.Epoch())
	target := config.InForce(chain, e)
	if target.Version <= cur.Version {
		target = first
	}
	period := n.schedule.Period
	latest := time.Unix(0, 0).Add(time.Duration(target.Effective) * period).Add(period * 4 / 5)
	return target, latest
}

// waitSwitch waits until version next may replace the Mesh: round
// next.Effective has begun and the node committed round next.Effective-1
// (or latest has passed). It returns false if ctx ended or the chain grew.
func (n *Node) waitSwitch(ctx context.Context, changed <-chan struct{}, next *config.FederationVersion, latest time.Time) bool {
	tick := time.NewTicker(max(n.schedule.Period/50, 10*time.Millisecond))
	defer tick.Stop()
	for {
		now := time.Now()
		r := n.schedule.Round(now)
		if r > next.Effective || !now.Before(latest) ||
			(r == next.Effective && (next.Effective == 0 || n.masters.has(next.Effective-1) || n.Mesh() == nil)) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-changed:
			return false
		case <-tick.C:
		}
	}
}

// fedReplicaIndexer hands the FederationUpdate records of a peer's log,
// as the node replicates it, to the node's learner.
type fedReplicaIndexer struct{ inbox chan<- []byte }

// Index implements log.Indexer; it never refuses a record.
func (x fedReplicaIndexer) Index(_ *badger.Txn, rec *log.Record) error {
	if rec.Kind != KindFederationUpdate || len(rec.Payload) > config.MaxFederationNote {
		return nil
	}
	select {
	case x.inbox <- bytes.Clone(rec.Payload):
	default: // the learner is behind; the members' /federation/updates fill the gap
	}
	return nil
}

// runLearner takes the certified updates found in peers' logs into the
// node's chain, in version order. At start, and whenever it sees an update
// for a later version than the next (it missed one), it asks the members
// for their chains (GET /federation/updates), at most once a period, and
// asks again each period until it has the version it saw, or until
// maxFruitlessFetches fetches in a row brought nothing (a member's log can
// name a version nobody serves).
func (n *Node) runLearner(ctx context.Context) {
	var (
		fetching  bool
		lastFetch time.Time
		fetched   = make(chan [][]byte, 1)
		wanted    uint64 // a version seen in a peer's log and not yet in the chain
		misses    int    // fetches in a row that brought no version while wanted is ahead
		tick      = time.NewTicker(n.schedule.Period)
	)
	defer tick.Stop()
	fetch := func() {
		if fetching || time.Since(lastFetch) < n.schedule.Period {
			return
		}
		fetching, lastFetch = true, time.Now()
		go func() { fetched <- n.fetchUpdates(ctx) }()
	}
	learn := func(signed []byte) {
		next, err := config.ParseFederationText(noteText(signed))
		if err != nil {
			return
		}
		cur, _ := n.history.current()
		switch {
		case next.Version <= cur.Version:
			return
		case next.Version > cur.Version+1:
			wanted = max(wanted, next.Version)
			fetch() // a version is missing: ask the members
			return
		}
		if _, err := n.learnFederationUpdate(ctx, signed); err != nil {
			n.logger.Warn("a federation update from a peer was refused", "version", next.Version, "err", err)
		}
	}
	fetch()
	for {
		select {
		case <-ctx.Done():
			if fetching {
				<-fetched
			}
			return
		case us := <-fetched:
			fetching = false
			before, _ := n.history.current()
			for _, u := range us {
				learn(u)
			}
			cur, _ := n.history.current()
			if len(us) == maxUpdatesAhead {
				wanted = max(wanted, cur.Version+1) // there may be more
			}
			wanted, misses = n.keepWanting(wanted, misses, cur.Version > before.Version)
		case <-tick.C:
			if cur, _ := n.history.current(); cur.Version < wanted {
				fetch()
			}
		case u := <-n.fedInbox:
			learn(u)
		}
	}
}

// startupFetch bounds how long a starting node asks the members for the
// federation updates it missed.
const startupFetch = 3 * time.Second

// maxFruitlessFetches is how many fetches in a row that bring no new
// version the learner makes for a version it saw before it stops asking.
const maxFruitlessFetches = 5

// keepWanting returns the version the learner still asks for after a fetch
// (0 for none) and the fruitless fetches in a row: it stops asking once it
// has the version, or after maxFruitlessFetches fetches brought nothing.
func (n *Node) keepWanting(wanted uint64, misses int, progress bool) (uint64, int) {
	cur, _ := n.history.current()
	switch {
	case wanted <= cur.Version:
		return 0, 0
	case progress:
		return wanted, 0
	case misses+1 < maxFruitlessFetches:
		return wanted, misses + 1
	}
	n.logger.Warn("no member serves a federation version a peer's log showed; stopped asking for it",
		"version", wanted, "fetches", maxFruitlessFetches)
	return 0, 0
}

// newFedRefused is the counter of the federation updates from peers a node
// refused (registered with the federation metrics).
func newFedRefused() *prometheus.CounterVec {
	return metricset.New(nil).CounterVec("intermesh_federation_updates_refused_total",
		"Federation updates from peers this node refused, by reason (backdated: in force from a round already certified; unverified: a member served a chain with an entry that does not verify).",
		"reason")
}

// registerFederationMetrics exports the versions of the federation the node
// follows and has accepted, so that a dashboard shows a change reaching
// every member.
func (n *Node) registerFederationMetrics() error {
	s := metricset.New(n.registry)
	s.GaugeFunc("intermesh_federation_version",
		"The version of the federation whose member set this node follows now (0: the federation file).",
		func() float64 {
			if v := n.following.Load(); v != nil {
				return float64(v.Version)
			}
			return 0
		})
	s.GaugeFunc("intermesh_federation_version_accepted",
		"The latest certified federation update this node accepted (it may take effect in a later round).",
		func() float64 {
			cur, _ := n.history.current()
			return float64(cur.Version)
		})
	s.Register("intermesh_federation_updates_refused_total", n.fedRefused)
	if err := s.Err(); err != nil {
		return fmt.Errorf("node: federation metrics: %w", err)
	}
	return nil
}

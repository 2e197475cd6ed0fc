package intermesh

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/merkle"
)

// Replication parameters.
const (
	keepVerified     = 16          // verified checkpoints remembered per origin
	maxPublishTick   = 16          // batches published per tick at most
	maxPublishLag    = 8192        // records; further behind, peers fetch them
	retryFetch       = time.Second // after every source failed
	connectWait      = 50 * time.Millisecond
	inboxBatches     = 128              // batches queued to be appended, shared by the origins
	minInboxBatches  = 8                // batches queued per origin, at least; as many wait for their turn
	maxMergedRecords = 4096             // records of queued batches appended in one go
	inboxCheckpoints = 256              // checkpoints waiting to be checked
	pullPageEntries  = 20000            // records per Transfer page
	pullPageBytes    = 16 << 20         // bytes per Transfer page
	catchUpConnected = 10 * time.Second // catch-up waits this long at most for peers
)

// replicator keeps the replica logs of the other members (see "Replication"
// in the package comment). Run starts its goroutines: the publisher of this
// node's records, the checker of checkpoints, one appender of gossiped
// batches and one fetcher per member, the catch-up, and the Transfer
// server's handlers.
type replicator struct {
	m       *Mesh
	l       *log.Log
	srv     transferServer
	cps     chan heldCheckpoint
	ready   chan struct{} // closed once the catch-up has ended
	origins map[string]*replicaState
}

// replicaState is what the replicator knows of one member's replica.
type replicaState struct {
	origin string
	id     peer.ID
	rep    *log.Replica
	tree   *merkle.Tree
	wake   chan struct{}      // cap 1: the fetcher has work
	inbox  chan *recordsBatch // valid gossiped batches waiting to be appended
	// reach is how far the replica gets with the batches its appender
	// holds (0 when it holds none): the fetcher leaves records below it to
	// the appender.
	reach  atomic.Uint64
	pullMu sync.Mutex // one Transfer pull at a time

	suspicious chan struct{} // cap 1: the fork investigator has work
	mending    chan struct{} // cap 1: the repairer has work (repair.go)

	mu        sync.Mutex
	target    uint64                // records known to exist
	pending   []heldCheckpoint      // not verified yet
	verified  []heldCheckpoint      // latest last, at most keepVerified
	untrusted string                // why the replica is no longer trusted
	brokenAt  uint64                // > 0: checkpoints of this size or more cover a record that breaks the MapRule
	rmap      replicaMap            // the replica's map (replica_map.go)
	suspect   *heldCheckpoint       // to investigate for a fork (fork.go)
	mendWith  *heldCheckpoint       // to repair the replica with (repair.go)
	badRelays map[peer.ID]time.Time // relays not asked until then (relay.go)
}

func newReplicator(m *Mesh, l *log.Log) (*replicator, error) {
	r := &replicator{
		m:       m,
		l:       l,
		cps:     make(chan heldCheckpoint, inboxCheckpoints),
		ready:   make(chan struct{}),
		origins: map[string]*replicaState{},
	}
	r.srv = transferServer{m: m, l: l}
	perOrigin := max(minInboxBatches, inboxBatches/max(1, len(m.members)-1))
	for o, mb := range m.members {
		if o == m.self.origin {
			continue
		}
		rep, err := l.Replica(o)
		if err != nil {
			return nil, err
		}
		rmap, err := newReplicaMap(l.DB(), o, rep.Size())
		if err != nil {
			return nil, err
		}
		r.origins[o] = &replicaState{
			origin: o, id: mb.id, rep: rep, rmap: rmap,
			tree: merkle.NewTree(l.DB(), merkle.ReplicaPrefix(o)),
			wake: make(chan struct{}, 1), inbox: make(chan *recordsBatch, perOrigin), suspicious: make(chan struct{}, 1), mending: make(chan struct{}, 1),
		}
		m.metrics.mapMismatches.WithLabelValues(o) // exported at 0 from the start, for alerts
		m.metrics.mapClaims.WithLabelValues(o, "refuted")
	}
	return r, nil
}

// run runs the replicator's goroutines until ctx ends and waits for them.
func (r *replicator) run(ctx context.Context) {
	r.srv.start()
	defer r.srv.stop()
	for o, n := range r.m.snapshot().cps {
		if rs := r.origins[o]; rs != nil {
			if cp, _, err := merkle.OpenCheckpoint(n, r.m.verifiers); err == nil {
				rs.addCheckpoint(heldCheckpoint{cp: cp, note: n, hash: sha256.Sum256(n)})
			}
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { r.publishLoop(ctx) })
	wg.Go(func() { r.checkLoop(ctx) })
	wg.Go(func() { r.catchUp(ctx) })
	for _, rs := range r.origins {
		wg.Go(func() { r.appendLoop(ctx, rs) })
		wg.Go(func() { r.fetchLoop(ctx, rs) })
		wg.Go(func() { r.investigateLoop(ctx, rs) })
		wg.Go(func() { r.repairLoop(ctx, rs) })
	}
	wg.Wait()
}

// caughtUp reports whether the catch-up has ended.
func (r *replicator) caughtUp() bool {
	select {
	case <-r.ready:
		return true
	default:
		return false
	}
}

// offerBatch hands a valid gossiped batch to its origin's appender; when
// that is inboxBatches/(members-1) batches behind (at least
// minInboxBatches) the batch is dropped, and the gap it leaves is fetched.
func (r *replicator) offerBatch(b *recordsBatch) {
	rs := r.origins[b.origin]
	if rs == nil {
		return
	}
	select {
	case rs.inbox <- b:
	default:
		rs.raiseTarget(b.first + uint64(len(b.recs)))
		rs.poke()
	}
}

// offerCheckpoint hands an accepted checkpoint of a member to the replicator.
func (r *replicator) offerCheckpoint(hc heldCheckpoint) {
	select {
	case r.cps <- hc:
	default:
		r.m.log.Warn("replicator busy; checkpoint not checked against the replica", "member", hc.cp.Origin, "round", hc.cp.Round)
	}
}

// publishLoop gossips this node's new records in signed batches every
// PublishInterval, from the log's size at start (peers fetch anything older
// with Transfer).
func (r *replicator) publishLoop(ctx context.Context) {
	next := r.l.Size()
	t := time.NewTicker(r.m.cfg.PublishInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		size := r.l.Size()
		if size > next+maxPublishLag {
			next = size - maxPublishLag
		}
		for n := 0; next < size && n < maxPublishTick; {
			page, err := r.l.Range(ctx, log.Constraints{From: next, MaxEntries: maxBatchCount, MaxBytes: maxBatchBytes})
			if err != nil || len(page.Records) == 0 {
				if err != nil && ctx.Err() == nil {
					r.m.log.Warn("reading records to publish", "from", next, "err", err)
				}
				break
			}
			for _, b := range batchesOf(r.m.self.origin, page.Records) {
				data := encodeBatch(r.m.fed.Name, b, r.m.cfg.Key)
				if len(data) <= maxRecordsSize {
					if err := r.m.topics.records.Publish(ctx, data); err != nil && ctx.Err() == nil {
						r.m.log.Warn("publishing records", "first", b.first, "err", err)
					}
				}
				next = b.first + uint64(len(b.recs))
				n++
			}
		}
	}
}

// appendLoop appends rs's gossiped batches until ctx ends. The appenders of
// the origins run side by side, so their commits share Badger's writes
// and fsyncs. Gossipsub validates messages concurrently and so delivers an
// origin's batches out of order: a batch that starts past the replica's
// end waits in a reorder buffer for the ones before it, and the fetcher
// pulls what is still missing a retryFetch later. Batches that continue
// each other are appended together.
func (r *replicator) appendLoop(ctx context.Context, rs *replicaState) {
	q := newReorder(cap(rs.inbox))
	t := time.NewTicker(retryFetch)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-rs.inbox:
			r.hold(rs, q, b)
		case <-t.C: // a pull may have filled the gap before a held batch
			if q.len() == 0 {
				continue
			}
		}
		for drained := false; !drained; {
			select {
			case b := <-rs.inbox:
				r.hold(rs, q, b)
			default:
				drained = true
			}
		}
		r.held(rs, q)
		for ctx.Err() == nil {
			b := q.next(rs.rep.Size())
			if b == nil {
				break
			}
			r.applyBatch(ctx, b)
		}
		r.held(rs, q)
	}
}

// held publishes how far the batches in q take the replica (rs.reach; 0
// when q is empty).
func (r *replicator) held(rs *replicaState, q *reorder) {
	reach := uint64(0)
	if q.len() > 0 {
		reach = q.reach(rs.rep.Size())
	}
	rs.reach.Store(reach)
}

// hold puts b in q, and makes the batch q drops to make room, if any, a
// gap to fetch.
func (r *replicator) hold(rs *replicaState, q *reorder, b *recordsBatch) {
	rs.raiseTarget(b.first + uint64(len(b.recs)))
	if q.add(b) != nil {
		rs.poke()
	}
}

// reorder holds an origin's gossiped batches until the replica reaches
// them, by first record, at most max of them.
type reorder struct {
	max  int
	held map[uint64]*recordsBatch
}

func newReorder(max int) *reorder {
	return &reorder{max: max, held: map[uint64]*recordsBatch{}}
}

func (q *reorder) len() int { return len(q.held) }

// reach returns how far the held batches extend a replica of size
// records without a gap.
func (q *reorder) reach(size uint64) uint64 {
	for {
		ext := size
		for first, b := range q.held {
			if end := first + uint64(len(b.recs)); first <= size && end > ext {
				ext = end
			}
		}
		if ext == size {
			return size
		}
		size = ext
	}
}

// add holds b (of two batches with the same first, the longer) and
// returns the batch dropped to keep at most max: the one that starts
// furthest ahead, possibly b.
func (q *reorder) add(b *recordsBatch) (dropped *recordsBatch) {
	if c, ok := q.held[b.first]; ok && len(c.recs) >= len(b.recs) {
		return nil
	}
	q.held[b.first] = b
	if len(q.held) <= q.max {
		return nil
	}
	far := b
	for _, c := range q.held {
		if c.first > far.first {
			far = c
		}
	}
	delete(q.held, far.first)
	return far
}

// next forgets the batches that end at or before size, and returns the
// held batches that extend a replica of size records, merged into one
// batch (from one that starts at or before size, then those that continue
// it, up to maxMergedRecords records); nil if no batch extends it.
func (q *reorder) next(size uint64) *recordsBatch {
	var b *recordsBatch
	for first, c := range q.held {
		end := first + uint64(len(c.recs))
		switch {
		case end <= size:
			delete(q.held, first)
		case first <= size && (b == nil || end > b.first+uint64(len(b.recs))):
			b = c
		}
	}
	if b == nil {
		return nil
	}
	delete(q.held, b.first)
	merged := b
	for len(merged.recs) < maxMergedRecords {
		c, ok := q.held[merged.first+uint64(len(merged.recs))]
		if !ok {
			break
		}
		delete(q.held, c.first)
		if merged == b {
			merged = &recordsBatch{origin: b.origin, first: b.first, recs: append([]log.Record(nil), b.recs...)}
		}
		merged.recs = append(merged.recs, c.recs...)
	}
	return merged
}

// checkLoop checks the members' checkpoints against their replicas until
// ctx ends.
func (r *replicator) checkLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case hc := <-r.cps:
			rs := r.origins[hc.cp.Origin]
			if rs == nil {
				continue
			}
			rs.addCheckpoint(hc)
			rs.raiseTarget(hc.cp.Size) // fetched if gossip has not brought them in a retryFetch
			r.verify(rs)
		}
	}
}

// applyBatch appends a gossiped batch (or several merged) to its origin's
// replica.
func (r *replicator) applyBatch(ctx context.Context, b *recordsBatch) {
	rs := r.origins[b.origin]
	if rs == nil || rs.distrusted() {
		return
	}
	end := b.first + uint64(len(b.recs))
	rs.raiseTarget(end)
	_, err := rs.rep.Append(ctx, b.recs)
	var fork *log.ForkError
	switch {
	case err == nil:
		r.verify(rs)
	case errors.Is(err, log.ErrGap):
		rs.poke()
	case errors.As(err, &fork):
		r.distrust(rs, fmt.Sprintf("a batch signed by the origin conflicts with record %d held", fork.Seq))
	case ctx.Err() == nil:
		r.m.log.Warn("appending a records batch to the replica", "member", b.origin, "first", b.first, "err", err)
	}
	r.observe(rs)
}

// verify checks every pending checkpoint the replica now covers. A
// checkpoint whose root the replica does not reproduce makes the replica
// untrusted: the records held (each from a batch signed by the origin, or
// served by the origin) are not what the origin's checkpoint signs.
func (r *replicator) verify(rs *replicaState) {
	rs.mu.Lock()
	verified := r.verifyLocked(rs)
	rs.mu.Unlock()
	for _, hc := range verified {
		if len(hc.cp.Map) == 0 {
			// Its records verify, but without a map line nobody can
			// check what it says of names: it is never counted.
			r.m.log.Debug("member's checkpoint has no map line; not counted", "member", rs.origin, "round", hc.cp.Round)
			continue
		}
		// The round loop counts it; a goroutine, so that the replicator
		// never waits for the round loop (it ends with the loop).
		go r.m.do(context.Background(), func(st *state) { st.countVerified(hc) })
	}
}

// verifyLocked is verify with rs.mu held; it returns the checkpoints it
// verified.
func (r *replicator) verifyLocked(rs *replicaState) []heldCheckpoint {
	if rs.untrusted != "" {
		return nil
	}
	var verified []heldCheckpoint
	size := rs.rep.Size()
	slices.SortStableFunc(rs.pending, bySize) // the replica's map only advances
	var left []heldCheckpoint
	for _, hc := range rs.pending {
		if hc.cp.Size > size {
			left = append(left, hc)
			continue
		}
		if rs.brokenAt > 0 && hc.cp.Size >= rs.brokenAt {
			continue // covers a record that breaks the map's rules
		}
		err := rs.tree.VerifyCheckpoint(hc.cp)
		var mapWrong string
		if err == nil {
			mapWrong, err = rs.checkMapLocked(context.Background(), hc, r.m.cfg.MapRule)
		}
		var broken *ruleViolation
		switch {
		case errors.As(err, &broken):
			r.ruleBrokenLocked(rs, hc, broken)
		case err == nil && mapWrong != "":
			r.mapMismatchLocked(rs, hc, mapWrong)
		case err == nil:
			rs.addVerified(hc)
			verified = append(verified, hc)
			r.m.metrics.verifiedSize.WithLabelValues(rs.origin).Set(float64(largestSize(rs.verified)))
		case errors.Is(err, merkle.ErrInconsistent):
			rs.untrusted = err.Error()
			r.m.metrics.inconsistent.WithLabelValues(rs.origin).Inc()
			r.m.log.Warn("replica does not match its origin's checkpoint; no longer trusted", "member", rs.origin, "round", hc.cp.Round, "err", err)
			rs.suspectLocked(hc)
			rs.repairLocked(hc)
			rs.pending = nil
			return verified
		case errors.Is(err, merkle.ErrBeyondTree):
			left = append(left, hc)
		default:
			r.m.log.Warn("verifying a replica", "member", rs.origin, "round", hc.cp.Round, "err", err)
			left = append(left, hc)
		}
	}
	rs.pending = left
	return verified
}

// distrust marks a replica as no longer trusted, and says so.
func (r *replicator) distrust(rs *replicaState, why string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.untrusted != "" {
		return
	}
	rs.untrusted = why
	for _, hc := range rs.pending {
		rs.suspectLocked(hc)
		rs.repairLocked(hc)
	}
	rs.pending = nil
	r.m.metrics.inconsistent.WithLabelValues(rs.origin).Inc()
	r.m.log.Warn("replica no longer trusted", "member", rs.origin, "reason", why)
}

// observe updates the replica's metrics.
func (r *replicator) observe(rs *replicaState) {
	size := rs.rep.Size()
	rs.mu.Lock()
	target := rs.target
	rs.mu.Unlock()
	r.m.metrics.replicaSize.WithLabelValues(rs.origin).Set(float64(size))
	r.m.metrics.lag.WithLabelValues(rs.origin).Set(float64(target - min(target, size)))
}

// fetchLoop fills the replica's gaps with Transfer until ctx ends. A
// poke (a batch dropped) pulls at once. Other known gaps (records a
// checkpoint or a batch announced) are what gossip is still delivering,
// so the loop waits for them: at every tick it pulls only if the replica
// still lacks records that were known to exist at the previous tick, a
// whole retryFetch ago, and that the appender does not hold (rs.reach:
// an appender slowed by the disk holds batches for longer than that).
// Pulling them earlier would fetch records twice under load, once by
// Transfer and once by gossip.
func (r *replicator) fetchLoop(ctx context.Context, rs *replicaState) {
	t := time.NewTicker(retryFetch)
	defer t.Stop()
	var known uint64 // the target at the previous tick
	for {
		due := uint64(0)
		select {
		case <-ctx.Done():
			return
		case <-rs.wake:
			due = rs.targetSize()
		case <-t.C:
			due, known = known, rs.targetSize()
			if rs.reach.Load() >= due {
				continue // held by the appender, which is behind
			}
		}
		if rs.distrusted() || rs.rep.Size() >= due {
			continue
		}
		r.pullAny(ctx, rs)
	}
}

// pullAny pulls the replica's missing records from its origin if connected,
// else from the first connected member that serves them.
func (r *replicator) pullAny(ctx context.Context, rs *replicaState) bool {
	for _, p := range r.sources(rs) {
		err := r.pull(ctx, rs, p)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if errors.Is(err, errPageLimits) {
			// Broken protocol, not a failed network: a relay is paused
			// and penalized like a liar, the origin penalized only.
			if p != rs.id {
				r.badRelay(rs, p)
			} else {
				r.m.penalize(p, penaltyBadRelay)
			}
			r.m.log.Warn("a member served a Transfer page over the limits asked for; dropped", "member", rs.origin, "from", r.m.byPeer[p], "err", err)
			continue
		}
		r.m.log.Debug("transfer failed; trying another member", "member", rs.origin, "from", r.m.byPeer[p], "err", err)
	}
	return false
}

// sources are the members to ask for rs's records: the origin first, then
// every other connected member, but those that lately relayed records
// contradicting the origin's checkpoint (relay.go).
func (r *replicator) sources(rs *replicaState) []peer.ID {
	var out []peer.ID
	net := r.m.host.Network()
	if net.Connectedness(rs.id) == network.Connected {
		out = append(out, rs.id)
	}
	for _, p := range r.m.Peers() {
		if p != rs.id && !rs.relayPaused(p) {
			out = append(out, p)
		}
	}
	return out
}

// pull appends every record p holds of rs's origin past the replica's end,
// one Transfer page at a time, fetching the next page while appending the
// current one. From a relay (p is not the origin) a page's records are
// taken only up to the largest checkpoint of the origin waiting to be
// verified that the page reaches (provenEnd), after checking them against
// every such checkpoint (checkRelayed); records past it are dropped and
// fetched again once a checkpoint covers them, and the relay's claimed
// size is ignored (the replica's target grows only with what the origin
// signed). So
// every record a relay adds to a replica is proven by the origin's
// signature, and a relay cannot make a replica untrusted.
func (r *replicator) pull(ctx context.Context, rs *replicaState, p peer.ID) error {
	rs.pullMu.Lock()
	defer rs.pullMu.Unlock()
	return r.pullLocked(ctx, rs, p)
}

// pullLocked is pull with rs.pullMu held.
func (r *replicator) pullLocked(ctx context.Context, rs *replicaState, p peer.ID) error {
	type result struct {
		page transferPage
		err  error
	}
	fetch := func(from uint64) chan result {
		c := make(chan result, 1)
		go func() {
			pg, err := r.m.fetchPage(ctx, p, rs.origin, from, pullPageEntries, pullPageBytes)
			c <- result{pg, err}
		}()
		return c
	}
	from := rs.rep.Size()
	pending := fetch(from)
	defer func() {
		if pending != nil {
			<-pending
		}
	}()
	for {
		res := <-pending
		pending = nil
		if res.err != nil {
			return res.err
		}
		recs, end := res.page.records, res.page.size
		if p != rs.id {
			// A relay's records count only as far as a checkpoint of the
			// origin proves them, and its claimed size not at all.
			reach, proven := rs.provenEnd(from, from+uint64(len(recs)))
			recs = recs[:reach-min(reach, from)]
			end = min(end, proven)
			if len(recs) == 0 {
				return nil
			}
			if err := r.checkRelayed(rs, p, from, recs); err != nil {
				return err
			}
		}
		n := uint64(len(recs))
		if n == 0 {
			return nil
		}
		rs.raiseTarget(end)
		if from+n < end {
			pending = fetch(from + n)
		}
		_, err := rs.rep.Append(ctx, recs)
		var fork *log.ForkError
		if errors.As(err, &fork) && p == rs.id {
			r.distrust(rs, fmt.Sprintf("the origin served a record %d that differs from the one held", fork.Seq))
		}
		r.verify(rs)
		r.observe(rs)
		if err != nil {
			return err
		}
		if pending == nil {
			return nil
		}
		from += n
	}
}

// provenEnd returns, of the checkpoints of rs's origin waiting to be
// verified that are past from, the size of the largest one at most to
// (how far records relayed in [from, to) can be checked against the
// origin's signature by checkRelayed, and so appended) and of the largest
// one (how far it is worth asking a relay); 0 if there is none.
func (rs *replicaState) provenEnd(from, to uint64) (reach, proven uint64) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, hc := range rs.pending {
		if s := hc.cp.Size; s > from {
			proven = max(proven, s)
			if s <= to {
				reach = max(reach, s)
			}
		}
	}
	return reach, proven
}

// catchUp runs once at start: it waits (briefly) for connections, pulls
// every replica up to what its source holds, then lets the node vote.
func (r *replicator) catchUp(ctx context.Context) {
	defer r.m.poke()
	defer close(r.ready)
	ctx, cancel := context.WithTimeout(ctx, r.m.cfg.CatchUpTimeout)
	defer cancel()
	want := min(len(r.origins), max(r.m.quorum-1, 1))
	for len(r.m.Peers()) < want {
		select {
		case <-ctx.Done():
			return
		case <-time.After(connectWait):
		}
	}
	var wg sync.WaitGroup
	for _, rs := range r.origins {
		wg.Go(func() { r.pullAny(ctx, rs) })
	}
	wg.Wait()
}

// addCheckpoint queues hc for verification, unless it is already known;
// only the latest keepVerified wait. Once the replica is untrusted, hc goes
// to the fork investigator instead.
func (rs *replicaState) addCheckpoint(hc heldCheckpoint) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.untrusted != "" {
		rs.suspectLocked(hc)
		rs.repairLocked(hc)
		return
	}
	if len(rs.pending) >= keepVerified {
		rs.pending = rs.pending[1:]
	}
	for _, h := range rs.pending {
		if h.hash == hc.hash {
			return
		}
	}
	for _, h := range rs.verified {
		if h.hash == hc.hash {
			return
		}
	}
	rs.pending = append(rs.pending, hc)
}

// addVerified remembers a verified checkpoint, in round order; rs.mu held.
// Past keepVerified the oldest is forgotten, unless it is the largest: the
// verified size never decreases.
func (rs *replicaState) addVerified(hc heldCheckpoint) {
	i := len(rs.verified)
	for i > 0 && rs.verified[i-1].cp.Round > hc.cp.Round {
		i--
	}
	rs.verified = slices.Insert(rs.verified, i, hc)
	if len(rs.verified) > keepVerified {
		drop := 0
		if largestIndex(rs.verified) == 0 {
			drop = 1
		}
		rs.verified = slices.Delete(rs.verified, drop, drop+1)
	}
}

func (rs *replicaState) raiseTarget(size uint64) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.target = max(rs.target, size)
}

func (rs *replicaState) targetSize() uint64 {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.target
}

func (rs *replicaState) distrusted() bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.untrusted != ""
}

// poke wakes the fetcher.
func (rs *replicaState) poke() {
	select {
	case rs.wake <- struct{}{}:
	default:
	}
}

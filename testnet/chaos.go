package testnet

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"
)

// ChaosOptions configure Processes.Chaos.
//
// The mechanism: a kill is SIGKILL of a member process, and its restart
// `meshd run` on the same directory; a partition is SIGUSR1 to a member,
// which makes its libp2p connection gater refuse and close every
// connection with the other members (while its portal keeps serving), and
// the heal is SIGUSR2. Both are real: the process dies without a chance to
// flush anything, the partitioned member's checkpoints and records stop
// reaching the others and theirs stop reaching it.
type ChaosOptions struct {
	// Seed seeds the random choices (victims, intervals, durations); a run
	// with the same seed makes the same choices. Printed by the caller.
	Seed uint64
	// KillEvery is the mean interval between kills (each interval is drawn
	// uniformly from [KillEvery/2, 3*KillEvery/2]); 0 kills nobody.
	KillEvery time.Duration
	// PartitionEvery is the mean interval between partitions; 0 partitions
	// nobody.
	PartitionEvery time.Duration
	// Down is the mean time a killed member stays down and a partition
	// lasts (drawn from [Down/2, 3*Down/2]). Default 2 epoch periods.
	Down time.Duration
	// MaxFaulty is how many members may be down or partitioned at once.
	// Default: members minus quorum, so that every round can still be
	// certified; at least 1. A restarted or healed member counts as
	// faulty until it exchanges gossip with every other member that is up
	// and not partitioned (or for at most 2 minutes), and a restarted one
	// for an epoch period more, while it catches up before it votes.
	MaxFaulty int
	// Log receives one line per event; nil discards them.
	Log io.Writer
}

// ChaosStats counts what Chaos did.
type ChaosStats struct {
	Kills, Restarts, Partitions, Heals int
	// NotRejoined counts restarted or healed members that did not
	// exchange gossip with every other member within 2 minutes; MaxRejoin is the
	// longest time one took.
	NotRejoined int
	MaxRejoin   time.Duration
	// Failed counts faults that could not be injected or undone (a restart
	// that failed, a signal that could not be sent), with the last error.
	Failed  int
	LastErr string `json:",omitempty"`
}

// Chaos kills and restarts members and partitions and heals them at random
// intervals until ctx ends; then it heals and restarts every member it
// faulted, and returns what it did.
func (p *Processes) Chaos(ctx context.Context, o ChaosOptions) ChaosStats {
	if o.Down <= 0 {
		o.Down = 2 * p.opts.Period
	}
	if o.MaxFaulty <= 0 {
		o.MaxFaulty = max(1, p.Size()-p.fed.EffectiveQuorum())
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	c := &chaos{p: p, o: o, rng: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)), faulty: map[int]bool{}, out: map[int]bool{}}
	var wg sync.WaitGroup
	if o.KillEvery > 0 {
		wg.Go(func() { c.every(ctx, o.KillEvery, c.kill) })
	}
	if o.PartitionEvery > 0 {
		wg.Go(func() { c.every(ctx, o.PartitionEvery, c.partition) })
	}
	wg.Wait()
	c.undoAll()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// chaos is one Chaos run.
type chaos struct {
	p   *Processes
	o   ChaosOptions
	mu  sync.Mutex
	rng *rand.Rand // guarded by mu
	// faulty are the members down or partitioned now, or not rejoined yet.
	faulty map[int]bool
	// out are the members down (killed, not restarted) or partitioned now:
	// no member can exchange gossip with them.
	out   map[int]bool
	stats ChaosStats
	wg    sync.WaitGroup // pending undos
}

// jitter draws a duration uniformly from [d/2, 3d/2].
func (c *chaos) jitter(d time.Duration) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return d/2 + time.Duration(c.rng.Int64N(int64(d)+1))
}

// every calls fault at random intervals around mean until ctx ends. A
// fault that could not be done (too many members faulty already) is tried
// again every half second, so that every interval brings its fault.
func (c *chaos) every(ctx context.Context, mean time.Duration, fault func(context.Context) bool) {
	wait := c.jitter(mean)
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if fault(ctx) {
			wait = c.jitter(mean)
		} else {
			wait = 500 * time.Millisecond
		}
	}
}

// pick chooses a healthy member to fault and marks it faulty, or returns
// -1 when MaxFaulty members are faulty already.
func (c *chaos) pick() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.faulty) >= c.o.MaxFaulty {
		return -1
	}
	var healthy []int
	for i := range c.p.Size() {
		if !c.faulty[i] && c.p.Running(i) {
			healthy = append(healthy, i)
		}
	}
	if len(healthy) == 0 {
		return -1
	}
	i := healthy[c.rng.IntN(len(healthy))]
	c.faulty[i] = true
	return i
}

func (c *chaos) logf(format string, args ...any) {
	fmt.Fprintf(c.o.Log, "%s chaos: %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (c *chaos) failed(err error) {
	c.mu.Lock()
	c.stats.Failed++
	c.stats.LastErr = err.Error()
	c.mu.Unlock()
	c.logf("FAILED: %v", err)
}

// kill SIGKILLs a member and restarts it after a while; false when no
// member could be picked.
func (c *chaos) kill(ctx context.Context) bool {
	return c.inject(ctx, fault{
		do:   c.p.Kill,
		undo: func(i int) error { return c.p.StartMember(context.WithoutCancel(ctx), i) },
		done: &c.stats.Kills, undone: &c.stats.Restarts,
		doLog: "SIGKILL node%d; restarting it in %s", undoLog: "node%d restarted",
		// A restarted member catches up before it votes (up to half a
		// period, then its replicas verify the open round): it counts as
		// faulty until then.
		settle: c.p.Period(),
	})
}

// partition isolates a member from the others and heals it after a while;
// false when no member could be picked.
func (c *chaos) partition(ctx context.Context) bool {
	return c.inject(ctx, fault{
		do:   func(i int) error { return c.p.Isolate(i, true) },
		undo: func(i int) error { return c.p.Isolate(i, false) },
		done: &c.stats.Partitions, undone: &c.stats.Heals,
		doLog: "partition node%d from the others for %s", undoLog: "node%d healed",
	})
}

// fault is one kind of fault the chaos injects into a member.
type fault struct {
	// do starts the fault on member i, undo ends it.
	do, undo func(i int) error
	// done and undone are the ChaosStats counters of the two.
	done, undone *int
	// doLog (member, how long) and undoLog (member) are what is logged.
	doLog, undoLog string
	// settle is how long the member still counts as faulty once it
	// exchanges gossip again.
	settle time.Duration
}

// inject picks a member, starts f on it and ends it after a jittered Down;
// once ended, the member counts as faulty until it has rejoined. False
// when no member could be picked.
func (c *chaos) inject(ctx context.Context, f fault) bool {
	i := c.pick()
	if i < 0 {
		return false
	}
	if err := f.do(i); err != nil {
		c.failed(err)
		c.heal(i)
		return true
	}
	d := c.jitter(c.o.Down)
	c.mu.Lock()
	*f.done++
	c.out[i] = true
	c.mu.Unlock()
	c.logf(f.doLog, i, d.Round(time.Millisecond))
	c.later(ctx, d, func() {
		if err := f.undo(i); err != nil {
			c.failed(err)
		} else {
			c.mu.Lock()
			*f.undone++
			delete(c.out, i)
			c.mu.Unlock()
			c.logf(f.undoLog, i)
			c.rejoined(ctx, i)
			if f.settle > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(f.settle):
				}
			}
		}
		c.heal(i)
	})
	return true
}

// rejoined waits until member i exchanges gossip with every other member
// that is not down or partitioned again: until then it still counts as
// faulty (a restarted member is not back until it has reconnected), so
// that the faults never outnumber MaxFaulty. Members that another fault
// keeps out are not waited for (they would make this member's rejoin look
// as slow as their own fault).
func (c *chaos) rejoined(ctx context.Context, i int) {
	start := time.Now()
	want := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		n := c.p.Size() - 1
		for j := range c.out {
			if j != i {
				n--
			}
		}
		return n
	}
	err := c.p.waitGossiping(context.WithoutCancel(ctx), i, rejoinTimeout, want)
	took := time.Since(start)
	c.mu.Lock()
	c.stats.MaxRejoin = max(c.stats.MaxRejoin, took)
	if err != nil {
		c.stats.NotRejoined++
	}
	c.mu.Unlock()
	if err != nil {
		c.logf("node%d: %v", i, err)
		return
	}
	c.logf("node%d exchanges gossip with every member again (%s)", i, took.Round(time.Millisecond))
}

// rejoinTimeout bounds how long a restarted or healed member may take to
// rejoin before the chaos counts it healthy anyway.
const rejoinTimeout = 2 * time.Minute

// heal marks member i healthy again.
func (c *chaos) heal(i int) {
	c.mu.Lock()
	delete(c.faulty, i)
	c.mu.Unlock()
}

// later runs undo after d, or at once when ctx ends (so that a Chaos run
// leaves every member up and connected).
func (c *chaos) later(ctx context.Context, d time.Duration, undo func()) {
	c.wg.Go(func() {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		undo()
	})
}

// undoAll waits for the pending restarts and heals.
func (c *chaos) undoAll() { c.wg.Wait() }

// Isolate partitions member i from the others (on true: SIGUSR1, its
// gater refuses every member connection) or heals it (SIGUSR2).
func (p *Processes) Isolate(i int, on bool) error {
	p.mu.Lock()
	pr := p.procs[i]
	p.mu.Unlock()
	if pr == nil {
		return fmt.Errorf("testnet: member %d is not running", i)
	}
	sig := syscall.SIGUSR2
	if on {
		sig = syscall.SIGUSR1
	}
	if err := pr.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("testnet: member %d: %w", i, err)
	}
	return nil
}

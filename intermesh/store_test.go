package intermesh

import (
	"context"
	"sync"
	"testing"
	"time"
)

// slowCommitter runs a single-member federation (quorum 1: every published
// checkpoint is a certificate at once) whose Commit hook blocks until
// release is closed, and records the rounds committed.
type slowCommitter struct {
	*Mesh
	clk     *clock
	log     *testLog
	release chan struct{}
	cancel  context.CancelFunc
	done    chan error

	mu        sync.Mutex
	committed map[uint64]bool
}

func startSlowCommitter(t *testing.T) *slowCommitter {
	t.Helper()
	fed, keys := testFederation(t, 1)
	s := &slowCommitter{clk: newClock(), release: make(chan struct{}), committed: map[uint64]bool{}, done: make(chan error, 1)}
	s.log = newTestLog(t, fed.Members[0].Origin, keys[0])
	m, err := New(context.Background(), Config{
		Federation: fed, Origin: fed.Members[0].Origin, Key: keys[0], Listen: testListen, Now: s.clk.now,
		Commit: func(_ context.Context, r RoundResult) error {
			<-s.release
			s.mu.Lock()
			s.committed[r.Round] = true
			s.mu.Unlock()
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Mesh = m
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.release:
		default:
			close(s.release)
		}
		<-s.done
		m.Close()
	})
	return s
}

func (s *slowCommitter) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.committed)
}

// publishRounds closes and publishes n rounds, from a goroutine (the round
// loop may wait for the committer meanwhile).
func (s *slowCommitter) publishRounds(t *testing.T, n int) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			r := s.clk.round.Add(1)
			if err := s.PublishCheckpoint(context.Background(), r, s.log.close(t, r, 1)); err != nil {
				t.Errorf("publish round %d: %v", r, err)
				return
			}
		}
	}()
	return done
}

// TestACommitterThatFallsBehindSlowsTheRoundsAndLosesNothing: with the
// Commit hook stuck, more rounds end than the committer's queue holds; the
// round loop waits for the committer (counted in
// intermesh_commit_queue_waits_total) instead of dropping results, and
// once the hook returns every round's result is committed.
func TestACommitterThatFallsBehindSlowsTheRoundsAndLosesNothing(t *testing.T) {
	t.Parallel()
	s := startSlowCommitter(t)
	const rounds = jobCapacity + 20
	published := s.publishRounds(t, rounds)
	waitFor(t, 10*time.Second, "the round loop waiting for the committer", func() bool {
		return counterValue(t, s.metrics.jobWaits) >= 1
	})
	close(s.release)
	<-published
	waitFor(t, 10*time.Second, "every round committed", func() bool { return s.count() == rounds })
}

// TestShutdownFinishesTheQueuedCommits: results queued when Run is
// cancelled are still committed before Run returns.
func TestShutdownFinishesTheQueuedCommits(t *testing.T) {
	t.Parallel()
	s := startSlowCommitter(t)
	const rounds = 10
	<-s.publishRounds(t, rounds)
	s.cancel()
	close(s.release)
	select {
	case <-s.done:
		s.done <- nil // for the cleanup
	case <-time.After(drainTimeout + 5*time.Second):
		t.Fatal("Run did not return")
	}
	if got := s.count(); got != rounds {
		t.Fatalf("%d of %d queued rounds committed at shutdown", got, rounds)
	}
}

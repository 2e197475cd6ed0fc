package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"
)

// stats counts a run's outcomes; safe for concurrent use.
type stats struct {
	mu        sync.Mutex
	start     time.Time
	setup     int
	latencies []time.Duration           // of acknowledged updates
	refused   map[string]map[string]int // portal → reason → count
	examples  map[string]string         // reason → the first error of that reason
	unsent    int                       // scheduled updates never sent
}

func newStats() *stats {
	return &stats{refused: map[string]map[string]int{}, examples: map[string]string{}}
}

func (s *stats) begin(t time.Time) { s.mu.Lock(); s.start = t; s.mu.Unlock() }
func (s *stats) setupAcked()       { s.mu.Lock(); s.setup++; s.mu.Unlock() }

func (s *stats) acked(d time.Duration) {
	s.mu.Lock()
	s.latencies = append(s.latencies, d)
	s.mu.Unlock()
}

func (s *stats) notSent(n int) {
	s.mu.Lock()
	s.unsent += max(0, n)
	s.mu.Unlock()
}

// refuse counts a write to portal that was not acknowledged, for reason.
func (s *stats) refuse(portal, reason string, err error) {
	s.mu.Lock()
	if s.refused[portal] == nil {
		s.refused[portal] = map[string]int{}
	}
	s.refused[portal][reason]++
	if _, ok := s.examples[reason]; !ok && err != nil {
		s.examples[reason] = err.Error()
	}
	s.mu.Unlock()
}

// byReason sums the refusals over the portals; s.mu is held.
func (s *stats) byReason() map[string]int {
	total := map[string]int{}
	for _, m := range s.refused {
		for reason, n := range m {
			total[reason] += n
		}
	}
	return total
}

// refusalSummary lists the refusals, most frequent first.
func (s *stats) refusalSummary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	total := s.byReason()
	if len(total) == 0 {
		return "no refusals"
	}
	out := ""
	for _, r := range sortedReasons(total) {
		if out != "" {
			out += ", "
		}
		out += fmt.Sprintf("%d %s, e.g. %s", total[r], r, s.examples[r])
	}
	return out
}

// sortedReasons are the keys of m, most frequent first.
func sortedReasons(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}

// progressLine is the one-line state of the run.
func (s *stats) progressLine() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	refused := 0
	for _, n := range s.byReason() {
		refused += n
	}
	if s.start.IsZero() {
		return fmt.Sprintf("creating accounts: %d created, %d refused", s.setup, refused)
	}
	el := time.Since(s.start)
	return fmt.Sprintf("%5.0fs  %d acked (%.0f/s)  %d refused  p99 %s",
		el.Seconds(), len(s.latencies), float64(len(s.latencies))/el.Seconds(), refused, percentile(s.latencies, 0.99).Round(time.Millisecond))
}

func (s *stats) report(cfg Config, accounts int, setup, elapsed time.Duration) *Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r := &Report{
		Portals: cfg.Portals, Accounts: accounts, SetupSeconds: setup.Seconds(), Rate: cfg.Rate,
		DurationSeconds: elapsed.Seconds(), Acknowledged: len(s.latencies), NotSent: s.unsent, Refused: map[string]int{},
		LatencyP50ms: ms(percentile(s.latencies, 0.50)), LatencyP99ms: ms(percentile(s.latencies, 0.99)),
		LatencyMaxms: ms(percentile(s.latencies, 1)), Acks: cfg.Acks, Concurrency: cfg.Concurrency,
	}
	r.Examples = map[string]string{}
	for k, v := range s.byReason() {
		r.Refused[k], r.Examples[k] = v, s.examples[k]
	}
	r.RefusedByPortal = map[string]map[string]int{}
	for p, m := range s.refused {
		r.RefusedByPortal[p] = maps.Clone(m)
	}
	if elapsed > 0 {
		r.Throughput = float64(len(s.latencies)) / elapsed.Seconds()
	}
	return r
}

// percentile returns the q-quantile (0..1) of ds by the nearest-rank
// method; 0 for none.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// progress rewrites one progress line on w every second while the run goes
// on.
type progress struct {
	done chan struct{}
	wg   sync.WaitGroup
}

// startProgress starts the progress line; with a nil w there is none.
func startProgress(w io.Writer, s *stats) *progress {
	p := &progress{done: make(chan struct{})}
	if w == nil {
		return p
	}
	p.wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprintf(w, "\r\033[K%s", s.progressLine())
			}
		}
	})
	return p
}

func (p *progress) stop() {
	close(p.done)
	p.wg.Wait()
}

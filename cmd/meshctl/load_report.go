package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/term"
)

// ackedWrite is one acknowledged write, as a line of the --acks file:
//
//	{"portal":"http://127.0.0.1:8080","kind":"Publish","account":"load-1a2b3c4d-7@example.com",
//	 "identifier":"MB2G-...","digest":"<base64url PayloadDigest>","time":"2026-11-28T23:40:01Z"}
//
// The digest (SHA-512 of the envelope's payload, from its trailer) tells
// the versions of one profile apart.
type ackedWrite struct {
	Portal     string    `json:"portal"`
	Kind       string    `json:"kind"` // CreateAccount or Publish
	Account    string    `json:"account"`
	Identifier string    `json:"identifier"`
	Digest     string    `json:"digest"`
	Time       time.Time `json:"time"`
}

// ackWriter appends acknowledged writes to the --acks file.
type ackWriter struct {
	mu  sync.Mutex
	f   *os.File
	w   *bufio.Writer
	err error
}

func openAckWriter(path string) (*ackWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("--acks: %w", err)
	}
	return &ackWriter{f: f, w: bufio.NewWriter(f)}, nil
}

func (a *ackWriter) add(w ackedWrite) {
	b, err := json.Marshal(w)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil {
		b = append(b, '\n')
		_, err = a.w.Write(b)
	}
	if a.err == nil {
		a.err = err
	}
}

// Close flushes and closes the file and returns the first write error.
func (a *ackWriter) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	err := errors.Join(a.err, a.w.Flush(), a.f.Close())
	if err != nil {
		return fmt.Errorf("--acks: %w", err)
	}
	return nil
}

// readAcks reads an --acks file.
func readAcks(path string) ([]ackedWrite, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--acks: %w", err)
	}
	defer f.Close()
	var out []ackedWrite
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var w ackedWrite
		if err := json.Unmarshal(sc.Bytes(), &w); err != nil {
			return nil, fmt.Errorf("--acks %s line %d: %w", path, line, err)
		}
		if w.Portal == "" || w.Identifier == "" || w.Digest == "" {
			return nil, fmt.Errorf("--acks %s line %d: portal, identifier and digest are required", path, line)
		}
		out = append(out, w)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--acks %s: %w", path, err)
	}
	return out, nil
}

// loadStats counts a run's outcomes; safe for concurrent use.
type loadStats struct {
	mu        sync.Mutex
	start     time.Time
	setup     int
	latencies []time.Duration           // of acknowledged updates
	refused   map[string]map[string]int // portal → reason → count
	examples  map[string]string         // reason → the first error of that reason
	unsent    int                       // scheduled updates never sent
}

func newLoadStats() *loadStats {
	return &loadStats{refused: map[string]map[string]int{}, examples: map[string]string{}}
}

func (s *loadStats) begin(t time.Time) { s.mu.Lock(); s.start = t; s.mu.Unlock() }
func (s *loadStats) setupAcked()       { s.mu.Lock(); s.setup++; s.mu.Unlock() }

func (s *loadStats) acked(d time.Duration) {
	s.mu.Lock()
	s.latencies = append(s.latencies, d)
	s.mu.Unlock()
}

func (s *loadStats) notSent(n int) {
	s.mu.Lock()
	s.unsent += max(0, n)
	s.mu.Unlock()
}

// refuse counts a write to portal that was not acknowledged, for reason.
func (s *loadStats) refuse(portal, reason string, err error) {
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
func (s *loadStats) byReason() map[string]int {
	total := map[string]int{}
	for _, m := range s.refused {
		for reason, n := range m {
			total[reason] += n
		}
	}
	return total
}

// refusalSummary lists the refusals, most frequent first.
func (s *loadStats) refusalSummary() string {
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
func (s *loadStats) progressLine() string {
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

// loadReport is the outcome of a run.
type loadReport struct {
	Portals         []string                  `json:"portals"`
	Accounts        int                       `json:"accounts"`
	SetupSeconds    float64                   `json:"setup_seconds"`
	Rate            float64                   `json:"rate"`
	DurationSeconds float64                   `json:"duration_seconds"`
	Acknowledged    int                       `json:"acknowledged"`      // updates
	NotSent         int                       `json:"not_sent"`          // scheduled updates never sent: the portals were too far behind
	Refused         map[string]int            `json:"refused"`           // by reason, accounts and updates
	RefusedByPortal map[string]map[string]int `json:"refused_by_portal"` // the same by portal, then reason
	Examples        map[string]string         `json:"refused_examples"`  // by reason, the first error
	Throughput      float64                   `json:"throughput"`        // acknowledged updates per second
	LatencyP50ms    float64                   `json:"latency_p50_ms"`
	LatencyP99ms    float64                   `json:"latency_p99_ms"`
	LatencyMaxms    float64                   `json:"latency_max_ms"`
	Acks            string                    `json:"acks_file"`
	Concurrency     int                       `json:"concurrency"`
}

func (s *loadStats) report(o loadOptions, nodes []string, accounts int, setup, elapsed time.Duration) *loadReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r := &loadReport{
		Portals: nodes, Accounts: accounts, SetupSeconds: setup.Seconds(), Rate: o.rate,
		DurationSeconds: elapsed.Seconds(), Acknowledged: len(s.latencies), NotSent: s.unsent, Refused: map[string]int{},
		LatencyP50ms: ms(percentile(s.latencies, 0.50)), LatencyP99ms: ms(percentile(s.latencies, 0.99)),
		LatencyMaxms: ms(percentile(s.latencies, 1)), Acks: o.acks, Concurrency: o.concurrency,
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

func (r *loadReport) writeHuman(w io.Writer) {
	fmt.Fprintf(w, "load: %d portals, %d accounts created in %.1fs\n", len(r.Portals), r.Accounts, r.SetupSeconds)
	fmt.Fprintf(w, "updates: %d acknowledged in %.1fs (%.1f/s, asked %.1f/s)\n", r.Acknowledged, r.DurationSeconds, r.Throughput, r.Rate)
	fmt.Fprintf(w, "latency from the scheduled time: p50 %.1f ms  p99 %.1f ms  max %.1f ms\n", r.LatencyP50ms, r.LatencyP99ms, r.LatencyMaxms)
	if r.NotSent > 0 {
		fmt.Fprintf(w, "not sent: %d scheduled updates (all %d-request slots were busy until the end)\n", r.NotSent, r.Concurrency)
	}
	if len(r.Refused) == 0 {
		fmt.Fprintln(w, "refused: none")
	}
	for _, reason := range sortedReasons(r.Refused) {
		fmt.Fprintf(w, "refused: %d %s (e.g. %s)\n", r.Refused[reason], reason, r.Examples[reason])
	}
	for _, p := range r.Portals {
		m := r.RefusedByPortal[p]
		if len(m) == 0 {
			continue
		}
		var parts []string
		for _, reason := range sortedReasons(m) {
			parts = append(parts, fmt.Sprintf("%d %s", m[reason], reason))
		}
		fmt.Fprintf(w, "  by %s: %s\n", p, strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, "acknowledged writes listed in %s; check them with: meshctl load --verify --federation FILE --acks %s\n", r.Acks, r.Acks)
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

// loadProgress rewrites one progress line on stderr every second while the
// run goes on, if stderr is a terminal.
type loadProgress struct {
	done chan struct{}
	wg   sync.WaitGroup
}

func newLoadProgress(stderr io.Writer, s *loadStats) *loadProgress {
	p := &loadProgress{done: make(chan struct{})}
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return p
	}
	p.wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				fmt.Fprint(f, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprintf(f, "\r\033[K%s", s.progressLine())
			}
		}
	})
	return p
}

func (p *loadProgress) stop() {
	close(p.done)
	p.wg.Wait()
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// isConnRefused reports whether err is a refused TCP connection.
func isConnRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

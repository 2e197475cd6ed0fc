package loadgen

import (
	"fmt"
	"io"
	"strings"
)

// Report is the outcome of a run. Its JSON is 'meshctl load --json'.
type Report struct {
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

// WriteText writes the report for a person to read.
func (r *Report) WriteText(w io.Writer) {
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

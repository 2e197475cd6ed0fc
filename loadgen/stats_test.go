package loadgen

import (
	"errors"
	"testing"
	"time"
)

func TestPercentileIsTheNearestRank(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for q, want := range map[float64]time.Duration{0.5: 5, 0.99: 10, 1: 10, 0.1: 1} {
		if got := percentile(ds, q); got != want {
			t.Errorf("percentile %.2f = %d, want %d", q, got, want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}

func TestTheReportCountsRefusalsByReasonAndByPortal(t *testing.T) {
	s := newStats()
	s.refuse("http://a", "timeout", errors.New("first timeout"))
	s.refuse("http://a", "timeout", errors.New("second timeout"))
	s.refuse("http://b", "connection refused", errors.New("refused"))
	s.acked(3 * time.Millisecond)
	r := s.report(Config{Portals: []string{"http://a", "http://b"}, Rate: 10, Acks: "acks.jsonl"}, 2, time.Second, time.Second)
	if r.Refused["timeout"] != 2 || r.Refused["connection refused"] != 1 || r.RefusedByPortal["http://a"]["timeout"] != 2 {
		t.Errorf("refused %v, by portal %v", r.Refused, r.RefusedByPortal)
	}
	if r.Examples["timeout"] != "first timeout" {
		t.Errorf("the example of a reason is %q, want the first error", r.Examples["timeout"])
	}
	if r.Acknowledged != 1 || r.Throughput != 1 || r.LatencyMaxms != 3 {
		t.Errorf("acknowledged %d, throughput %g, max latency %g ms", r.Acknowledged, r.Throughput, r.LatencyMaxms)
	}
}

package metricset

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// gathered returns the value of each gathered series by metric name (the
// first series of each).
func gathered(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		switch {
		case m.Counter != nil:
			out[mf.GetName()] = m.Counter.GetValue()
		case m.Gauge != nil:
			out[mf.GetName()] = m.Gauge.GetValue()
		case m.Histogram != nil:
			out[mf.GetName()] = m.Histogram.GetSampleSum()
		}
	}
	return out
}

func TestASetRegistersWhatItMakes(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	s := New(reg)
	s.Counter("t_events_total", "Events.").Add(2)
	s.CounterVec("t_verdicts_total", "Verdicts.", "verdict").WithLabelValues("accept").Inc()
	s.Gauge("t_level", "Level.").Set(3)
	s.GaugeVec("t_size", "Size.", "origin").WithLabelValues("a").Set(4)
	s.Histogram("t_seconds", "Seconds.", []float64{1, 2}).Observe(1.5)
	s.HistogramVec("t_tx_seconds", "Tx seconds.", []float64{1}, "tx").WithLabelValues("a").Observe(0.5)
	s.GaugeFunc("t_func", "Func.", func() float64 { return 6 })
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "t_other_total", Help: "Other."})
	s.Register("t_other_total", other)
	other.Add(7)
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"t_events_total": 2, "t_verdicts_total": 1, "t_level": 3, "t_size": 4, "t_seconds": 1.5, "t_func": 6, "t_tx_seconds": 0.5, "t_other_total": 7}
	if got := gathered(t, reg); !maps.Equal(got, want) {
		t.Fatalf("gathered %v, want %v", got, want)
	}
}

func TestASecondRegistrationOfANameIsTheFirstError(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg).Counter("t_events_total", "Events.")
	s := New(reg)
	s.Counter("t_events_total", "Events.")
	s.Gauge("t_other", "Other.")
	var are prometheus.AlreadyRegisteredError
	if err := s.Err(); !errors.As(err, &are) || !strings.Contains(err.Error(), "t_events_total") {
		t.Fatalf("error %v, want AlreadyRegisteredError naming t_events_total", err)
	}
	if got := gathered(t, reg); len(got) != 1 {
		t.Fatalf("registered %v after the error, want t_events_total alone (nothing after it)", got)
	}
}

func TestANilRegistryOnlyMakes(t *testing.T) {
	s := New(nil)
	s.Counter("t_events_total", "Events.").Inc()
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
}

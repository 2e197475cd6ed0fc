// Package metricset makes Prometheus metrics from a name, a help text and
// labels, and registers each on one registry as it is made, keeping the
// first registration error: a package's metrics then read as one line each.
package metricset

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Set makes metrics and registers them on its registry (none if nil).
type Set struct {
	reg prometheus.Registerer
	err error
}

// New returns a Set that registers on reg; with a nil reg it only makes
// the metrics.
func New(reg prometheus.Registerer) *Set { return &Set{reg: reg} }

// Err is the first error a registration returned (for example a
// prometheus.AlreadyRegisteredError), wrapped with the metric's name.
func (s *Set) Err() error { return s.err }

func (s *Set) register(name string, c prometheus.Collector) {
	if s.reg == nil || s.err != nil {
		return
	}
	if err := s.reg.Register(c); err != nil {
		s.err = fmt.Errorf("metric %s: %w", name, err)
	}
}

// Counter makes and registers a counter.
func (s *Set) Counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	s.register(name, c)
	return c
}

// CounterVec makes and registers a counter with labels.
func (s *Set) CounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	s.register(name, c)
	return c
}

// Gauge makes and registers a gauge.
func (s *Set) Gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	s.register(name, g)
	return g
}

// GaugeVec makes and registers a gauge with labels.
func (s *Set) GaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	s.register(name, g)
	return g
}

// Histogram makes and registers a histogram with the given buckets.
func (s *Set) Histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	s.register(name, h)
	return h
}

// GaugeFunc makes and registers a gauge whose value f gives when it is
// gathered.
func (s *Set) GaugeFunc(name, help string, f func() float64) prometheus.GaugeFunc {
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	s.register(name, g)
	return g
}

// Register registers a collector made elsewhere, under name for errors.
func (s *Set) Register(name string, c prometheus.Collector) { s.register(name, c) }

// HistogramVec makes and registers a histogram with labels.
func (s *Set) HistogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	s.register(name, h)
	return h
}

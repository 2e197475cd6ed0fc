package portal

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/intermesh/intermesh/internal/metricset"
)

// metrics are the portal's Prometheus metrics:
//
//	intermesh_portal_requests_total{transaction,status}   counter
//	intermesh_portal_request_seconds{transaction}         histogram
//	intermesh_log_size                                    gauge (records)
//	intermesh_epoch                                       gauge (current round)
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	gatherer prometheus.Gatherer
}

func newMetrics(reg prometheus.Registerer, l Log, sched Schedule) (*metrics, error) {
	s := metricset.New(reg)
	m := &metrics{
		requests: s.CounterVec("intermesh_portal_requests_total",
			"Portal protocol requests by transaction and protocol status.", "transaction", "status"),
		latency: s.HistogramVec("intermesh_portal_request_seconds",
			"Portal protocol request latency by transaction.", prometheus.ExponentialBuckets(0.0001, 2, 16), "transaction"),
	}
	s.GaugeFunc("intermesh_log_size", "Records in the node's log.", func() float64 { return float64(l.Size()) })
	if sched != nil {
		s.GaugeFunc("intermesh_epoch", "The current epoch (checkpoint round).", func() float64 { return float64(sched.Epoch()) })
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("portal: registering metrics: %w", err)
	}
	if g, ok := reg.(prometheus.Gatherer); ok {
		m.gatherer = g
	}
	return m, nil
}

// observe counts one request; tx is "" for requests that were not decoded.
func (m *metrics) observe(tx string, status int, d time.Duration) {
	if tx == "" {
		tx = "unknown"
	}
	m.requests.WithLabelValues(tx, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(tx).Observe(d.Seconds())
}

func (s *Server) metricsHandler() http.Handler {
	g := s.deps.Gatherer
	if g == nil {
		g = s.metrics.gatherer
	}
	if g == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

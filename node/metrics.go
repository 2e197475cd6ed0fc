package node

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// nodeMetrics are the node's own metrics; the portal, log and InterMesh
// register theirs on the same registry.
type nodeMetrics struct {
	epochSeconds  prometheus.Histogram
	epochFailures prometheus.Counter
	round         prometheus.Gauge
	commitSeconds prometheus.Histogram // the log's batches in Badger's commit
}

func newNodeMetrics(reg prometheus.Registerer) (*nodeMetrics, error) {
	m := &nodeMetrics{
		epochSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "intermesh_epoch_close_seconds",
			Help:    "Time to sign and store a round's checkpoint.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		epochFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "intermesh_epoch_close_failures_total",
			Help: "Rounds whose checkpoint could not be made.",
		}),
		round: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "intermesh_round",
			Help: "The last round this node closed.",
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "intermesh_log_commit_seconds",
			Help:    "Time a batch of the node's log spent in the store's commit: the write, its fsync, and any wait for a full level 0. Every acknowledgment waits for one.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
		}),
	}
	for _, c := range []prometheus.Collector{m.epochSeconds, m.epochFailures, m.round, m.commitSeconds} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("node: metrics: %w", err)
		}
	}
	return m, nil
}

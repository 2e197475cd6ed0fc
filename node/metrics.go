package node

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/intermesh/intermesh/internal/metricset"
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
	s := metricset.New(reg)
	m := &nodeMetrics{
		epochSeconds: s.Histogram("intermesh_epoch_close_seconds",
			"Time to sign and store a round's checkpoint.", prometheus.ExponentialBuckets(0.0001, 4, 10)),
		epochFailures: s.Counter("intermesh_epoch_close_failures_total", "Rounds whose checkpoint could not be made."),
		round:         s.Gauge("intermesh_round", "The last round this node closed."),
		commitSeconds: s.Histogram("intermesh_log_commit_seconds",
			"Time a batch of the node's log spent in the store's commit: the write, its fsync, and any wait for a full level 0. Every acknowledgment waits for one.",
			prometheus.ExponentialBuckets(0.0005, 4, 9)),
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("node: metrics: %w", err)
	}
	return m, nil
}

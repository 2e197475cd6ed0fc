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
	mapSeconds    prometheus.Histogram // advancing and committing the log's map at an epoch close
	mapKeys       prometheus.Gauge
	mapSize       prometheus.Gauge
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
		mapSeconds: s.Histogram("intermesh_map_update_seconds",
			"Time an epoch close spent bringing the log's verifiable map to the checkpoint's records and storing it (part of intermesh_epoch_close_seconds).",
			prometheus.ExponentialBuckets(0.0001, 4, 10)),
		mapKeys: s.Gauge("intermesh_map_keys", "Names (profile, escrow and account keys) in the log's verifiable map as of the last checkpoint."),
		mapSize: s.Gauge("intermesh_map_records", "Records of the log the verifiable map of the last checkpoint covers."),
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("node: metrics: %w", err)
	}
	return m, nil
}

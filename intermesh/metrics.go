package intermesh

import (
	"errors"
	"fmt"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Mesh's Prometheus metrics:
//
//	intermesh_peers_connected                      members connected now
//	intermesh_gossip_messages_total{topic,verdict} validated messages; verdict accept|reject|ignore
//	intermesh_rounds_total                         rounds ended (certificate or no-quorum)
//	intermesh_quorum_total{result}                 rounds by result: formed|missed
//	intermesh_certificate_seconds                  time from the round's scheduled close to its certificate
//	intermesh_early_messages_total{topic,outcome}  checkpoints and votes of rounds not closed yet; outcome held|refused
//	intermesh_commit_queue_waits_total             times the round loop waited for the committer (back-pressure)
//	intermesh_peer_score{member}                   gossipsub score of each connected member
//	intermesh_peers_graylisted                     members whose gossip is ignored now (score below the graylist threshold)
//	intermesh_peer_penalties_total{member}         application-specific penalties charged (score.go)
//	intermesh_gossip_duplicates_total{topic}       copies of gossip messages already seen, dropped (gossiptrace.go)
//	intermesh_gossip_duplicate_bytes_total{topic}  their payload bytes
//	intermesh_gossip_dropped_rpcs_total            gossip RPCs dropped because a member's outbound queue was full
//	intermesh_gossip_reconnects_total{member}      connections to a member closed and redialled because gossip to it had stalled (host.go)
//	intermesh_replica_repairs_total{origin,result} replicas repaired from their origin; result repaired|failed
//	intermesh_graylistings_total{member}           times a member's penalty alone crossed the graylist threshold
//	intermesh_equivocations_total                  evidence recorded against members
//	intermesh_evidence                             evidence held now (gauge)
//	intermesh_evidence_forgotten_total{member}     stored evidence deleted at start because it no longer verifies (store.go)
//	intermesh_replica_lag_records{origin}          records known to exist that the replica lacks
//	intermesh_replica_size{origin}                 records the replica holds
//	intermesh_replica_verified_size{origin}        size of the latest checkpoint the replica verifies
//	intermesh_replica_inconsistent_total{origin}   replicas found not to match their origin's checkpoints
//	intermesh_fork_investigations_total{result}    fork investigations; result evidence|consistent|misserved|too-large|failed
//	intermesh_relay_pages_rejected_total{relay}    Transfer pages of a relay that contradict a held checkpoint
//	intermesh_transfer_entries_total{direction}    records moved by /intermesh/transfer/1; direction served|fetched
//	intermesh_transfer_bytes_total{direction}      leaf bytes moved by /intermesh/transfer/1
//	intermesh_transfer_refused_total{member,reason} Transfer streams of a member refused; reason busy (maxTransferStreams served already)
type metrics struct {
	reg           prometheus.Registerer
	messages      *prometheus.CounterVec
	rounds        prometheus.Counter
	quorum        *prometheus.CounterVec
	certLatency   prometheus.Histogram
	equivocations prometheus.Counter
	forgotten     *prometheus.CounterVec
	lag           *prometheus.GaugeVec
	replicaSize   *prometheus.GaugeVec
	verifiedSize  *prometheus.GaugeVec
	inconsistent  *prometheus.CounterVec
	xferEntries   *prometheus.CounterVec
	xferBytes     *prometheus.CounterVec
	xferRefused   *prometheus.CounterVec
	forkChecks    *prometheus.CounterVec
	badRelays     *prometheus.CounterVec
	early         *prometheus.CounterVec
	jobWaits      prometheus.Counter
	peerScore     *prometheus.GaugeVec
	graylisted    prometheus.Gauge
	penalties     *prometheus.CounterVec
	graylistings  *prometheus.CounterVec
	repairs       *prometheus.CounterVec
	gossipResets  *prometheus.CounterVec

	duplicates     *prometheus.CounterVec
	duplicateBytes *prometheus.CounterVec
	droppedRPCs    prometheus.Counter
}

// newMetrics creates the metrics and registers them on reg (if not nil).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	mt := &metrics{
		reg: reg,
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intermesh_gossip_messages_total",
			Help: "Gossip messages validated, by topic (checkpoint, master, records) and verdict (accept, reject, ignore).",
		}, []string{"topic", "verdict"}),
		rounds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "intermesh_rounds_total",
			Help: "Rounds ended, with a certificate or without a quorum.",
		}),
		quorum: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intermesh_quorum_total",
			Help: "Rounds by master-hash quorum result (formed, missed).",
		}, []string{"result"}),
		certLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "intermesh_certificate_seconds",
			Help:    "Time from the scheduled close of a round to its master-hash certificate.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		equivocations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "intermesh_equivocations_total",
			Help: "Evidence of equivocation recorded against members.",
		}),
		forgotten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intermesh_evidence_forgotten_total",
			Help: "Stored evidence against a member deleted at start because it no longer verifies under the current rules (the member counts again), by member.",
		}, []string{"member"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "intermesh_replica_lag_records",
			Help: "Records of an origin known to exist (from its checkpoints and batches) that its replica does not hold yet.",
		}, []string{"origin"}),
		replicaSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "intermesh_replica_size",
			Help: "Records the replica log of an origin holds.",
		}, []string{"origin"}),
		verifiedSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "intermesh_replica_verified_size",
			Help: "Tree size of the largest checkpoint of an origin that its replica was verified against; never decreases.",
		}, []string{"origin"}),
		inconsistent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intermesh_replica_inconsistent_total",
			Help: "Replicas found not to match their origin's signed checkpoints or records (no longer trusted).",
		}, []string{"origin"}),
		xferEntries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intermesh_transfer_entries_total",
			Help: "Records moved over /intermesh/transfer/1, by direction (served, fetched).",
		}, []string{"direction"}),
		xferBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intermesh_transfer_bytes_total",
			Help: "Leaf bytes moved over /intermesh/transfer/1, by direction (served, fetched).",
		}, []string{"direction"}),
		xferRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intermesh_transfer_refused_total",
			Help: "Transfer streams of a member refused by this node's server, by member and reason (busy: the member already had the most streams served at once).",
		}, []string{"member", "reason"}),
		forkChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intermesh_fork_investigations_total",
			Help: "Investigations of a member whose checkpoint its replica does not reproduce, by result (evidence, consistent, misserved, too-large, failed).",
		}, []string{"result"}),
		badRelays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intermesh_relay_pages_rejected_total",
			Help: "Transfer pages of another member's records, served by a relay, dropped because they contradict a checkpoint of their origin; by relay.",
		}, []string{"relay"}),
		early: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intermesh_early_messages_total",
			Help: "Checkpoints and votes of rounds that had not closed yet, by topic and outcome (held until the close, refused).",
		}, []string{"topic", "outcome"}),
		jobWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "intermesh_commit_queue_waits_total",
			Help: "Times the round loop waited for the committer because its queue was full (back-pressure; nothing is dropped).",
		}),
		peerScore: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "intermesh_peer_score",
			Help: "Gossipsub score of each connected member (below -400 its gossip is ignored).",
		}, []string{"member"}),
		graylisted: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "intermesh_peers_graylisted",
			Help: "Members whose gossip is ignored now: their score is below the graylist threshold.",
		}),
		penalties: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intermesh_peer_penalties_total",
			Help: "Application-specific gossip penalties charged to a member, for valid but useless messages and lying relay pages.",
		}, []string{"member"}),
		graylistings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intermesh_graylistings_total",
			Help: "Times a member's application-specific penalty alone crossed the graylist threshold (its gossip is then ignored until the penalty decays).",
		}, []string{"member"}),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intermesh_replica_repairs_total",
			Help: "Repairs of a replica that stopped matching its origin, from the origin's records, by result (repaired, failed).",
		}, []string{"origin", "result"}),
		gossipResets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intermesh_gossip_reconnects_total",
			Help: "Connections to a member closed and redialled because it had been connected without exchanging gossip (see the package's Connections).",
		}, []string{"member"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intermesh_gossip_duplicates_total",
			Help: "Copies of gossip messages already seen, dropped by gossipsub, by topic (the cost of relaying).",
		}, []string{"topic"}),
		duplicateBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "intermesh_gossip_duplicate_bytes_total",
			Help: "Payload bytes of the copies counted by intermesh_gossip_duplicates_total, by topic.",
		}, []string{"topic"}),
		droppedRPCs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "intermesh_gossip_dropped_rpcs_total",
			Help: "Gossip RPCs dropped because a member's outbound queue was full.",
		}),
	}
	for _, c := range []prometheus.Collector{mt.duplicates, mt.duplicateBytes, mt.droppedRPCs, mt.gossipResets, mt.repairs, mt.graylistings, mt.peerScore, mt.graylisted, mt.penalties, mt.jobWaits, mt.early, mt.messages, mt.rounds, mt.quorum, mt.certLatency, mt.equivocations, mt.forgotten,
		mt.lag, mt.replicaSize, mt.verifiedSize, mt.inconsistent, mt.xferEntries, mt.xferBytes, mt.xferRefused, mt.forkChecks, mt.badRelays} {
		if err := mt.register(c); err != nil {
			return nil, err
		}
	}
	return mt, nil
}

func (mt *metrics) register(c prometheus.Collector) error {
	if mt.reg == nil {
		return nil
	}
	if err := mt.reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			return fmt.Errorf("%w: Registerer: intermesh metrics already registered: %w", ErrConfig, err)
		}
		return fmt.Errorf("%w: Registerer: %w", ErrConfig, err)
	}
	return nil
}

// peers registers the connected-members gauge.
func (mt *metrics) peers(f func() float64) error {
	return mt.register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "intermesh_peers_connected",
		Help: "Federation members this node is connected to.",
	}, f))
}

// verdict counts one validated message.
func (mt *metrics) verdict(topic string, r pubsub.ValidationResult) {
	v := "accept"
	switch r {
	case pubsub.ValidationReject:
		v = "reject"
	case pubsub.ValidationIgnore:
		v = "ignore"
	}
	mt.messages.WithLabelValues(topic, v).Inc()
}

// evidenceHeld registers the gauge of evidence held.
func (mt *metrics) evidenceHeld(f func() float64) error {
	return mt.register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "intermesh_evidence",
		Help: "Equivocation evidence this node holds.",
	}, f))
}

// transfer counts records moved over the Transfer stream.
func (mt *metrics) transfer(direction string, entries, bytes int) {
	mt.xferEntries.WithLabelValues(direction).Add(float64(entries))
	mt.xferBytes.WithLabelValues(direction).Add(float64(bytes))
}

package intermesh

import (
	"errors"
	"fmt"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/intermesh/intermesh/internal/metricset"
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
//	intermesh_map_mismatches_total{origin}         checkpoints whose map line is not the map of their records, not verified (replica_map.go)
//	intermesh_map_claims_total{claimant,outcome}   claims that a checkpoint's map line is wrong (claim.go); outcome published (by this node)|confirmed|refuted|pending (by this node's recomputation)
//	intermesh_resyncs_total{direction}             open rounds' messages handed to a member that joined the gossip again (resync.go); direction sent|received
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
	resyncs       *prometheus.CounterVec
	mapMismatches *prometheus.CounterVec
	mapClaims     *prometheus.CounterVec

	duplicates     *prometheus.CounterVec
	duplicateBytes *prometheus.CounterVec
	droppedRPCs    prometheus.Counter
}

// newMetrics creates the metrics and registers them on reg (if not nil).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	mt := &metrics{reg: reg}
	s := metricset.New(reg)
	mt.messages = s.CounterVec("intermesh_gossip_messages_total",
		"Gossip messages validated, by topic (checkpoint, master, records) and verdict (accept, reject, ignore).", "topic", "verdict")
	mt.rounds = s.Counter("intermesh_rounds_total",
		"Rounds ended, with a certificate or without a quorum.")
	mt.quorum = s.CounterVec("intermesh_quorum_total",
		"Rounds by master-hash quorum result (formed, missed).", "result")
	mt.certLatency = s.Histogram("intermesh_certificate_seconds",
		"Time from the scheduled close of a round to its master-hash certificate.", []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10})
	mt.equivocations = s.Counter("intermesh_equivocations_total",
		"Evidence of equivocation recorded against members.")
	mt.forgotten = s.CounterVec("intermesh_evidence_forgotten_total",
		"Stored evidence against a member deleted at start because it no longer verifies under the current rules (the member counts again), by member.", "member")
	mt.lag = s.GaugeVec("intermesh_replica_lag_records",
		"Records of an origin known to exist (from its checkpoints and batches) that its replica does not hold yet.", "origin")
	mt.replicaSize = s.GaugeVec("intermesh_replica_size",
		"Records the replica log of an origin holds.", "origin")
	mt.verifiedSize = s.GaugeVec("intermesh_replica_verified_size",
		"Tree size of the largest checkpoint of an origin that its replica was verified against; never decreases.", "origin")
	mt.inconsistent = s.CounterVec("intermesh_replica_inconsistent_total",
		"Replicas found not to match their origin's signed checkpoints or records (no longer trusted).", "origin")
	mt.xferEntries = s.CounterVec("intermesh_transfer_entries_total",
		"Records moved over /intermesh/transfer/1, by direction (served, fetched).", "direction")
	mt.xferBytes = s.CounterVec("intermesh_transfer_bytes_total",
		"Leaf bytes moved over /intermesh/transfer/1, by direction (served, fetched).", "direction")
	mt.xferRefused = s.CounterVec("intermesh_transfer_refused_total",
		"Transfer streams of a member refused by this node's server, by member and reason (busy: the member already had the most streams served at once).", "member", "reason")
	mt.forkChecks = s.CounterVec("intermesh_fork_investigations_total",
		"Investigations of a member whose checkpoint its replica does not reproduce, by result (evidence, consistent, misserved, too-large, failed).", "result")
	mt.badRelays = s.CounterVec("intermesh_relay_pages_rejected_total",
		"Transfer pages of another member's records, served by a relay, dropped because they contradict a checkpoint of their origin; by relay.", "relay")
	mt.early = s.CounterVec("intermesh_early_messages_total",
		"Checkpoints and votes of rounds that had not closed yet, by topic and outcome (held until the close, refused).", "topic", "outcome")
	mt.jobWaits = s.Counter("intermesh_commit_queue_waits_total",
		"Times the round loop waited for the committer because its queue was full (back-pressure; nothing is dropped).")
	mt.peerScore = s.GaugeVec("intermesh_peer_score",
		"Gossipsub score of each connected member (below -400 its gossip is ignored).", "member")
	mt.graylisted = s.Gauge("intermesh_peers_graylisted",
		"Members whose gossip is ignored now: their score is below the graylist threshold.")
	mt.penalties = s.CounterVec("intermesh_peer_penalties_total",
		"Application-specific gossip penalties charged to a member, for valid but useless messages and lying relay pages.", "member")
	mt.graylistings = s.CounterVec("intermesh_graylistings_total",
		"Times a member's application-specific penalty alone crossed the graylist threshold (its gossip is then ignored until the penalty decays).", "member")
	mt.repairs = s.CounterVec("intermesh_replica_repairs_total",
		"Repairs of a replica that stopped matching its origin, from the origin's records, by result (repaired, failed).", "origin", "result")
	mt.gossipResets = s.CounterVec("intermesh_gossip_reconnects_total",
		"Connections to a member closed and redialled because it had been connected without exchanging gossip (see the package's Connections).", "member")
	mt.mapMismatches = s.CounterVec("intermesh_map_mismatches_total",
		"Checkpoints of a member whose map line is not the root of the verifiable map this node recomputes from their records; they are not verified.", "origin")
	mt.mapClaims = s.CounterVec("intermesh_map_claims_total",
		"Claims that a member's checkpoint has a map line its records do not give, by claimant and outcome: published (by this node), or what this node's own recomputation says (confirmed, refuted, pending). Nobody acts on a claim.", "claimant", "outcome")
	mt.resyncs = s.CounterVec("intermesh_resyncs_total",
		"Resync streams (the open rounds' checkpoints and votes, to a member that joined the gossip again) sent and received in full, by direction.", "direction")
	mt.duplicates = s.CounterVec("intermesh_gossip_duplicates_total",
		"Copies of gossip messages already seen, dropped by gossipsub, by topic (the cost of relaying).", "topic")
	mt.duplicateBytes = s.CounterVec("intermesh_gossip_duplicate_bytes_total",
		"Payload bytes of the copies counted by intermesh_gossip_duplicates_total, by topic.", "topic")
	mt.droppedRPCs = s.Counter("intermesh_gossip_dropped_rpcs_total",
		"Gossip RPCs dropped because a member's outbound queue was full.")
	if err := s.Err(); err != nil {
		return nil, registerError(err)
	}
	return mt, nil
}

// registerError is the ErrConfig of a failed registration.
func registerError(err error) error {
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		return fmt.Errorf("%w: Registerer: intermesh metrics already registered: %w", ErrConfig, err)
	}
	return fmt.Errorf("%w: Registerer: %w", ErrConfig, err)
}

// gaugeFunc registers a gauge whose value f gives, once its source exists.
func (mt *metrics) gaugeFunc(name, help string, f func() float64) error {
	s := metricset.New(mt.reg)
	s.GaugeFunc(name, help, f)
	if err := s.Err(); err != nil {
		return registerError(err)
	}
	return nil
}

// peers registers the connected-members gauge.
func (mt *metrics) peers(f func() float64) error {
	return mt.gaugeFunc("intermesh_peers_connected", "Federation members this node is connected to.", f)
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
	return mt.gaugeFunc("intermesh_evidence", "Equivocation evidence this node holds.", f)
}

// transfer counts records moved over the Transfer stream.
func (mt *metrics) transfer(direction string, entries, bytes int) {
	mt.xferEntries.WithLabelValues(direction).Add(float64(entries))
	mt.xferBytes.WithLabelValues(direction).Add(float64(bytes))
}

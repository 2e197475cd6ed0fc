package node

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/internal/metricset"
	"github.com/intermesh/intermesh/portal/witness"
)

// WitnessPolicyFile is the name, in the node's directory, of its witness
// policy (see witness.Policy); without it the node asks only its
// federation's members to cosign.
const WitnessPolicyFile = "witness-policy"

// witnessing is the node's side of the witness protocols.
type witnessing struct {
	witness   *witness.Witness   // serves add-checkpoint; nil without a federation
	submitter *witness.Submitter // asks witnesses to cosign; nil if there are none
	queue     chan []byte        // the latest checkpoint to submit

	requests    *prometheus.CounterVec // add-checkpoint answers served, by status
	submissions *prometheus.CounterVec // submissions to witnesses, by outcome
}

// newWitnessMetrics registers the witness metrics.
func (n *Node) newWitnessMetrics() error {
	w := &n.witnessing
	s := metricset.New(n.registry)
	w.requests = s.CounterVec("intermesh_witness_add_checkpoint_total",
		"add-checkpoint requests this node answered as a witness, by HTTP status.", "status")
	w.submissions = s.CounterVec("intermesh_witness_submissions_total",
		"Checkpoints this node submitted to a witness, by outcome (cosigned, failed).", "outcome")
	if err := s.Err(); err != nil {
		return fmt.Errorf("node: metrics: %w", err)
	}
	return nil
}

// newWitnessing sets up the node's witness of its federation's members and
// the submission of its checkpoints to its policy's witnesses and to the
// other members. Both follow the federation: witnessFollow sets the
// members of the version the node follows, and runMembership calls it
// again when another version comes into force.
func (n *Node) newWitnessing() error {
	if err := n.newWitnessMetrics(); err != nil {
		return err
	}
	policy, err := n.loadWitnessPolicy()
	if err != nil {
		return err
	}
	if n.history != nil {
		cosigner, err := witness.NewCosigner(witness.CosignerName(n.cfg.Origin), n.key)
		if err != nil {
			return fmt.Errorf("node: %w", err)
		}
		n.witnessing.witness, err = witness.New(witness.Config{
			DB: n.log.DB(), Cosigner: cosigner, Logger: n.logger,
			Observe: func(status int) { n.witnessing.requests.WithLabelValues(fmt.Sprint(status)).Inc() },
		})
		if err != nil {
			return fmt.Errorf("node: %w", err)
		}
	}
	if policy == nil && n.history == nil {
		return nil
	}
	n.witnessing.submitter = witness.NewSubmitter(witness.SubmitterConfig{
		Policy: policy, Proofs: n.tree, Logger: n.logger,
		Observe: func(name string, d time.Duration, err error) {
			outcome := "cosigned"
			if err != nil {
				outcome = "failed"
			}
			n.witnessing.submissions.WithLabelValues(outcome).Inc()
		},
	})
	n.witnessing.queue = make(chan []byte, 1)
	if n.history != nil {
		return n.witnessFollow(n.following.Load())
	}
	return nil
}

// loadWitnessPolicy reads the node's witness policy file; nil if it has
// none.
func (n *Node) loadWitnessPolicy() (*witness.Policy, error) {
	path := filepath.Join(n.cfg.Dir, WitnessPolicyFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("node: witness policy: %w", err)
	}
	policy, err := witness.ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("node: %s: %w", path, err)
	}
	return policy, nil
}

// witnessFollow makes the node's witness cosign the checkpoints of the
// members of v only (a removed member's are refused with 404, a new
// member's and a rotated key's are cosigned), and asks the other members
// of v that serve HTTP to cosign the node's own checkpoints.
func (n *Node) witnessFollow(v *config.FederationVersion) error {
	var (
		logs  []note.Verifier
		extra []witness.PolicyWitness
	)
	for _, m := range v.Members {
		nv, err := note.NewVerifier(m.Key)
		if err != nil {
			return fmt.Errorf("node: federation version %d: member %s: %w", v.Version, m.Origin, err)
		}
		logs = append(logs, nv)
		if m.Origin == n.cfg.Origin || m.HTTP == "" {
			continue
		}
		wv, err := witness.MemberVerifier(m.Key)
		if err != nil {
			return fmt.Errorf("node: federation version %d: member %s: %w", v.Version, m.Origin, err)
		}
		extra = append(extra, witness.PolicyWitness{Name: m.Origin, Verifier: wv, URL: m.HTTP})
	}
	if err := n.witnessing.witness.SetLogs(logs); err != nil {
		return fmt.Errorf("node: federation version %d: %w", v.Version, err)
	}
	n.witnessing.submitter.SetExtra(extra)
	return nil
}

// offerToWitnesses queues a new checkpoint for the witnesses, replacing
// one that is still waiting.
func (n *Node) offerToWitnesses(signed []byte) {
	q := n.witnessing.queue
	if q == nil {
		return
	}
	for {
		select {
		case q <- signed:
			return
		default:
		}
		select {
		case <-q:
		default:
		}
	}
}

// runWitnessSubmissions submits each queued checkpoint until ctx ends.
func (n *Node) runWitnessSubmissions(ctx context.Context) {
	if n.witnessing.queue == nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case signed := <-n.witnessing.queue:
			if _, count, err := n.witnessing.submitter.Submit(ctx, signed); err != nil {
				n.logger.Warn("submitting the checkpoint to witnesses failed", "err", err)
			} else {
				n.logger.Debug("checkpoint submitted to witnesses", "policy_cosignatures", count)
			}
		}
	}
}

// cosignedCheckpoint is the latest checkpoint the witness policy's quorum
// cosigned, with every cosignature it got; nil if none.
func (n *Node) cosignedCheckpoint() ([]byte, error) {
	if n.witnessing.submitter == nil {
		return nil, nil
	}
	return n.witnessing.submitter.Cosigned(), nil
}

package intermesh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/mod/sumdb/note"

	"github.com/intermesh/intermesh/merkle"
)

// Gossip validation happens in two steps. The stateless step (size, syntax,
// signatures, membership, round window) runs in pubsub's validator
// goroutines, concurrently. The stateful step (duplicates, consistency with
// the origin's earlier checkpoints, equivocation, counting) runs on the round
// loop, which also records what it accepts: a message is counted exactly
// when its validator accepts it.

// verdict is the outcome of validating one message, with the reason for a
// reject or ignore (for logs).
type verdict struct {
	result  pubsub.ValidationResult
	reason  string
	cost    float64 // application-specific penalty of the sender (score.go)
	noRelay bool    // valid and taken, but not relayed to other members
}

var (
	accepted = verdict{result: pubsub.ValidationAccept}
	// taken is a valid message this node used that it does not relay:
	// gossipsub is told to ignore it (which costs the sender nothing).
	taken = verdict{result: pubsub.ValidationAccept, noRelay: true}
)

func rejected(format string, a ...any) verdict {
	return verdict{result: pubsub.ValidationReject, reason: fmt.Sprintf(format, a...)}
}

func ignored(format string, a ...any) verdict {
	return verdict{result: pubsub.ValidationIgnore, reason: fmt.Sprintf(format, a...)}
}

// useless is an ignore verdict for a valid message that was costly to
// check and brought nothing: the sender is penalized (score.go).
func useless(format string, a ...any) verdict {
	v := ignored(format, a...)
	v.cost = penaltyUseless
	return v
}

// heldCheckpoint is a checkpoint whose signature has been verified.
type heldCheckpoint struct {
	cp   merkle.Checkpoint
	note []byte   // the signed note, exactly as received
	hash [32]byte // SHA-256 of note (merkle.NoteHash)
}

// sigCache remembers the SHA-256 of signed checkpoint notes whose signature
// has been verified, so a copy that arrives again (re-gossiped on the
// checkpoint topic after the message cache forgot it) is not verified again.
// It is safe for concurrent use; it forgets everything when full.
type sigCache struct {
	mu   sync.Mutex
	seen map[[32]byte]struct{}
}

const sigCacheSize = 8192

func newSigCache() *sigCache { return &sigCache{seen: map[[32]byte]struct{}{}} }

func (c *sigCache) has(h [32]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.seen[h]
	return ok
}

func (c *sigCache) add(h [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seen) >= sigCacheSize {
		clear(c.seen)
	}
	c.seen[h] = struct{}{}
}

// currentRound is the round of the round clock now.
func (m *Mesh) currentRound() uint64 {
	s := m.cfg.Now().Unix()
	if s < 0 {
		return 0
	}
	return uint64(s) / uint64(m.period.Seconds())
}

// inWindow reports whether round r is at most RoundWindow rounds before
// the current round, and not after it: round r closes when round r+1
// begins, so no member sends a message of a round that has not begun
// unless its clock is off by more than a period.
func (m *Mesh) inWindow(r uint64) bool {
	cur := m.currentRound()
	return r+m.cfg.RoundWindow >= cur && r <= cur
}

// windowError says why round r is not in the window.
func (m *Mesh) windowError(r uint64) string {
	cur := m.currentRound()
	if r > cur {
		return fmt.Sprintf("round %d has not begun (the current round is %d)", r, cur)
	}
	return fmt.Sprintf("round %d is more than %d rounds before the current round %d", r, m.cfg.RoundWindow, cur)
}

// verifyCheckpoint is the stateless check of a signed checkpoint note: size,
// format, a valid signature of its origin, the origin a member, the round in
// the window.
func (m *Mesh) verifyCheckpoint(data []byte) (heldCheckpoint, error) {
	if len(data) > maxCheckpointSize {
		return heldCheckpoint{}, fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidCheckpoint, len(data), maxCheckpointSize)
	}
	hc := heldCheckpoint{note: data, hash: sha256.Sum256(data)}
	if m.sigCache.has(hc.hash) {
		i := bytes.LastIndex(data, []byte("\n\n"))
		cp, err := merkle.ParseCheckpoint(data[:i+1])
		if err != nil {
			return heldCheckpoint{}, fmt.Errorf("%w: %w", ErrInvalidCheckpoint, err)
		}
		hc.cp = cp
	} else {
		cp, err := openCheckpoint(data, m.verifiers)
		if err != nil {
			return heldCheckpoint{}, fmt.Errorf("%w: %w", ErrInvalidCheckpoint, err)
		}
		hc.cp = cp
		m.sigCache.add(hc.hash)
	}
	if _, ok := m.members[hc.cp.Origin]; !ok {
		// Unreachable while key names equal origins; kept as a guard.
		return heldCheckpoint{}, fmt.Errorf("%w: origin %q is not a member", ErrInvalidCheckpoint, hc.cp.Origin)
	}
	if !m.inWindow(hc.cp.Round) {
		return heldCheckpoint{}, fmt.Errorf("%w: %s", ErrInvalidCheckpoint, m.windowError(hc.cp.Round))
	}
	return hc, nil
}

// errNotCanonical reports a checkpoint note that opens with its origin's
// key but is not in the one form its origin writes.
var errNotCanonical = errors.New("not the checkpoint note its origin signed, byte for byte")

// openCheckpoint opens a signed checkpoint note (merkle.OpenCheckpoint) and
// accepts it only in its canonical form: the text, a blank line and the
// origin's signature line, its base64 canonical, and nothing else.
//
// A checkpoint is known by the SHA-256 of its note (equivocation, the prev
// line, master-hash leaves), but note.Open also accepts a note with more
// signature lines (a cosignature, a stranger's, the same line twice) or
// with its signature's base64 loosened (non-zero padding bits). Anyone
// holding a member's checkpoint could make such a copy, a different note
// "of the same round" in the member's name: evidence against an honest
// member, or votes split over two master hashes. Only the origin's key can
// make another canonical note.
func openCheckpoint(data []byte, vs note.Verifiers) (merkle.Checkpoint, error) {
	cp, n, err := merkle.OpenCheckpoint(data, vs)
	if err != nil {
		return merkle.Checkpoint{}, err
	}
	if len(n.Sigs) != 1 || len(n.UnverifiedSigs) != 0 {
		return merkle.Checkpoint{}, fmt.Errorf("%w: %d signatures, want only %q's", errNotCanonical, len(n.Sigs)+len(n.UnverifiedSigs), cp.Origin)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(n.Sigs[0].Base64)
	if err != nil {
		return merkle.Checkpoint{}, fmt.Errorf("%w: signature: %w", errNotCanonical, err)
	}
	canonical := n.Text + "\n— " + n.Sigs[0].Name + " " + base64.StdEncoding.EncodeToString(sig) + "\n"
	if string(data) != canonical {
		return merkle.Checkpoint{}, errNotCanonical
	}
	return cp, nil
}

// offer runs a stateful check on the round loop and returns its verdict. If
// the loop is not running the message is ignored.
func (m *Mesh) offer(ctx context.Context, f func(*state) verdict) verdict {
	var v verdict
	if err := m.do(ctx, func(st *state) { v = f(st) }); err != nil {
		return ignored("round loop unavailable: %v", err)
	}
	return v
}

// validateCheckpointMsg is the checkpoint topic's validator.
func (m *Mesh) validateCheckpointMsg(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	return m.record(topicCheckpoint, from, m.checkCheckpointMsg(ctx, from, msg.Data))
}

func (m *Mesh) checkCheckpointMsg(ctx context.Context, from peer.ID, data []byte) verdict {
	if from == m.host.ID() {
		return accepted // our own publication, recorded by PublishCheckpoint
	}
	hc, err := m.verifyCheckpoint(data)
	if err != nil {
		return rejected("%v", err)
	}
	return m.offer(ctx, func(st *state) verdict { return st.addCheckpoint(hc) })
}

// validateVoteMsg is the master topic's validator.
func (m *Mesh) validateVoteMsg(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	return m.record(topicMaster, from, m.checkVoteMsg(ctx, from, msg.Data))
}

func (m *Mesh) checkVoteMsg(ctx context.Context, from peer.ID, data []byte) verdict {
	if from == m.host.ID() {
		return accepted // our own vote, recorded when signed
	}
	v, err := m.parseVote(data)
	if err != nil {
		return rejected("%v", err)
	}
	return m.offer(ctx, func(st *state) verdict { return st.addVote(v) })
}

// validateRecordsMsg is the records topic's validator: a batch must be
// signed by its origin, a member, and hold that origin's contiguous records
// (parseBatch). Valid batches of other members go to the replicator.
// Without a log (no replication) only the size is checked.
func (m *Mesh) validateRecordsMsg(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	return m.record(topicRecords, from, m.checkRecordsMsg(from, msg.Data))
}

func (m *Mesh) checkRecordsMsg(from peer.ID, data []byte) verdict {
	if n := len(data); n == 0 || n > maxRecordsSize {
		return rejected("records message of %d bytes, limit %d", n, maxRecordsSize)
	}
	if from == m.host.ID() || m.repl == nil {
		return accepted
	}
	b, err := m.parseBatch(data)
	if err != nil {
		return rejected("%v", err)
	}
	if b.origin == m.self.origin {
		return ignored("this node's own records")
	}
	m.repl.offerBatch(b)
	// Not relayed: the origin floods its batches to every member it is
	// connected to, and relaying them too made every member receive each
	// batch about four times. A member the origin cannot reach fetches the
	// records with Transfer from any member (see Replication).
	return taken
}

// record counts a verdict in the metrics, logs rejections and returns the
// pubsub result.
func (m *Mesh) record(topic string, from peer.ID, v verdict) pubsub.ValidationResult {
	m.metrics.verdict(topic, v.result)
	if v.cost > 0 {
		m.penalize(from, v.cost)
	}
	if v.result == pubsub.ValidationReject {
		m.log.Debug("gossip rejected", "topic", topic, "from", from, "member", m.byPeer[from], "reason", v.reason)
	}
	if v.noRelay {
		return pubsub.ValidationIgnore
	}
	return v.result
}

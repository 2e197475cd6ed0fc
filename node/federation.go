package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/internal/keyspace"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal"
)

// The federation's history on a node.
//
// The federation file is version 0. Every certified update (see
// config.CheckFederationUpdate) the node accepts is appended to its log as
// a FederationUpdate record (identifier "federation/<version>", payload the
// signed note), so the history is in the log and under the node's
// checkpoints. FederationIndexer writes, in the transaction of that record,
//
//	'F' | version (8 bytes, big-endian)  →  the signed update
//
// from which a restarted node reloads and re-verifies its chain.
//
// Updates reach a node three ways: from an operator (POST /federation,
// authenticated with http.admin_token; meshctl federation propose|sign),
// from the FederationUpdate records of the peers' logs it replicates
// (learnFromReplica), and, for a node that is not a member of its genesis
// file, from the members' GET /federation/updates at start (bootstrap).

// KindFederationUpdate is the kind of the record that holds a certified
// federation update in a node's log. The log stores a kind as an opaque
// string; this value is in every leaf already written, so it never changes.
const KindFederationUpdate log.Kind = "FederationUpdate"

// fedKeyPrefix is the first byte of the node's federation-history keys; the
// list of every prefix of the store is in internal/keyspace.
const fedKeyPrefix = keyspace.Federation

// maxPendingTexts bounds the different proposals for the next version a node
// keeps while they gather signatures.
const maxPendingTexts = 4

// Errors of federation updates submitted to a node.
var (
	// ErrFederationStale reports an update for a version the node has
	// already passed.
	ErrFederationStale = errors.New("node: federation update for a version already in the chain")
	// ErrFederationConflict reports an update this node's member already
	// signed another text for, or too many proposals for one version.
	ErrFederationConflict = errors.New("node: conflicting federation update")
	// ErrFederationLate reports a certified update whose effective round is
	// less than two rounds after the current one.
	ErrFederationLate = errors.New("node: federation update certified too late")
)

// fedKey is the history key of version v.
func fedKey(v uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{fedKeyPrefix}, v)
}

// fedVersion parses the identifier "federation/<v>" of a FederationUpdate
// record.
func fedVersion(id string) (uint64, bool) {
	s, ok := strings.CutPrefix(id, "federation/")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil && v > 0 && strconv.FormatUint(v, 10) == s
}

// FederationIndexer is the log.Indexer of the node's own log that keeps the
// history keys of its FederationUpdate records; it refuses a second record
// for one version.
type FederationIndexer struct{}

// Index implements log.Indexer.
func (FederationIndexer) Index(txn *badger.Txn, rec *log.Record) error {
	if rec.Kind != KindFederationUpdate {
		return nil
	}
	v, ok := fedVersion(rec.Identifier)
	if !ok {
		return fmt.Errorf("%w: FederationUpdate identifier %q is not federation/<version>", config.ErrFederationUpdate, rec.Identifier)
	}
	switch _, err := txn.Get(fedKey(v)); {
	case err == nil:
		return fmt.Errorf("%w: version %d", ErrFederationStale, v)
	case !errors.Is(err, badger.ErrKeyNotFound):
		return fmt.Errorf("node: reading the federation history: %w", err)
	}
	return txn.Set(fedKey(v), bytes.Clone(rec.Payload))
}

// history is the node's verified chain of federation versions and the
// proposals for the next one.
type history struct {
	mu      sync.Mutex
	chain   []*config.FederationVersion // genesis first, verified
	notes   [][]byte                    // signed update of each version (nil for the genesis)
	pending map[[32]byte][]byte         // text hash → merged signed note, for the next version
	changed chan struct{}               // closed and replaced when the chain grows

	backdated []portal.BackdatedUpdate // refused backdated updates, oldest first, each once (backdate.go)
}

// loadHistory reads the accepted updates from the database and verifies
// them from the genesis file.
func loadHistory(db *badger.DB, genesis *config.Federation) (*history, error) {
	var notes [][]byte
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{fedKeyPrefix}, PrefetchValues: true})
		defer it.Close()
		want := uint64(1)
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != 9 || binary.BigEndian.Uint64(k[1:]) != want {
				return fmt.Errorf("node: federation history: key %x where version %d belongs", k, want)
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			notes = append(notes, v)
			want++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("node: reading the federation history: %w", err)
	}
	chain, err := config.VerifyFederationChain(genesis, notes)
	if err != nil {
		return nil, fmt.Errorf("node: the federation history in the log does not verify: %w", err)
	}
	return &history{chain: chain, notes: append([][]byte{nil}, notes...), pending: map[[32]byte][]byte{}, changed: make(chan struct{})}, nil
}

// current returns the latest version and the chain (not to be modified).
func (h *history) current() (*config.FederationVersion, []*config.FederationVersion) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.chain[len(h.chain)-1], h.chain
}

// updates returns the signed updates of versions from..latest.
func (h *history) updates(from uint64) [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	if from == 0 {
		from = 1
	}
	if from >= uint64(len(h.notes)) {
		return nil
	}
	return slices.Clone(h.notes[from:])
}

// wait returns a channel closed when the chain next grows.
func (h *history) wait() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

// FederationProposal is a pending update as a node reports it.
type FederationProposal struct {
	// Version is the version the update would make.
	Version uint64
	// Hash is the base64 SHA-256 of its text.
	Hash []byte
	// Signers are the current members who signed it.
	Signers []string
	// Missing are the new keys that have not signed yet.
	Missing []string
	// Note is the update with every signature the node gathered.
	Note string
}

// FederationSubmission is what a node did with a submitted update.
type FederationSubmission struct {
	// Accepted reports that the update was certified and is now in the
	// node's chain (and log).
	Accepted bool
	// Proposal is the update with every signature the node holds.
	Proposal FederationProposal
}

// SubmitFederationUpdate takes a signed federation update from the
// operator: merged with the signatures the node already holds for the
// same text, it is kept as a proposal until certified, then appended to
// the log and to the chain. A certified update must take effect at least
// two rounds after the current one. The node refuses a text its own
// member signed when it already holds its own signature on another text
// for the same version (so an honest member never helps certify two).
func (n *Node) SubmitFederationUpdate(ctx context.Context, signed []byte) (FederationSubmission, error) {
	h := n.history
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.chain[len(h.chain)-1]
	if next, err := config.ParseFederationText(noteText(signed)); err == nil && next.Version <= cur.Version {
		if have := h.chain[next.Version]; bytes.Equal(have.Text(), next.Text()) {
			// Accepted already (perhaps from a peer's log): nothing to do.
			th := sha256.Sum256(have.Text())
			return FederationSubmission{Accepted: true, Proposal: FederationProposal{Version: have.Version, Hash: th[:], Note: string(h.notes[have.Version])}}, nil
		}
		return FederationSubmission{}, fmt.Errorf("%w: version %d, the node is at version %d", ErrFederationStale, next.Version, cur.Version)
	}
	// More signatures for a pending proposal are merged with it first: a
	// new key's signature alone is not a proposal, but completes one.
	th := sha256.Sum256(noteText(signed))
	old, known := h.pending[th]
	if known {
		merged, err := config.MergeFederationSignatures(old, signed)
		if err != nil {
			return FederationSubmission{}, err
		}
		signed = merged
	}
	u, err := config.CheckFederationUpdate(cur, signed)
	if err != nil {
		return FederationSubmission{}, err
	}
	if !known {
		if slices.Contains(u.Signers, n.cfg.Origin) {
			for other, note := range h.pending {
				if o, err := config.CheckFederationUpdate(cur, note); err == nil && other != th && slices.Contains(o.Signers, n.cfg.Origin) {
					return FederationSubmission{}, fmt.Errorf("%w: %s already signed another text for version %d", ErrFederationConflict, n.cfg.Origin, u.Next.Version)
				}
			}
		}
		if len(h.pending) >= maxPendingTexts {
			return FederationSubmission{}, fmt.Errorf("%w: %d proposals for version %d are pending already", ErrFederationConflict, len(h.pending), u.Next.Version)
		}
	}
	sub := FederationSubmission{Proposal: proposal(u, th, signed)}
	if !u.Certified {
		h.pending[th] = signed
		return sub, nil
	}
	if r := n.Epoch(); u.Next.Effective < r+2 {
		h.pending[th] = signed
		return sub, fmt.Errorf("%w: certified in round %d, but effective in round %d; it must be at least round %d (propose again)", ErrFederationLate, r, u.Next.Effective, r+2)
	}
	if err := n.acceptLocked(ctx, u, signed); err != nil {
		return sub, err
	}
	sub.Accepted = true
	return sub, nil
}

// learnFederationUpdate takes a certified update found in a peer's log (or
// served by a member at bootstrap): unlike the operator's path, its
// effective round may have passed, since another member accepted it in
// time, but not a round this node certified already (backdate.go). It
// reports whether the chain grew.
func (n *Node) learnFederationUpdate(ctx context.Context, signed []byte) (bool, error) {
	h := n.history
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.chain[len(h.chain)-1]
	if next, err := config.ParseFederationText(noteText(signed)); err == nil && next.Version != cur.Version+1 {
		return false, nil // known already, or a later one: it comes again in order
	}
	u, err := config.CheckFederationUpdate(cur, signed)
	if err != nil {
		return false, err
	}
	if !u.Certified {
		return false, fmt.Errorf("%w: version %d in a peer's log is not certified", config.ErrFederationUpdate, u.Next.Version)
	}
	if err := n.checkNotBackdated(u, signed); err != nil {
		return false, err
	}
	if r := n.Epoch(); u.Next.Effective < r {
		n.logger.Warn("learned a federation update after its effective round: the rounds since then that this node did not certify are judged under it",
			"version", u.Next.Version, "effective_round", u.Next.Effective, "round", r)
	}
	return true, n.acceptLocked(ctx, u, signed)
}

// acceptLocked appends a certified update to the log and the chain; h.mu
// is held.
func (n *Node) acceptLocked(ctx context.Context, u *config.FederationUpdate, signed []byte) error {
	h := n.history
	_, err := n.log.Append(ctx, log.Record{
		Kind:       KindFederationUpdate,
		Identifier: fmt.Sprintf("federation/%d", u.Next.Version),
		Payload:    signed,
	})
	if err != nil && !errors.Is(err, ErrFederationStale) {
		return fmt.Errorf("node: appending federation version %d: %w", u.Next.Version, err)
	}
	h.chain = append(h.chain, u.Next)
	h.notes = append(h.notes, signed)
	clear(h.pending)
	close(h.changed)
	h.changed = make(chan struct{})
	n.logger.Info("federation update accepted", "version", u.Next.Version, "effective_round", u.Next.Effective,
		"members", len(u.Next.Members), "quorum", u.Next.Quorum, "signers", u.Signers)
	return nil
}

// FederationPending lists the proposals the node holds for the next version.
func (n *Node) FederationPending() []FederationProposal {
	h := n.history
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.chain[len(h.chain)-1]
	var out []FederationProposal
	for th, signed := range h.pending {
		if u, err := config.CheckFederationUpdate(cur, signed); err == nil {
			out = append(out, proposal(u, th, signed))
		}
	}
	slices.SortFunc(out, func(a, b FederationProposal) int { return bytes.Compare(a.Hash, b.Hash) })
	return out
}

func proposal(u *config.FederationUpdate, th [32]byte, signed []byte) FederationProposal {
	return FederationProposal{Version: u.Next.Version, Hash: th[:], Signers: u.Signers, Missing: u.Missing, Note: string(signed)}
}

// noteText is the text of a signed note with its final newline.
func noteText(signed []byte) []byte {
	text, _, ok := bytes.Cut(signed, []byte("\n\n"))
	if !ok {
		return nil
	}
	return append(bytes.Clone(text), '\n')
}

// FederationChain is the node's verified chain of federation versions, the
// genesis first; nil when the node runs alone.
func (n *Node) FederationChain() []*config.FederationVersion {
	if n.history == nil {
		return nil
	}
	_, chain := n.history.current()
	return slices.Clone(chain)
}

package witness

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// ErrUnknownLog reports a witness that does not witness the log: 404 as
// tlog-witness says, or 403 as some witnesses (litewitness) answer for an
// origin they do not know.
var ErrUnknownLog = errors.New("witness: the witness does not know this log")

// ErrWitnessAhead reports a witness that cosigned a larger tree of the log
// than the log has: the log lost records, or someone else signed with its
// key.
var ErrWitnessAhead = errors.New("witness: the witness knows a larger tree than the log")

// ConsistencyProver gives the log's consistency proofs (*merkle.Tree).
type ConsistencyProver interface {
	ConsistencyProof(size1, size2 uint64) ([][]byte, error)
}

// Submitter submits a log's checkpoints to witnesses (C2SP tlog-witness)
// and keeps the latest checkpoint that a quorum of the policy's witnesses
// cosigned, with every cosignature it got.
type Submitter struct {
	policy  *Policy
	extra   atomic.Pointer[[]PolicyWitness] // submitted to, not counted in the quorum (SetExtra replaces them)
	proofs  ConsistencyProver
	client  *http.Client
	logger  *slog.Logger
	observe func(witness string, d time.Duration, err error)

	mu       sync.Mutex
	known    map[string]uint64 // witness name → size it last cosigned, as far as we know
	cosigned []byte
}

// SubmitterConfig configures a Submitter.
type SubmitterConfig struct {
	// Policy lists the witnesses whose quorum makes a checkpoint cosigned.
	// Nil means none: only Extra are asked.
	Policy *Policy
	// Extra are witnesses asked too, not counted in the quorum (the
	// federation's members).
	Extra []PolicyWitness
	// Proofs gives the log's consistency proofs (required).
	Proofs ConsistencyProver
	// Client makes the requests; nil means one with a 10 s timeout.
	Client *http.Client
	// Logger logs the witnesses' failures. Optional.
	Logger *slog.Logger
	// Observe, if set, is called after each submission with its duration
	// and outcome.
	Observe func(witness string, d time.Duration, err error)
}

// NewSubmitter returns a Submitter for cfg.
func NewSubmitter(cfg SubmitterConfig) *Submitter {
	s := &Submitter{policy: cfg.Policy, proofs: cfg.Proofs, client: cfg.Client, logger: cfg.Logger,
		observe: cfg.Observe, known: map[string]uint64{}}
	s.SetExtra(cfg.Extra)
	if s.policy == nil {
		s.policy = &Policy{}
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 10 * time.Second}
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	return s
}

// SetExtra replaces the witnesses asked besides the policy's (the
// federation's members, which change with it); a submission under way
// keeps the ones it started with.
func (s *Submitter) SetExtra(extra []PolicyWitness) {
	extra = slices.Clone(extra)
	s.extra.Store(&extra)
}

// Cosigned returns the latest checkpoint that met the policy's quorum,
// with the log's signature and every cosignature it got; nil if none yet.
func (s *Submitter) Cosigned() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cosigned
}

// Submit sends a signed checkpoint of the log to every witness at once and
// gathers their cosignatures. It returns the checkpoint with them
// appended and how many of the policy's witnesses cosigned; when that
// meets the quorum, the result becomes Cosigned().
func (s *Submitter) Submit(ctx context.Context, signed []byte) ([]byte, int, error) {
	text, _, ok := bytes.Cut(signed, []byte("\n\n"))
	if !ok {
		return nil, 0, errors.New("witness: the checkpoint is not a signed note")
	}
	cp, err := parseCheckpoint(signed[:len(text)+1]) // not append: that writes into the caller's note, which others read
	if err != nil {
		return nil, 0, err
	}
	all := append(append([]PolicyWitness(nil), s.policy.Witnesses...), *s.extra.Load()...)
	if len(all) == 0 {
		return bytes.Clone(signed), 0, nil // no witness to ask (yet)
	}
	lines := make([][]byte, len(all))
	var wg sync.WaitGroup
	for i, w := range all {
		wg.Go(func() {
			start := time.Now()
			line, err := s.submitOne(ctx, w, signed, cp)
			if s.observe != nil {
				s.observe(w.Name, time.Since(start), err)
			}
			switch {
			case errors.Is(err, ErrUnknownLog):
				s.logger.Debug("witness does not witness this log", "witness", w.Name, "err", err)
			case err != nil:
				s.logger.Warn("witness did not cosign", "witness", w.Name, "size", cp.size, "err", err)
			}
			lines[i] = line
		})
	}
	wg.Wait()
	out := bytes.Clone(signed)
	count := 0
	for i, l := range lines {
		if l == nil {
			continue
		}
		out = append(out, l...)
		if i < len(s.policy.Witnesses) {
			count++
		}
	}
	if count >= s.policy.Quorum {
		s.mu.Lock()
		s.cosigned = out
		s.mu.Unlock()
	}
	return out, count, nil
}

// maxConflicts bounds the 409 answers one submission follows.
const maxConflicts = 2

// submitOne submits signed to one witness and returns its verified
// cosignature line. It follows a 409's known size once or twice.
func (s *Submitter) submitOne(ctx context.Context, w PolicyWitness, signed []byte, cp checkpoint) ([]byte, error) {
	s.mu.Lock()
	old := s.known[w.Name]
	s.mu.Unlock()
	for range maxConflicts + 1 {
		if old > cp.size {
			return nil, fmt.Errorf("%w: it cosigned size %d, the log is at %d", ErrWitnessAhead, old, cp.size)
		}
		var body bytes.Buffer
		fmt.Fprintf(&body, "old %d\n", old)
		if old > 0 && old < cp.size {
			p, err := s.proofs.ConsistencyProof(old, cp.size)
			if err != nil {
				return nil, fmt.Errorf("consistency proof from %d to %d: %w", old, cp.size, err)
			}
			for _, h := range p {
				body.WriteString(base64.StdEncoding.EncodeToString(h) + "\n")
			}
		}
		body.WriteString("\n")
		body.Write(signed)
		status, answer, err := s.post(ctx, w.URL+"/add-checkpoint", body.Bytes())
		if err != nil {
			return nil, err
		}
		switch status {
		case http.StatusOK:
			line, err := cosignatureLine(w.Verifier, signed, answer)
			if err != nil {
				return nil, err
			}
			s.mu.Lock()
			s.known[w.Name] = cp.size
			s.mu.Unlock()
			return line, nil
		case http.StatusConflict:
			n, err := strconv.ParseUint(strings.TrimSuffix(string(answer), "\n"), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("409 without a tree size: %q", answer)
			}
			if n == old {
				return nil, fmt.Errorf("409 at size %d, the old size sent: the witness refuses this checkpoint against the one it cosigned at that size (another root, another map root, or no map line where that one had one)", n)
			}
			old = n
			s.mu.Lock()
			s.known[w.Name] = n
			s.mu.Unlock()
		case http.StatusNotFound, http.StatusForbidden:
			return nil, fmt.Errorf("%w: %d %s", ErrUnknownLog, status, bytes.TrimSpace(answer))
		default:
			return nil, fmt.Errorf("add-checkpoint: %d %s", status, bytes.TrimSpace(answer))
		}
	}
	return nil, fmt.Errorf("add-checkpoint: still 409 after %d tries", maxConflicts+1)
}

// maxAnswer bounds a witness's answer.
const maxAnswer = 16 << 10

// post POSTs body and returns the status and up to maxAnswer bytes.
func (s *Submitter) post(ctx context.Context, url string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	return resp.StatusCode, answer, err
}

// cosignatureLine finds, among a witness's answer lines, its valid
// cosignature of signed, and returns that line.
func cosignatureLine(v *CosignatureVerifier, signed, answer []byte) ([]byte, error) {
	if !bytes.HasSuffix(answer, []byte("\n")) {
		return nil, errors.New("the answer is not newline-terminated signature lines")
	}
	for _, l := range bytes.SplitAfter(answer, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		n, err := note.Open(append(bytes.Clone(signed), l...), note.VerifierList(v))
		if err != nil {
			continue
		}
		for _, sig := range n.Sigs {
			if sig.Name == v.Name() && sig.Hash == v.KeyHash() {
				return l, nil
			}
		}
	}
	return nil, fmt.Errorf("no valid cosignature by %s in the answer", v.Name())
}

package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/intermesh/intermesh/config"
)

// Fetching the chain of federation updates from the members.
//
// A node that missed updates (it was offline, it is joining, or it saw a
// later version than the next one in a peer's log) asks every member of
// every version it knows for its chain (GET /federation/updates) and keeps
// what verifies, step by step, from its own chain: an answer is read as a
// stream, each entry checked as it arrives (an entry for a version the
// node has must be that version's text; a later one must be certified by
// the version before it), and the answer stops counting at its first entry
// that does not verify. The verified steps of all answers are merged: an
// answer's length decides nothing, so a member serving a long list of junk
// cannot hide the certified chain the others serve. A member that serves an
// entry that does not verify is logged, counted in
// intermesh_federation_updates_refused_total{reason="unverified"} and
// penalized in the Mesh's peer scores.
//
// Each answer is bounded by the chain's plausible size: the versions the
// node holds plus maxUpdatesAhead, each at most config.MaxFederationNote.

// FederationUpdates is the body of GET /federation/updates.
type FederationUpdates struct {
	// Updates are the signed updates from version 1 on.
	Updates []string
}

// maxUpdatesAhead bounds the versions beyond its own that a node takes
// from one fetch; it asks again for the rest.
const maxUpdatesAhead = 64

// errBadChain reports an answer with an entry that does not verify.
var errBadChain = errors.New("an entry of the chain does not verify")

// chainSource is a member the node asks for the chain.
type chainSource struct{ origin, url string }

// chainSources lists the members of every version of chain, latest
// version first, each URL once, without the node itself.
func (n *Node) chainSources(chain []*config.FederationVersion) []chainSource {
	seen := map[string]bool{}
	var out []chainSource
	for i := len(chain) - 1; i >= 0; i-- {
		for _, m := range chain[i].Members {
			if m.HTTP == "" || m.Origin == n.cfg.Origin || seen[m.HTTP] {
				continue
			}
			seen[m.HTTP] = true
			out = append(out, chainSource{m.Origin, m.HTTP})
		}
	}
	return out
}

// fetchUpdates asks the members for their chains (see above), best effort,
// and returns the verified updates after the node's latest version, in
// order.
func (n *Node) fetchUpdates(ctx context.Context) [][]byte {
	_, chain := n.history.current()
	client := &http.Client{Timeout: 5 * time.Second}
	var merged [][]byte
	for _, src := range n.chainSources(chain) {
		got, err := fetchChain(ctx, client, src.url, chain)
		if errors.Is(err, errBadChain) {
			n.badChain(src, err)
		} else if err != nil {
			n.logger.Debug("fetching federation updates", "member", src.origin, "err", err)
		}
		merged = n.mergeChain(merged, got, src)
	}
	return merged
}

// mergeChain adds to merged the verified steps of got it lacks. Two
// different certified texts for one version (its signers signed both) keep
// the first one heard, and are logged.
func (n *Node) mergeChain(merged, got [][]byte, src chainSource) [][]byte {
	for i, u := range got {
		if i >= len(merged) {
			return append(merged, got[i:]...)
		}
		if !bytes.Equal(noteText(u), noteText(merged[i])) {
			n.logger.Error("a member serves another certified federation update for a version than other members: its signers signed two texts",
				"member", src.origin, "position", i)
			return merged
		}
	}
	return merged
}

// badChain logs, counts and penalizes a member whose answer had an entry
// that does not verify.
func (n *Node) badChain(src chainSource, err error) {
	n.logger.Warn("a member served a chain of federation updates that does not verify", "member", src.origin, "err", err)
	n.fedRefused.WithLabelValues("unverified").Inc()
	if im := n.Mesh(); im != nil {
		im.PenalizeBadFederationChain(src.origin)
	}
}

// fetchChain reads base's GET /federation/updates as a stream and returns
// the entries after chain's latest version that verify from it, in order
// (at most maxUpdatesAhead); the error wraps errBadChain if an entry did
// not verify.
func fetchChain(ctx context.Context, client *http.Client, base string, chain []*config.FederationVersion) ([][]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/federation/updates", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /federation/updates: %s", resp.Status)
	}
	limit := int64(len(chain)+maxUpdatesAhead) * (2*config.MaxFederationNote + 16)
	v := chainVerifier{chain: chain, prev: chain[len(chain)-1]}
	err = streamUpdates(io.LimitReader(resp.Body, limit), v.step)
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, errEnough):
		err = nil
	case errors.As(err, &syntax), errors.As(err, &typ):
		err = fmt.Errorf("%w: %w", errBadChain, err)
	}
	if err != nil {
		return v.out, fmt.Errorf("GET %s/federation/updates: %w", base, err)
	}
	return v.out, nil
}

// errEnough stops a stream that gave maxUpdatesAhead verified entries.
var errEnough = errors.New("enough updates")

// chainVerifier checks the entries of an answer in order.
type chainVerifier struct {
	chain []*config.FederationVersion
	prev  *config.FederationVersion // the latest version verified
	seen  int                       // entries read
	out   [][]byte                  // verified entries after chain
}

// step checks the next entry of the answer.
func (v *chainVerifier) step(signed []byte) error {
	v.seen++
	if v.seen < len(v.chain) {
		if !bytes.Equal(noteText(signed), v.chain[v.seen].Text()) {
			return fmt.Errorf("%w: version %d is not the one this node holds", errBadChain, v.seen)
		}
		return nil
	}
	u, err := config.CheckFederationUpdate(v.prev, signed)
	switch {
	case err != nil:
		return fmt.Errorf("%w: entry %d: %w", errBadChain, v.seen, err)
	case !u.Certified:
		return fmt.Errorf("%w: version %d is not certified", errBadChain, u.Next.Version)
	}
	v.prev = u.Next
	v.out = append(v.out, signed)
	if len(v.out) == maxUpdatesAhead {
		return errEnough
	}
	return nil
}

// streamUpdates decodes a FederationUpdates body from r, calling each with
// every entry of Updates in order, without holding more than one entry;
// each's error stops it.
func streamUpdates(r io.Reader, each func([]byte) error) error {
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return err
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return err
		}
		if key != "Updates" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return err
			}
			continue
		}
		if err := expectDelim(dec, '['); err != nil {
			return err
		}
		for dec.More() {
			var u string
			if err := dec.Decode(&u); err != nil {
				return err
			}
			if len(u) > config.MaxFederationNote {
				return fmt.Errorf("%w: an entry of %d bytes, over the limit of %d", errBadChain, len(u), config.MaxFederationNote)
			}
			if err := each([]byte(u)); err != nil {
				return err
			}
		}
		if err := expectDelim(dec, ']'); err != nil {
			return err
		}
	}
	return expectDelim(dec, '}')
}

// expectDelim reads the next token of dec, which must be d.
func expectDelim(dec *json.Decoder, d json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t != d {
		return fmt.Errorf("%w: %v where %q belongs", errBadChain, t, d)
	}
	return nil
}

package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/intermesh/intermesh/audit"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/portal/mesh"
)

// originVerifier checks the writes one member's portal acknowledged.
type originVerifier struct {
	keys      *federationKeys
	origin    string
	writes    []Write
	newClient func(string) (*client.Client, error)
	deadline  time.Time
}

type originResult struct {
	served, replicas, included int
	failures                   []string
}

// foundWrite is where a portal serves one acknowledged write.
type foundWrite struct {
	index uint64
	leaf  []byte
}

func (v *originVerifier) run(ctx context.Context) (OriginReport, originResult) {
	var res originResult
	url := v.keys.http[v.origin]
	ov := OriginReport{Origin: v.origin, Portal: url, Writes: len(v.writes)}
	c, err := v.newClient(url)
	if err != nil {
		res.failures = append(res.failures, fmt.Sprintf("%s: %v", v.origin, err))
		return ov, res
	}
	// 1. Its own portal serves every write; note each one's index and leaf.
	found := map[string]foundWrite{} // digest → where
	for _, id := range identifiers(v.writes) {
		got, err := servedVersions(ctx, c, id, true)
		if err != nil {
			res.failures = append(res.failures, fmt.Sprintf("%s: Get %s: %v", v.origin, id, err))
			continue
		}
		for d, f := range got {
			found[d] = f
		}
	}
	var maxIndex uint64
	for _, w := range v.writes {
		f, ok := found[w.Digest]
		if !ok {
			res.failures = append(res.failures, fmt.Sprintf("%s %s (digest %s) acknowledged by %s is not served by it", w.Kind, w.Identifier, w.Digest, v.origin))
			continue
		}
		res.served++
		maxIndex = max(maxIndex, f.index)
	}
	// 2. Every other member serves every write from its replica.
	res.replicas, res.failures = v.checkReplicas(ctx, res.failures)
	// 3. A certificate covers every write: wait for one whose checkpoint of
	// this origin is past the last write, copy the log up to it, check its
	// root and each write's inclusion proof.
	cert, cp, err := v.waitForCertificate(ctx, c, maxIndex+1)
	if err != nil {
		res.failures = append(res.failures, fmt.Sprintf("%s: %v", v.origin, err))
		return ov, res
	}
	ov.Round, ov.Size, ov.Signers = cert.Round, cp.Size, len(cert.Signers)
	levels, err := copyLogLevels(ctx, c, cp.Size)
	ov.LogCopied = uint64(len(levels[0]))
	if err != nil {
		res.failures = append(res.failures, fmt.Sprintf("%s: copying its log up to the certified size %d: %v", v.origin, cp.Size, err))
		return ov, res
	}
	roots, err := audit.RootsAt(levels[0], []uint64{cp.Size})
	if err != nil || !bytes.Equal(roots[cp.Size], cp.Root) {
		res.failures = append(res.failures, fmt.Sprintf("%s: the root of its log at the certified size %d is not the certified root", v.origin, cp.Size))
		return ov, res
	}
	for _, w := range v.writes {
		f, ok := found[w.Digest]
		if !ok {
			continue
		}
		if err := verifyWriteInclusion(levels, f, cp.Size, cp.Root); err != nil {
			res.failures = append(res.failures, fmt.Sprintf("%s %s (digest %s) at %s index %d: %v", w.Kind, w.Identifier, w.Digest, v.origin, f.index, err))
			continue
		}
		res.included++
	}
	return ov, res
}

// identifiers are the distinct identifiers of writes, in order.
func identifiers(writes []Write) []string {
	var out []string
	seen := map[string]bool{}
	for _, w := range writes {
		if !seen[w.Identifier] {
			seen[w.Identifier] = true
			out = append(out, w.Identifier)
		}
	}
	return out
}

// servedVersions returns every version of identifier a portal serves, by
// PayloadDigest, with its log index and leaf when full is set.
func servedVersions(ctx context.Context, c *client.Client, id string, full bool) (map[string]foundWrite, error) {
	out := map[string]foundWrite{}
	req := &portal.GetRequest{Identifier: id, Multiple: true, Full: full, SearchConstraints: &portal.SearchConstraints{}}
	for {
		resp, err := c.Get(ctx, req)
		if err != nil {
			return out, err
		}
		for _, item := range resp.DataItems {
			_, env, err := mesh.ParseEntry(item.Entry)
			if err != nil {
				continue
			}
			f := foundWrite{leaf: item.Leaf}
			if item.Index != nil {
				f.index = *item.Index
			}
			out[b64url(env.Trailer.PayloadDigest)] = f
		}
		if resp.PageKey == "" || len(resp.DataItems) == 0 {
			return out, nil
		}
		req.SearchConstraints.PageKey = resp.PageKey
	}
}

// checkReplicas waits until every other member serves every write, or the
// deadline, and returns how many writes all of them serve.
func (v *originVerifier) checkReplicas(ctx context.Context, failures []string) (int, []string) {
	missing := map[string]map[string]bool{} // member origin → digests not yet seen
	for _, o := range v.keys.origins {
		if o == v.origin {
			continue
		}
		m := map[string]bool{}
		for _, w := range v.writes {
			m[w.Digest] = true
		}
		missing[o] = m
	}
	errs := map[string]error{}
	for {
		for o, m := range missing {
			if len(m) == 0 {
				continue
			}
			c, err := v.newClient(v.keys.http[o])
			if err != nil {
				errs[o] = err
				continue
			}
			for _, id := range identifiers(v.writes) {
				got, err := servedVersions(ctx, c, id, false)
				if err != nil {
					errs[o] = err
				}
				for d := range got {
					delete(m, d)
				}
			}
		}
		pending := false
		for _, m := range missing {
			pending = pending || len(m) > 0
		}
		if !pending || time.Now().After(v.deadline) || ctx.Err() != nil {
			break
		}
		sleepCtx(ctx, time.Second)
	}
	served := 0
	for _, w := range v.writes {
		all := true
		for o, m := range missing {
			if m[w.Digest] {
				all = false
				why := "not in its replica"
				if errs[o] != nil {
					why = errs[o].Error()
				}
				failures = append(failures, fmt.Sprintf("%s %s (digest %s) acknowledged by %s is not served by %s: %s", w.Kind, w.Identifier, w.Digest, v.origin, o, why))
			}
		}
		if all {
			served++
		}
	}
	return served, failures
}

// waitForCertificate polls the portal's Status until the master-hash
// certificate it proves holds a checkpoint of the origin of at least size
// entries, and verifies it with the federation's keys (a quorum of member
// signatures, M_r recomputed from the checkpoints, each signed by its
// origin).
func (v *originVerifier) waitForCertificate(ctx context.Context, c *client.Client, size uint64) (*audit.Certificate, audit.Checkpoint, error) {
	last := errors.New("its Status proves no certificate")
	for {
		st, err := c.Status(ctx)
		if err != nil {
			last = fmt.Errorf("Status: %w", err)
		} else if len(st.Peers) > 0 {
			cert, err := v.statusCertificate(st)
			if err != nil {
				return nil, audit.Checkpoint{}, err
			}
			cp, ok := checkpointOf(cert, v.origin)
			switch {
			case !ok:
				last = fmt.Errorf("the certificate of round %d it proves does not hold its own checkpoint", cert.Round)
			case cp.Size < size:
				last = fmt.Errorf("the latest certificate (round %d) covers %d entries of its log, the writes reach index %d", cert.Round, cp.Size, size-1)
			default:
				return cert, cp, nil
			}
		}
		if time.Now().After(v.deadline) || ctx.Err() != nil {
			return nil, audit.Checkpoint{}, fmt.Errorf("no certificate covers every write after waiting: %w", last)
		}
		sleepCtx(ctx, time.Second)
	}
}

// statusCertificate verifies the certificate of a Status answer offline.
func (v *originVerifier) statusCertificate(st *portal.StatusResponse) (*audit.Certificate, error) {
	signed := st.Peers[0].MasterHash
	vote, err := audit.ParseVoteText(v.keys.name, audit.NoteText(signed))
	if err != nil {
		return nil, fmt.Errorf("the certificate in its Status: %w", err)
	}
	cps := make([]string, len(st.Peers))
	for i, p := range st.Peers {
		if p.MasterHash != signed {
			return nil, errors.New("its Status proves two different certificates")
		}
		cps[i] = p.Checkpoint
	}
	cert, err := v.keys.keys.VerifyCertificate(signed, cps, vote.Round)
	if err != nil {
		return nil, fmt.Errorf("the certificate in its Status does not verify: %w", err)
	}
	return cert, nil
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

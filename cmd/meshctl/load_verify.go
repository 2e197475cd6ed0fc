package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/portal/mesh"
)

// verifyReport is the outcome of 'meshctl load --verify'.
type verifyReport struct {
	OK       bool           `json:"ok"`
	Writes   int            `json:"writes"`
	Served   int            `json:"served_by_portal"`
	Replicas int            `json:"served_by_every_replica"`
	Included int            `json:"included_under_certificate"`
	Members  int            `json:"members"`
	Origins  []originVerify `json:"origins"`
	// Failures are the first maxVerifyFailures problems; FailureCount
	// counts them all.
	Failures     []string `json:"failures"`
	FailureCount int      `json:"failure_count"`
}

// originVerify is what was checked at one portal.
type originVerify struct {
	Origin    string `json:"origin"`
	Portal    string `json:"portal"`
	Writes    int    `json:"writes"`
	Round     uint64 `json:"certified_round"`
	Size      uint64 `json:"certified_size"`
	Signers   int    `json:"certificate_signers"`
	LogCopied uint64 `json:"entries_copied"`
}

const maxVerifyFailures = 50

func (r *verifyReport) fail(format string, args ...any) {
	r.FailureCount++
	if len(r.Failures) < maxVerifyFailures {
		r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
	}
}

func (r *verifyReport) writeHuman(w io.Writer) {
	verdict := "PASS"
	if !r.OK {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "load --verify: %s: %d acknowledged writes\n", verdict, r.Writes)
	fmt.Fprintf(w, "  served by the portal that acknowledged them: %d/%d\n", r.Served, r.Writes)
	fmt.Fprintf(w, "  served by every other member's replica:      %d/%d (%d members)\n", r.Replicas, r.Writes, r.Members)
	fmt.Fprintf(w, "  included under a certified checkpoint:        %d/%d\n", r.Included, r.Writes)
	for _, o := range r.Origins {
		fmt.Fprintf(w, "  %s: %d writes, certificate of round %d (%d signers) covers size %d, %d entries copied and checked\n",
			o.Origin, o.Writes, o.Round, o.Signers, o.Size, o.LogCopied)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  FAIL %s\n", f)
	}
	if r.FailureCount > len(r.Failures) {
		fmt.Fprintf(w, "  ... and %d more failures (--json lists the first %d)\n", r.FailureCount-len(r.Failures), maxVerifyFailures)
	}
}

// foundWrite is where a portal serves one acknowledged write.
type foundWrite struct {
	index uint64
	leaf  []byte
}

// runLoadVerify checks every write of the --acks file.
func runLoadVerify(cmd *cobra.Command, opts *globalOptions, o loadOptions, fed *config.Federation) (*verifyReport, error) {
	ctx := cmd.Context()
	keys, err := newFederationKeys(fed)
	if err != nil {
		return nil, usagef(cmd, "--federation: %w", err)
	}
	acks, err := readAcks(o.acks)
	if err != nil {
		return nil, err
	}
	rep := &verifyReport{Writes: len(acks), Members: len(fed.Members)}
	byOrigin := map[string][]ackedWrite{}
	for _, w := range acks {
		origin := keys.originOf(w.Portal)
		if origin == "" {
			rep.fail("%s %s at %s: that portal is not a member of the federation", w.Kind, w.Identifier, w.Portal)
			continue
		}
		byOrigin[origin] = append(byOrigin[origin], w)
	}
	newClient := func(u string) (*client.Client, error) {
		var copts []client.Option
		if opts.token != "" {
			copts = append(copts, client.WithToken(opts.token))
		}
		return client.New(u, copts...)
	}
	deadline := time.Now().Add(o.wait)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, origin := range keys.origins {
		writes := byOrigin[origin]
		if len(writes) == 0 {
			continue
		}
		wg.Go(func() {
			v := originVerifier{keys: keys, origin: origin, writes: writes, newClient: newClient, deadline: deadline}
			ov, res := v.run(ctx)
			mu.Lock()
			defer mu.Unlock()
			rep.Origins = append(rep.Origins, ov)
			rep.Served += res.served
			rep.Replicas += res.replicas
			rep.Included += res.included
			for _, f := range res.failures {
				rep.fail("%s", f)
			}
		})
	}
	wg.Wait()
	sort.Slice(rep.Origins, func(i, j int) bool { return rep.Origins[i].Origin < rep.Origins[j].Origin })
	if rep.Writes == 0 {
		rep.fail("%s lists no acknowledged writes: nothing was checked", o.acks)
	}
	rep.OK = rep.FailureCount == 0 && rep.Served == rep.Writes && rep.Replicas == rep.Writes && rep.Included == rep.Writes
	return rep, ctx.Err()
}

// originVerifier checks the writes one portal acknowledged.
type originVerifier struct {
	keys      *federationKeys
	origin    string
	writes    []ackedWrite
	newClient func(string) (*client.Client, error)
	deadline  time.Time
}

type originResult struct {
	served, replicas, included int
	failures                   []string
}

func (v *originVerifier) run(ctx context.Context) (originVerify, originResult) {
	var res originResult
	url := v.keys.http[v.origin]
	ov := originVerify{Origin: v.origin, Portal: url, Writes: len(v.writes)}
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
	roots, err := rootsAt(levels[0], []uint64{cp.Size})
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
func identifiers(writes []ackedWrite) []string {
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
func (v *originVerifier) waitForCertificate(ctx context.Context, c *client.Client, size uint64) (*auditCertificate, signedCheckpoint, error) {
	last := errors.New("its Status proves no certificate")
	for {
		st, err := c.Status(ctx)
		if err != nil {
			last = fmt.Errorf("Status: %w", err)
		} else if len(st.Peers) > 0 {
			cert, err := v.statusCertificate(st)
			if err != nil {
				return nil, signedCheckpoint{}, err
			}
			i := cert.index(v.origin)
			switch {
			case i < 0:
				last = fmt.Errorf("the certificate of round %d it proves does not hold its own checkpoint", cert.Round)
			case cert.Checkpoints[i].Size < size:
				last = fmt.Errorf("the latest certificate (round %d) covers %d entries of its log, the writes reach index %d", cert.Round, cert.Checkpoints[i].Size, size-1)
			default:
				return cert, cert.Checkpoints[i], nil
			}
		}
		if time.Now().After(v.deadline) || ctx.Err() != nil {
			return nil, signedCheckpoint{}, fmt.Errorf("no certificate covers every write after waiting: %w", last)
		}
		sleepCtx(ctx, time.Second)
	}
}

// statusCertificate verifies the certificate of a Status answer offline.
func (v *originVerifier) statusCertificate(st *portal.StatusResponse) (*auditCertificate, error) {
	signed := st.Peers[0].MasterHash
	vote, err := parseVoteText(v.keys.name, noteText(signed))
	if err != nil {
		return nil, fmt.Errorf("the certificate in its Status: %w", err)
	}
	cps := make([]string, len(st.Peers))
	for i, p := range st.Peers {
		if p.MasterHash != signed {
			return nil, fmt.Errorf("its Status proves two different certificates")
		}
		cps[i] = p.Checkpoint
	}
	cert, err := v.keys.verifyMasterNote(signed, cps, vote.Round, true)
	if err != nil {
		return nil, fmt.Errorf("the certificate in its Status does not verify: %w", err)
	}
	return cert, nil
}

// copyLogLevels copies the first size entries of a portal's log with
// Transfer and returns the hashes of every complete subtree, level by level
// (level 0: the leaf hashes), from which inclusion proofs are built.
func copyLogLevels(ctx context.Context, c *client.Client, size uint64) ([][][]byte, error) {
	errEnough := errors.New("enough")
	leaves := make([][]byte, 0, size)
	err := c.TransferAll(ctx, 0, 0, func(item portal.DataItem) error {
		if uint64(len(leaves)) >= size {
			return errEnough
		}
		if item.Index == nil || *item.Index != uint64(len(leaves)) {
			return fmt.Errorf("entry %s arrived where %d was expected", indexString(item.Index), len(leaves))
		}
		leaves = append(leaves, rfc6962.DefaultHasher.HashLeaf(item.Leaf))
		return nil
	})
	levels := [][][]byte{leaves}
	if err != nil && !errors.Is(err, errEnough) {
		return levels, err
	}
	if uint64(len(leaves)) < size {
		return levels, fmt.Errorf("the log has %d entries", len(leaves))
	}
	for prev := leaves; len(prev) > 1; {
		next := make([][]byte, len(prev)/2)
		for j := range next {
			next[j] = rfc6962.DefaultHasher.HashChildren(prev[2*j], prev[2*j+1])
		}
		levels = append(levels, next)
		prev = next
	}
	return levels, nil
}

// verifyWriteInclusion checks that the leaf a portal served for a write is
// the leaf at its index, builds the inclusion proof from the copied tree and
// verifies it against the certified root.
func verifyWriteInclusion(levels [][][]byte, f foundWrite, size uint64, root []byte) error {
	if f.index >= size {
		return fmt.Errorf("not under the certified size %d", size)
	}
	leafHash := rfc6962.DefaultHasher.HashLeaf(f.leaf)
	if !bytes.Equal(leafHash, levels[0][f.index]) {
		return errors.New("the leaf Get serves is not the leaf Transfer serves at its index")
	}
	nodes, err := proof.Inclusion(f.index, size)
	if err != nil {
		return err
	}
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		if int(id.Level) >= len(levels) || id.Index >= uint64(len(levels[id.Level])) {
			return fmt.Errorf("proof node %d/%d is outside the copied tree", id.Level, id.Index)
		}
		hashes[i] = slices.Clone(levels[id.Level][id.Index])
	}
	p, err := nodes.Rehash(hashes, rfc6962.DefaultHasher.HashChildren)
	if err != nil {
		return err
	}
	if err := verifyInclusion(f.index, size, leafHash, p, root); err != nil {
		return fmt.Errorf("inclusion proof: %w", err)
	}
	return nil
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

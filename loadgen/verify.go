package loadgen

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/intermesh/intermesh/portal/client"
)

// VerifyReport is the outcome of Verify. Its JSON is 'meshctl load
// --verify --json' (docs/cli.md lists the fields).
type VerifyReport struct {
	// OK is true when every write was found everywhere and there was no
	// failure.
	OK bool `json:"ok"`
	// Writes counts the acknowledged writes of the acks file.
	Writes int `json:"writes"`
	// Served, Replicas and Included count the writes served by the portal
	// that acknowledged them, served by every other member's replica, and
	// proved included under a certified checkpoint.
	Served   int `json:"served_by_portal"`
	Replicas int `json:"served_by_every_replica"`
	Included int `json:"included_under_certificate"`
	// Members counts the federation's members.
	Members int `json:"members"`
	// Origins are what was checked at each member with writes.
	Origins []OriginReport `json:"origins"`
	// NotMembers counts the writes of the acks file acknowledged by
	// portals that are not members of the federation (the file was
	// written by a load against another federation: a load run appends
	// to it). They are not checked further, and they are one failure
	// naming those portals, not one each; the field is left out when 0.
	NotMembers int `json:"not_members,omitempty"`
	// Failures are the first MaxFailures problems; FailureCount
	// counts them all.
	Failures     []string `json:"failures"`
	FailureCount int      `json:"failure_count"`
}

// OriginReport is what was checked at one member's portal.
type OriginReport struct {
	Origin    string `json:"origin"`
	Portal    string `json:"portal"`
	Writes    int    `json:"writes"`
	Round     uint64 `json:"certified_round"`
	Size      uint64 `json:"certified_size"`
	Signers   int    `json:"certificate_signers"`
	LogCopied uint64 `json:"entries_copied"`
}

// MaxFailures is how many failures a VerifyReport lists.
const MaxFailures = 50

func (r *VerifyReport) fail(format string, args ...any) {
	r.FailureCount++
	if len(r.Failures) < MaxFailures {
		r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
	}
}

// WriteText writes the report for a person to read.
func (r *VerifyReport) WriteText(w io.Writer) {
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
		fmt.Fprintf(w, "  ... and %d more failures (--json lists the first %d)\n", r.FailureCount-len(r.Failures), MaxFailures)
	}
}

// Verify checks every write of cfg.Acks: served by the portal that
// acknowledged it (every version, with Get), served by every other member
// from its replica, and in the portal's log under a checkpoint that a
// master-hash certificate covers (verified with the federation's keys; the
// log is copied up to the certified size with Transfer, its RFC 6962 root
// checked and an inclusion proof of the write verified against it). It
// waits up to cfg.Wait for replication and for a certificate covering the
// latest writes. A write that fails is in the report, not an error; Verify
// fails when the configuration is invalid (ErrInvalidConfig) or the acks
// file cannot be read, and returns the context's error with the report if
// ctx ended.
func Verify(ctx context.Context, cfg VerifyConfig) (*VerifyReport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	keys, err := newFederationKeys(cfg.Federation)
	if err != nil {
		return nil, fmt.Errorf("%w: federation: %w", ErrInvalidConfig, err)
	}
	acks, err := ReadAcks(cfg.Acks)
	if err != nil {
		return nil, err
	}
	rep := &VerifyReport{Writes: len(acks), Members: len(cfg.Federation.Members)}
	byOrigin := map[string][]Write{}
	foreign := map[string]int{} // portal that is not a member → writes
	for _, w := range acks {
		origin := keys.originOf(w.Portal)
		if origin == "" {
			foreign[w.Portal]++
			rep.NotMembers++
			continue
		}
		byOrigin[origin] = append(byOrigin[origin], w)
	}
	if rep.NotMembers > 0 {
		rep.fail("%d of %d writes in %s were acknowledged by portals that are not members of federation %q (%s): "+
			"the file was written against another federation (a load run appends to it); "+
			"give the load a new acks file (meshctl load --acks NEW) or delete this one",
			rep.NotMembers, len(acks), cfg.Acks, keys.name, portalList(foreign))
	}
	newClient := func(u string) (*client.Client, error) {
		var copts []client.Option
		if cfg.Token != "" {
			copts = append(copts, client.WithToken(cfg.Token))
		}
		return client.New(u, copts...)
	}
	deadline := time.Now().Add(cfg.Wait)
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
		rep.fail("%s lists no acknowledged writes: nothing was checked", cfg.Acks)
	}
	rep.OK = rep.FailureCount == 0 && rep.Served == rep.Writes && rep.Replicas == rep.Writes && rep.Included == rep.Writes
	return rep, ctx.Err()
}

// portalList names the portals with their counts, most writes first, the
// first three only.
func portalList(n map[string]int) string {
	ps := make([]string, 0, len(n))
	for p := range n {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b string) int {
		if n[a] != n[b] {
			return n[b] - n[a]
		}
		return strings.Compare(a, b)
	})
	var parts []string
	for _, p := range ps[:min(3, len(ps))] {
		parts = append(parts, fmt.Sprintf("%s: %d", p, n[p]))
	}
	if len(ps) > 3 {
		parts = append(parts, fmt.Sprintf("and %d more portals", len(ps)-3))
	}
	return strings.Join(parts, ", ")
}

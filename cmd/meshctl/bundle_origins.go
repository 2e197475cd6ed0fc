package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/intermesh/intermesh/portal"
)

// Proof bundles of a lookup by identifier alone (docs/formats.md, "Proof
// bundles"): 'get --id X --verify' proves X in every member's map under
// one certificate (get_origins.go), so its bundle carries one section per
// member origin, each an "origin ORIGIN" line and that origin's answer
// (records, predecessors, history, map proofs), then the certificate
// once, then each section's checkpoint note in the sections' order and
// the node's own checkpoint last:
//
//	intermesh.org/get-proof@v1
//	query id MDEV-...
//	time 2026-12-07T21:03:04Z
//	origin testnet/node0
//	map profile MDEV-... AAADYA...
//	origin testnet/node1
//	record 12 AQAAAAAAAAAMGHf...
//	gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
//	map profile MDEV-... AAAEIA...
//	certificate 30 AQAAAAAAAAAeGHf...
//	EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
//
//	testnet/node0
//	...
//
//	testnet/node1
//	...
//
//	testnet/node0
//	31
//	...

// bundleSection is one member origin's answer in a bundle of sections.
type bundleSection struct {
	origin string
	bundleAnswer
}

// originVerdict is what verifying one section proved of its origin's log.
type originVerdict struct {
	Origin string
	Proof  getVerification
}

// originLine parses "origin ORIGIN", which starts a section: only in a
// bundle by identifier, after the time line or a section, before the
// certificate, and once per origin.
func (p *bundleParser) originLine(origin string) error {
	switch {
	case origin == "" || strings.Contains(origin, " "):
		return p.errorf("want 'origin ORIGIN'")
	case p.b.query.account != "":
		return p.errorf("origin sections are for a query by id, not by account")
	case p.stage < bundleStages["time"] || p.stage >= bundleStages["certificate"] ||
		(len(p.b.sections) == 0 && p.stage > bundleStages["time"]):
		return p.errorf("the origin line is out of order")
	}
	for _, s := range p.b.sections {
		if s.origin == origin {
			return p.errorf("repeated section of origin %s", origin)
		}
	}
	p.b.sections = append(p.b.sections, bundleSection{origin: origin})
	p.cur = &p.b.sections[len(p.b.sections)-1].bundleAnswer
	p.stage, p.seen["origin"] = bundleStages["origin"], true
	for k, stage := range bundleStages {
		if stage > p.stage && stage < bundleStages["certificate"] {
			delete(p.seen, k) // a section's own lines start again
		}
	}
	return nil
}

// newOriginsBundle bundles e, the answers about q of every member origin
// under one certificate, verified at at: a section per origin, in e's
// order.
func newOriginsBundle(q latestQuery, at time.Time, e *everyOrigin) (*proofBundle, error) {
	b, err := newBundle(q, at, e.proof)
	if err != nil {
		return nil, err
	}
	for _, o := range e.origins {
		a, err := answerOf(e.answers[o])
		if err != nil {
			return nil, fmt.Errorf("%s's answer: %w", o, err)
		}
		b.sections = append(b.sections, bundleSection{origin: o, bundleAnswer: a})
	}
	return b, nil
}

// verifySections proves a bundle of sections as of its time into out,
// as 'get --id X --verify' proves its answers (verifyEveryOrigin): every
// member origin of the federation file must have a section, and no other
// origin may; it returns the certificate the sections are under.
func (b *proofBundle) verifySections(keys *getVerifier, out *bundleVerdict) (certified, error) {
	origins := memberOrigins(keys)
	if len(origins) == 0 {
		return certified{}, errors.New("the federation file lists no member origins")
	}
	cp := b.certProof()
	cert, err := certifiedAt(keys, cp, origins[0])
	if err != nil {
		return cert, err
	}
	answers := make(map[string]*portal.GetResponse)
	for _, s := range b.sections {
		if !slices.Contains(origins, s.origin) {
			return cert, fmt.Errorf("the bundle has a section of %s, which is not a member origin of the federation file", s.origin)
		}
		answers[s.origin] = s.getResponse(cp)
	}
	why := make(map[string]string)
	for _, o := range origins {
		if answers[o] == nil {
			why[o] = "the bundle has no section of " + o
			continue
		}
		out.Items = append(out.Items, itemsOf(answers[o])...)
	}
	checks := verifyEveryOrigin(keys, cp, origins, b.query, answers, why, b.at)
	for i, o := range origins {
		out.Origins = append(out.Origins, originVerdict{Origin: o, Proof: checks[i]})
	}
	out.Proof = checks[len(checks)-1]
	return cert, nil
}

// fetchEveryOriginBundle is fetchEveryOrigin for 'get --id X --verify
// --proof-out out': it proves the answers of every member origin under
// one certificate at a whole second and, when all are proved, writes them
// as a bundle of sections (keepBundle).
func (g *getOptions) fetchEveryOriginBundle(cmd *cobra.Command, c *portalClient, keys *getVerifier, req *portal.GetRequest, what, out string) ([]getItem, []getVerification, error) {
	e, items, failed, err := askUnderOneCertificate(cmd.Context(), c, keys, req, what)
	if e == nil {
		return items, failed, err
	}
	q, now := g.query(), time.Now().UTC().Truncate(time.Second)
	checks := e.verify(keys, q, now)
	err = g.keepBundle(cmd, keys, checks, out, func() (*proofBundle, error) { return newOriginsBundle(q, now, e) })
	if err != nil {
		return nil, nil, err
	}
	return e.items(), checks, nil
}

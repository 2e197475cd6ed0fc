package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/intermesh/intermesh/portal"
)

// What 'meshctl get --id X --verify' proves (docs/formats.md, "Get
// proofs"): an identifier alone has no home member, and a profile
// published at one member is absent from every other member's map, so a
// member could answer "absent", or an old version, by choosing which log
// to answer from. The client therefore asks the one portal it talks to
// for X under every member origin of the federation file (GetRequest's
// Origin), proves each answer with verifyLatest against that origin's
// checkpoint in one certificate, and says "absent" only when every
// origin's map proves it.

// fetchEveryOrigin is fetchLatest for a lookup by identifier alone: it
// asks c for the identifier in every member's log under that origin's
// checkpoint in one certificate (askUnderOneCertificate).
func (g *getOptions) fetchEveryOrigin(ctx context.Context, c *portalClient, keys *getVerifier, req *portal.GetRequest, what string) ([]getItem, []getVerification, error) {
	e, items, failed, err := askUnderOneCertificate(ctx, c, keys, req, what)
	if e == nil {
		return items, failed, err
	}
	return e.items(), e.verify(keys, g.query(), time.Now()), nil
}

// everyOrigin is what a lookup by identifier alone got: an answer per
// member origin (or why there is none) under one certificate proof.
type everyOrigin struct {
	origins []string
	proof   *portal.CertificateProof
	answers map[string]*portal.GetResponse
	why     map[string]string
}

// askUnderOneCertificate asks c for req's identifier in every member's
// log under that origin's checkpoint in one certificate
// (underOneCertificate). Without a certificate it returns no answers but
// the first answer's items and a failed verification saying so.
func askUnderOneCertificate(ctx context.Context, c *portalClient, keys *getVerifier, req *portal.GetRequest, what string) (*everyOrigin, []getItem, []getVerification, error) {
	e := &everyOrigin{}
	var (
		items  []getItem
		failed []getVerification
		err    error
	)
	e.origins, e.proof, items, failed, err = underOneCertificate(ctx, c, keys, req, what, func(p *portal.CertificateProof, origins []string) bool {
		var late bool
		e.answers, e.why, late = askEveryOrigin(ctx, c, keys, req, p, origins)
		return late
	})
	if err != nil || failed != nil {
		return nil, items, failed, err
	}
	return e, nil, nil, nil
}

// items are the answers' items, origin by origin.
func (e *everyOrigin) items() []getItem {
	var items []getItem
	for _, o := range e.origins {
		if e.answers[o] != nil {
			items = append(items, itemsOf(e.answers[o])...)
		}
	}
	return items
}

// verify proves the answers of q at now (verifyEveryOrigin).
func (e *everyOrigin) verify(keys *getVerifier, q latestQuery, now time.Time) []getVerification {
	return verifyEveryOrigin(keys, e.proof, e.origins, q, e.answers, e.why, now)
}

// underOneCertificate takes a certificate as askCertified does (asking
// about the first member origin of the federation file) and runs ask with
// its proof and every member origin, again a round later (at most
// freshRounds times) while ask says some log's latest version is younger
// than the certificate or not verified by the portal yet. Without a
// certificate it returns the first answer's items and a failed
// verification saying so.
func underOneCertificate(ctx context.Context, c *portalClient, keys *getVerifier, req *portal.GetRequest, what string, ask func(*portal.CertificateProof, []string) (late bool)) ([]string, *portal.CertificateProof, []getItem, []getVerification, error) {
	origins := memberOrigins(keys)
	if len(origins) == 0 {
		return nil, nil, nil, []getVerification{{Failed: "the federation file lists no member origins"}}, nil
	}
	for attempt := 0; ; attempt++ {
		first := *req
		first.Origin = origins[0]
		resp, cert, err := askCertified(ctx, c, keys, &first, what)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		if cert == nil {
			return nil, nil, itemsOf(resp), []getVerification{{Failed: "the answer carries no certificate that verifies"}}, nil
		}
		if !ask(cert.proof, origins) || attempt >= freshRounds {
			return origins, cert.proof, nil, nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, nil, nil, ctx.Err()
		case <-time.After(keys.period):
		}
	}
}

// memberOrigins are the origins of the federation file's members, in its
// order.
func memberOrigins(keys *getVerifier) []string {
	var origins []string
	for _, m := range keys.fed.Members {
		origins = append(origins, m.Origin)
	}
	return origins
}

// askEveryOrigin asks c for req's identifier in the log of each origin,
// under that origin's checkpoint in the certificate proof (askOrigins).
func askEveryOrigin(ctx context.Context, c *portalClient, keys *getVerifier, req *portal.GetRequest, proof *portal.CertificateProof, origins []string) (map[string]*portal.GetResponse, map[string]string, bool) {
	return askOrigins(keys, proof, origins, func(o string, cert certified) (*portal.GetResponse, bool, error) {
		r := *req
		r.Origin, r.Round = o, cert.checkpoint.Round
		resp, err := getProved(ctx, c, &r, "getting "+req.Identifier+" from "+o+"'s log")
		if err != nil {
			return nil, false, err
		}
		return resp, newerThan(resp, cert.checkpoint.Size), nil
	})
}

// askOrigins runs ask for each origin under that origin's checkpoint in
// the certificate proof, and returns the answers by origin, why an origin
// has none, and whether to ask again a round later: some log's latest
// version is younger than its certified checkpoint (ask says so), or the
// portal has not verified that checkpoint yet (it answers NotFound).
func askOrigins[T any](keys *getVerifier, proof *portal.CertificateProof, origins []string, ask func(origin string, cert certified) (T, bool, error)) (map[string]T, map[string]string, bool) {
	answers := make(map[string]T)
	why := make(map[string]string)
	late := false
	for _, o := range origins {
		cert, err := certifiedAt(keys, proof, o)
		if err != nil {
			why[o] = err.Error()
			continue
		}
		a, newer, err := ask(o, cert)
		if err != nil {
			why[o] = err.Error()
			var pe *portal.Error
			late = late || (errors.As(err, &pe) && pe.Status == portal.NotFound) // its replica has not verified that round yet
			continue
		}
		answers[o] = a
		late = late || newer
	}
	return answers, why, late
}

// verifyEveryOrigin proves what answers, one per origin, say of q's
// identifier under the checkpoints of one certificate proof: each with
// verifyLatest against its origin's certified checkpoint. It returns one
// verification per origin and a last one that says what the whole proves:
// the logs that hold a version, or that the identifier is absent from
// every member's log. An origin without an answer, or whose answer does
// not verify, fails the whole.
func verifyEveryOrigin(keys *getVerifier, proof *portal.CertificateProof, origins []string, q latestQuery, answers map[string]*portal.GetResponse, why map[string]string, now time.Time) []getVerification {
	var checks []getVerification
	var failed, holding []string
	var cert certified
	for i, o := range origins {
		c, v, err := verifyOrigin(keys, proof, o, q, answers[o], why[o], now)
		if i == 0 {
			cert = c
		} else {
			v.Proved = v.Proved[min(len(c.proved), len(v.Proved)):] // the certificate is said once
		}
		switch {
		case err != nil:
			v.Failed = fmt.Sprintf("in %s's log: %v", o, err)
			failed = append(failed, o)
		case len(answers[o].DataItems) > 0:
			holding = append(holding, o)
		}
		checks = append(checks, v)
	}
	checks = append(checks, everyOriginSummary(keys, cert, q.id, origins, failed, holding))
	return checks
}

// verifyOrigin proves one origin's answer (nil: none, for the reason
// why) under that origin's checkpoint in the certificate proof.
func verifyOrigin(keys *getVerifier, proof *portal.CertificateProof, origin string, q latestQuery, resp *portal.GetResponse, why string, now time.Time) (certified, getVerification, error) {
	c, err := originAnswered(keys, proof, origin, q.id, resp != nil, why)
	if err != nil {
		return c, getVerification{}, err
	}
	v := verifyLatest(keys, c, q, resp, now)
	if v.Failed != "" {
		return c, v, errors.New(v.Failed)
	}
	return c, v, nil
}

// originAnswered returns origin's checkpoint in the certificate proof, or
// why origin's answer cannot be proved: the certificate has no checkpoint
// of it, or no answer came (why says what happened instead).
func originAnswered(keys *getVerifier, proof *portal.CertificateProof, origin, id string, answered bool, why string) (certified, error) {
	c, err := certifiedAt(keys, proof, origin)
	if err != nil || answered {
		return c, err
	}
	if why == "" {
		why = "the portal left it out"
	}
	return c, fmt.Errorf("no answer about %s: %s", id, why)
}

// everyOriginSummary says what the answers of every origin prove
// together, or which origins failed.
func everyOriginSummary(keys *getVerifier, c certified, id string, origins, failed, holding []string) getVerification {
	if len(failed) > 0 {
		return getVerification{Failed: fmt.Sprintf("%s is not proved in every member's log: the answer about %s's log is not proved (above)",
			id, strings.Join(failed, "'s, "))}
	}
	by := fmt.Sprintf("as of round %d, certified by %d of %d members", c.round, c.signers, keys.members)
	if len(holding) == 0 {
		return getVerification{Round: c.round, Proved: []string{fmt.Sprintf("%s is absent from every member's log (%s) %s", id, strings.Join(origins, ", "), by)}}
	}
	return getVerification{Round: c.round, Proved: []string{fmt.Sprintf("%s has versions in the log of %s (its latest in each is proved above) and is absent from the other %d members' logs, %s",
		id, strings.Join(holding, ", "), len(origins)-len(holding), by)}}
}

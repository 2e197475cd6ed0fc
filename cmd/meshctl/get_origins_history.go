package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/intermesh/intermesh/portal"
)

// What 'meshctl get --id X --all --verify' proves: as for the latest
// version (get_origins.go), an identifier alone has no home member, so
// the client asks the one portal it talks to for X's history under every
// member origin of the federation file, proves each origin's pages with
// verifyHistory against that origin's checkpoint in one certificate, and
// says where X has versions, and how many, only when every origin's
// history, or X's absence from it, is proved.

// fetchEveryOriginHistory is fetchHistory for a lookup by identifier
// alone: it asks c for every page of the identifier's history in every
// member's log under that origin's checkpoint in one certificate
// (underOneCertificate).
func (g *getOptions) fetchEveryOriginHistory(ctx context.Context, c *portalClient, keys *getVerifier, req *portal.GetRequest, what string) ([]getItem, []getVerification, error) {
	var (
		histories map[string][]*portal.GetResponse
		why       map[string]string
	)
	origins, proof, items, failed, err := underOneCertificate(ctx, c, keys, req, what, func(p *portal.CertificateProof, origins []string) bool {
		var late bool
		histories, why, late = askEveryOriginHistory(ctx, c, keys, req, p, origins)
		return late
	})
	if err != nil || failed != nil {
		return items, failed, err
	}
	for _, o := range origins {
		items = append(items, pagesItems(histories[o])...)
	}
	return items, verifyEveryOriginHistory(keys, proof, origins, g.query(), histories, why, time.Now()), nil
}

// askEveryOriginHistory asks c for every page of req's identifier's
// history in the log of each origin, under that origin's checkpoint in the
// certificate proof (askOrigins).
func askEveryOriginHistory(ctx context.Context, c *portalClient, keys *getVerifier, req *portal.GetRequest, proof *portal.CertificateProof, origins []string) (map[string][]*portal.GetResponse, map[string]string, bool) {
	return askOrigins(keys, proof, origins, func(o string, cert certified) ([]*portal.GetResponse, bool, error) {
		r := *req
		r.Origin, r.Round, r.Multiple = o, cert.checkpoint.Round, true
		pages, err := historyPages(ctx, c, &r, "getting the history of "+req.Identifier+" from "+o+"'s log")
		if err != nil {
			return nil, false, err
		}
		newer := false
		for _, p := range pages {
			newer = newer || newerThan(p, cert.checkpoint.Size)
		}
		return pages, newer, nil
	})
}

// verifyEveryOriginHistory proves what histories, every page of one
// Multiple answer per origin, say of q's identifier under the checkpoints
// of one certificate proof: each with verifyHistory against its origin's
// certified checkpoint. It returns one verification per origin and a last
// one that says what the whole proves: how many versions each log that
// holds the identifier has, or that it is absent from every member's log.
// An origin without an answer, or whose history does not verify, fails
// the whole.
func verifyEveryOriginHistory(keys *getVerifier, proof *portal.CertificateProof, origins []string, q latestQuery, histories map[string][]*portal.GetResponse, why map[string]string, now time.Time) []getVerification {
	var checks []getVerification
	var failed, holding []string
	var cert certified
	for i, o := range origins {
		c, v, n, err := verifyOriginHistory(keys, proof, o, q, histories[o], why[o], now)
		if i == 0 {
			cert = c
		} else {
			v.Proved = v.Proved[min(len(c.proved), len(v.Proved)):] // the certificate is said once
		}
		switch {
		case err != nil:
			v.Failed = fmt.Sprintf("in %s's log: %v", o, err)
			failed = append(failed, o)
		case n > 0:
			holding = append(holding, fmt.Sprintf("%s in %s's log", countVersions(n), o))
			v.Proved = append(v.Proved, fmt.Sprintf("%s's log holds %s of %s, all served above", o, countVersions(n), q.id))
		}
		checks = append(checks, v)
	}
	return append(checks, everyOriginHistorySummary(keys, cert, q.id, origins, failed, holding))
}

// verifyOriginHistory proves one origin's history (nil: none, for the
// reason why) under that origin's checkpoint in the certificate proof,
// and returns how many versions it holds.
func verifyOriginHistory(keys *getVerifier, proof *portal.CertificateProof, origin string, q latestQuery, pages []*portal.GetResponse, why string, now time.Time) (certified, getVerification, int, error) {
	c, err := originAnswered(keys, proof, origin, q.id, len(pages) > 0, why)
	if err != nil {
		return c, getVerification{}, 0, err
	}
	v := verifyHistory(keys, c, q, pages, now)
	if v.Failed != "" {
		return c, v, 0, errors.New(v.Failed)
	}
	n := 0
	for _, p := range pages {
		n += len(p.DataItems)
	}
	return c, v, n, nil
}

// everyOriginHistorySummary says what the histories of every origin
// prove together, or which origins failed; holding names each log that
// holds versions, with how many.
func everyOriginHistorySummary(keys *getVerifier, c certified, id string, origins, failed, holding []string) getVerification {
	if len(failed) > 0 || len(holding) == 0 {
		return everyOriginSummary(keys, c, id, origins, failed, nil)
	}
	return getVerification{Round: c.round, Proved: []string{fmt.Sprintf("%s has %s (each log's complete history is proved above) and is absent from the other %d members' logs, as of round %d, certified by %d of %d members",
		id, strings.Join(holding, ", "), len(origins)-len(holding), c.round, c.signers, keys.members)}}
}

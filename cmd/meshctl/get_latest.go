package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/intermesh/intermesh/audit"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/vmap"
)

// What 'meshctl get --verify' proves of "latest" and "absent"
// (docs/formats.md, "Get proofs"): the answer's lookup proofs verify under
// the map line of a checkpoint that a certificate covers byte for byte,
// the certificate is of a recent round by this machine's clock, the
// records the map values name are the ones served, and a profile version
// signed by an online key is signed by a key the version before lists
// (get_predecessors.go).

// freshRounds is how many rounds a certificate may be behind the round
// of this machine's clock for "latest" or "absent" to be proved.
const freshRounds = 2

// certified is a verified certificate and the checkpoint it covers of the
// log an answer is about.
type certified struct {
	round      uint64
	signers    int
	checkpoint audit.Checkpoint
	proved     []string                 // what verifying the certificate proved
	proof      *portal.CertificateProof // the certificate's proof, as the answer carried it
}

// certifiedOf verifies the certificate an answer carries and returns it
// with its checkpoint of the answer's log.
func certifiedOf(keys *getVerifier, resp *portal.GetResponse) (certified, error) {
	p := resp.Proof
	if p == nil || p.Checkpoint == "" {
		return certified{}, errors.New("the portal sent no proof (it has no checkpoint yet, or does not prove Get)")
	}
	cp, err := keys.keys.OpenCheckpoint(p.Checkpoint)
	if err != nil {
		return certified{}, err
	}
	return certifiedAt(keys, p.Certificate, cp.Origin)
}

// certifiedAt verifies the certificate proof p and returns it with its
// checkpoint of origin's log.
func certifiedAt(keys *getVerifier, p *portal.CertificateProof, origin string) (certified, error) {
	var v getVerification
	cert, rr, err := verifyCertificateProof(keys, p, &v)
	if err != nil {
		return certified{}, err
	}
	i := cert.Index(origin)
	if i < 0 {
		return certified{}, fmt.Errorf("the certificate of round %d covers no checkpoint of %s", rr, origin)
	}
	return certified{round: rr, signers: len(cert.Signers), checkpoint: cert.Checkpoints[i], proved: v.Proved, proof: p}, nil
}

// query is what g asks about, as a proved lookup.
func (g *getOptions) query() latestQuery {
	if g.account != "" {
		return latestQuery{account: portal.CanonicalAccount(g.account)}
	}
	return latestQuery{id: g.id}
}

// latestQuery is what a proved lookup is about: an identifier, or an
// account name in its canonical form.
type latestQuery struct {
	id, account string
}

// verifyLatest proves what resp, an answer under the checkpoint c
// certifies, says of q at time now: the latest version, or that there is
// none. It fails closed on anything it cannot prove.
func verifyLatest(keys *getVerifier, c certified, q latestQuery, resp *portal.GetResponse, now time.Time) getVerification {
	v := getVerification{Proved: append([]string(nil), c.proved...), Round: c.round}
	if err := proveLatest(keys, c, q, resp, now, &v); err != nil {
		v.Failed = err.Error()
	}
	return v
}

func proveLatest(keys *getVerifier, c certified, q latestQuery, resp *portal.GetResponse, now time.Time, v *getVerification) error {
	cp := c.checkpoint
	if err := checkHome(keys, q, cp.Origin); err != nil {
		return err
	}
	if resp.Proof == nil || resp.Proof.Checkpoint != cp.Note {
		return fmt.Errorf("the answer is not under %s's checkpoint of round %d that the certificate covers", cp.Origin, cp.Round)
	}
	if len(cp.Map) != len(vmap.Hash{}) {
		return fmt.Errorf("%s's certified checkpoint of round %d has no map line: nothing is proved of names", cp.Origin, cp.Round)
	}
	v.Proved = append(v.Proved, fmt.Sprintf("the answer is under %s's checkpoint at size %d (round %d): it is signed by %s's key and is the one the certificate covers, byte for byte; the map proofs end in its map line",
		cp.Origin, cp.Size, cp.Round, cp.Origin))
	if err := checkFresh(keys, c.round, now); err != nil {
		return err
	}
	for _, item := range resp.DataItems {
		if err := verifyGetItem(cp, item); err != nil {
			return err
		}
		v.Proved = append(v.Proved, fmt.Sprintf("entry %s (index %d) is in %s's log: its leaf matches the entry and the inclusion proof ends in that checkpoint's root",
			item.Identifier, *item.Index, cp.Origin))
	}
	what, err := q.prove(cp, resp)
	if err != nil {
		return err
	}
	v.Proved = append(v.Proved, fmt.Sprintf("%s as of round %d, certified by %d of %d members (quorum %d)",
		what, c.round, c.signers, keys.members, keys.quorum))
	return nil
}

// checkHome fails if q is about an account whose home member, by its
// domain in the federation file, is not origin: only the home member's
// log can say what the account is, or that there is none. A federation
// whose members list no domains has no homes.
func checkHome(keys *getVerifier, q latestQuery, origin string) error {
	if q.account == "" {
		return nil
	}
	home, ok := keys.fed.Home(q.account)
	if !ok || home.Origin == origin {
		return nil
	}
	return fmt.Errorf("the answer about %s comes from %s's log, but the account's home, by its domain in the federation file, is %s: ask %s",
		q.account, origin, home.Origin, home.Origin)
}

// checkFresh fails unless a certificate of round is recent by now: at
// most freshRounds rounds behind the round of this machine's clock, less
// the clock skew allowed.
func checkFresh(keys *getVerifier, round uint64, now time.Time) error {
	period := keys.period
	cur := uint64(now.Add(-keys.skew).Unix()) / uint64(period.Seconds())
	if round+freshRounds >= cur {
		return nil
	}
	at := time.Unix(int64((round+1)*uint64(period.Seconds())), 0).UTC()
	return fmt.Errorf("the newest certificate offered is of round %d (closed %s), more than %d rounds before this machine's round %d: what it says is not proved to be the latest (it held as of %s)",
		round, at.Format(time.RFC3339), freshRounds, cur, at.Format(time.RFC3339))
}

// prove checks the map proofs of q under cp and what the answer's items
// are, and says in words what is proved.
func (q latestQuery) prove(cp audit.Checkpoint, resp *portal.GetResponse) (string, error) {
	id := q.id
	if q.account != "" {
		bound, err := q.proveAccount(cp, resp)
		if err != nil || bound == "" {
			return fmt.Sprintf("%s has no open account in %s's log", q.account, cp.Origin), err
		}
		id = bound
	}
	pv, inProfile, err := lookup(cp, resp, vmap.Profile, id)
	if err != nil {
		return "", err
	}
	var ev vmap.Value
	inEscrow := false
	if q.account == "" {
		if ev, inEscrow, err = lookup(cp, resp, vmap.Escrow, id); err != nil {
			return "", err
		}
	}
	switch {
	case !inProfile && !inEscrow:
		if len(resp.DataItems) != 0 {
			return "", fmt.Errorf("the map proves %s absent from %s's log, yet the portal served entries of it", id, cp.Origin)
		}
		return fmt.Sprintf("%s is absent from %s's log", id, cp.Origin), nil
	case inProfile:
		return latestItem(cp, resp, vmap.Profile, id, pv)
	}
	return latestItem(cp, resp, vmap.Escrow, id, ev)
}

// proveAccount checks the account's map proof and its latest Account
// record, and returns the profile the open account is bound to ("" if
// there is no open account).
func (q latestQuery) proveAccount(cp audit.Checkpoint, resp *portal.GetResponse) (string, error) {
	av, present, err := lookup(cp, resp, vmap.Account, q.account)
	if err != nil || !present {
		return "", err
	}
	rec := resp.Proof.Account
	if rec == nil || rec.Index == nil || *rec.Index != av.LatestIndex {
		return "", fmt.Errorf("the portal did not send account %s's latest record (%d), which the map names", q.account, av.LatestIndex)
	}
	if err := verifyGetItem(cp, *rec); err != nil {
		return "", fmt.Errorf("account %s's record: %w", q.account, err)
	}
	l, err := audit.ParseLeaf(rec.Leaf)
	if err != nil || !bytes.Equal(rfc6962.DefaultHasher.HashLeaf(rec.Leaf), av.LatestLeafHash[:]) || l.Kind != "Account" || l.Account != q.account {
		return "", fmt.Errorf("account %s's latest record is not the Account record of %s the map names", q.account, q.account)
	}
	var m struct {
		PortalEntry struct {
			Status       string
			Entry, Proof portal.Entry
		}
	}
	if err := json.Unmarshal(l.Payload, &m); err != nil {
		return "", fmt.Errorf("account %s's record: %w", q.account, err)
	}
	if m.PortalEntry.Status != portal.AccountOpen || l.Identifier == "" {
		return "", nil // closed: no account, never an earlier binding
	}
	if _, err := portal.VerifyConsent(q.account, m.PortalEntry.Entry, m.PortalEntry.Proof); err != nil {
		return "", fmt.Errorf("account %s is bound to %s without that profile's consent: %w", q.account, l.Identifier, err)
	}
	return l.Identifier, nil
}

// lookup verifies the answer's proof of name in namespace ns under cp's
// map line.
func lookup(cp audit.Checkpoint, resp *portal.GetResponse, ns vmap.Namespace, name string) (vmap.Value, bool, error) {
	key, err := vmap.KeyOf(ns, name)
	if err != nil {
		return vmap.Value{}, false, err
	}
	for _, mp := range resp.Proof.Map {
		if mp.Namespace != string(ns) || mp.Name != name {
			continue
		}
		p, err := vmap.ParseProof(mp.Proof)
		if err != nil {
			return vmap.Value{}, false, fmt.Errorf("the map proof of %s %s: %w", ns, name, err)
		}
		v, ok, err := vmap.Verify(vmap.Hash(cp.Map), key, p)
		if err != nil {
			return vmap.Value{}, false, fmt.Errorf("the map proof of %s %s under %s's certified map line: %w", ns, name, cp.Origin, err)
		}
		return v, ok, nil
	}
	return vmap.Value{}, false, fmt.Errorf("the portal sent no map proof of %s %s", ns, name)
}

// latestItem checks that the answer's one item is the record the map
// value v of name names, and what it must be: a record of the namespace's
// kind about name, whose entry verifies and, for a profile, whose offline
// key's UDF is name and whose signer is its offline key or an online key
// of the version before (verifyProfileVersion).
func latestItem(cp audit.Checkpoint, resp *portal.GetResponse, ns vmap.Namespace, name string, v vmap.Value) (string, error) {
	if v.Count == 0 || v.LatestIndex >= cp.Size {
		return "", fmt.Errorf("the map value of %s %s names no record of the checkpoint", ns, name)
	}
	if len(resp.DataItems) != 1 || *resp.DataItems[0].Index != v.LatestIndex {
		return "", fmt.Errorf("the portal did not serve %s's latest record, %d, which the certified map names", name, v.LatestIndex)
	}
	item := resp.DataItems[0]
	if !bytes.Equal(rfc6962.DefaultHasher.HashLeaf(item.Leaf), v.LatestLeafHash[:]) {
		return "", fmt.Errorf("record %d is not the one the map names for %s", v.LatestIndex, name)
	}
	l, err := audit.ParseLeaf(item.Leaf)
	if err != nil {
		return "", err
	}
	kindOK := (ns == vmap.Profile && (l.Kind == "Profile" || l.Kind == "Account")) || (ns == vmap.Escrow && l.Kind == "Escrow")
	if !kindOK || l.Identifier != name {
		return "", fmt.Errorf("record %d is a %s record about %q, not a %s of %s", v.LatestIndex, l.Kind, l.Identifier, ns, name)
	}
	chain := ""
	if ns == vmap.Profile {
		e, words, err := verifyProfileVersion(cp, resp, name, v, item)
		if err != nil {
			return "", err
		}
		if e.Identifier.String() != name {
			return "", fmt.Errorf("record %d holds the profile of %s, not of %s", v.LatestIndex, e.Identifier, name)
		}
		if words != "" {
			chain = "; " + words
		}
	}
	return fmt.Sprintf("the latest version of %s is record %d of %s's log (version %d of %d)%s", name, v.LatestIndex, cp.Origin, v.Count, v.Count, chain), nil
}

// fetchLatest gets the latest version (or its absence) and proves it: it
// asks once, verifies the certificate the answer carries, and, unless the
// answer is already under the checkpoint that certificate covers, asks
// again under the certified round, so that the map line it checks is one
// a quorum signed. A NotFound that carries proofs is an answer like any
// other.
//
// An account is asked of its home member (by its domain in the federation
// file) when the file gives that member's portal URL; an identifier alone
// is proved in every member's log (fetchEveryOrigin, get_origins.go).
func (g *getOptions) fetchLatest(ctx context.Context, c *portalClient, keys *getVerifier, req *portal.GetRequest, what string) ([]getItem, []getVerification, error) {
	if g.account == "" {
		return g.fetchEveryOrigin(ctx, c, keys, req, what)
	}
	c, err := homeClient(keys, g.account, c)
	if err != nil {
		return nil, nil, err
	}
	q := g.query()
	for attempt := 0; ; attempt++ {
		r := *req
		resp, cert, err := askCertified(ctx, c, keys, &r, what)
		if err != nil {
			return nil, nil, err
		}
		if cert == nil {
			return itemsOf(resp), []getVerification{{Failed: "the answer carries no certificate that verifies"}}, nil
		}
		if newerThan(resp, cert.checkpoint.Size) && attempt < freshRounds {
			// The latest version is younger than the newest certificate:
			// wait a round for one that covers it.
			select {
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			case <-time.After(keys.period):
			}
			continue
		}
		return itemsOf(resp), []getVerification{verifyLatest(keys, *cert, q, resp, time.Now())}, nil
	}
}

// askCertified asks req, verifies the certificate of the answer (or a
// newer one from another member) and, unless the answer is under the
// checkpoint that certificate covers, asks again under its round. A nil
// certificate means none verified; the answer is returned to show.
func askCertified(ctx context.Context, c *portalClient, keys *getVerifier, req *portal.GetRequest, what string) (*portal.GetResponse, *certified, error) {
	resp, err := getProved(ctx, c, req, what)
	if err != nil {
		return nil, nil, err
	}
	cert, err := certifiedOf(keys, resp)
	if err != nil {
		return resp, nil, nil
	}
	if newer, ok := newerCertificate(ctx, keys, req, cert); ok {
		cert = newer
	}
	if resp.Proof.Checkpoint != cert.checkpoint.Note {
		req.Round = cert.checkpoint.Round
		if resp, err = getProved(ctx, c, req, what); err != nil {
			return nil, nil, err
		}
	}
	return resp, &cert, nil
}

// newerThan reports whether an answer serves a record at or past size.
func newerThan(resp *portal.GetResponse, size uint64) bool {
	for _, it := range resp.DataItems {
		if it.Index != nil && *it.Index >= size {
			return true
		}
	}
	return false
}

// getProved asks a Full Get; a NotFound answer that carries a proof is
// returned as an answer.
func getProved(ctx context.Context, c *portalClient, req *portal.GetRequest, what string) (*portal.GetResponse, error) {
	resp, err := c.Get(ctx, req)
	var pe *portal.Error
	if err != nil && !(errors.As(err, &pe) && pe.Status == portal.NotFound && resp != nil && resp.Proof != nil) {
		return nil, c.wrap(what, err)
	}
	return resp, nil
}

// itemsOf inspects an answer's items.
func itemsOf(resp *portal.GetResponse) []getItem {
	var items []getItem
	for _, d := range resp.DataItems {
		items = append(items, inspectItem(d))
	}
	return items
}

// askOthersFor bounds the time spent asking the other members for newer
// certificates.
const askOthersFor = 5 * time.Second

// newerCertificate asks the other members of the federation file (those
// with a portal URL) the same question, and returns the newest verified
// certificate among their answers that is newer than cert and covers a
// checkpoint of the same log, if any: the portal that answered may hold an
// older certificate than the federation has, and freshness is judged on
// the newest one the client can find. Members that do not answer, or
// whose certificate does not verify, are passed over.
func newerCertificate(ctx context.Context, keys *getVerifier, req *portal.GetRequest, cert certified) (certified, bool) {
	ctx, cancel := context.WithTimeout(ctx, askOthersFor)
	defer cancel()
	best, found := cert, false
	for _, m := range keys.fed.Members {
		if m.HTTP == "" || m.Origin == cert.checkpoint.Origin {
			continue
		}
		c, err := client.New(m.HTTP)
		if err != nil {
			continue
		}
		r := *req
		r.Round = 0
		resp, err := c.Get(ctx, &r)
		if resp == nil || resp.Proof == nil || (err != nil && resp.Status != portal.NotFound) {
			continue
		}
		other, err := certifiedOf(keys, &portal.GetResponse{Proof: &portal.GetProof{Checkpoint: cert.checkpoint.Note, Certificate: resp.Proof.Certificate}})
		if err == nil && other.round > best.round {
			best, found = other, true
		}
	}
	return best, found
}

// fetchHistory gets every version (Multiple, every page) and proves it is
// the complete history: like fetchLatest it takes the certificate of the
// first answer and asks every page under its round, then checks that the
// versions served are exactly the records the certified map value counts,
// in order (its count and history chain). An account's history is asked
// of its home member; an identifier's is proved in the one log the portal
// answers from, as 'meshctl monitor --id' reads it ('get --id --all
// --verify' proves it in every member's log: fetchEveryOriginHistory).
func (g *getOptions) fetchHistory(ctx context.Context, c *portalClient, keys *getVerifier, req *portal.GetRequest, what string) ([]getItem, []getVerification, error) {
	c, err := homeClient(keys, g.account, c)
	if err != nil {
		return nil, nil, err
	}
	resp, err := getProved(ctx, c, req, what)
	if err != nil {
		return nil, nil, err
	}
	cert, err := certifiedOf(keys, resp)
	if err != nil {
		return itemsOf(resp), []getVerification{{Failed: err.Error()}}, nil
	}
	req.Round = cert.checkpoint.Round
	pages, err := historyPages(ctx, c, req, what)
	if err != nil {
		return nil, nil, err
	}
	return pagesItems(pages), []getVerification{verifyHistory(keys, cert, g.query(), pages, time.Now())}, nil
}

// historyPages asks req, a Multiple Get, for every page (at most
// maxHistoryPages and one more, which verifyHistory refuses).
func historyPages(ctx context.Context, c *portalClient, req *portal.GetRequest, what string) ([]*portal.GetResponse, error) {
	var pages []*portal.GetResponse
	for {
		resp, err := getProved(ctx, c, req, what)
		if err != nil {
			return nil, err
		}
		pages = append(pages, resp)
		if resp.PageKey == "" || len(pages) > maxHistoryPages {
			return pages, nil
		}
		req.SearchConstraints = &portal.SearchConstraints{PageKey: resp.PageKey}
	}
}

// pagesItems inspects the items of every page, in order.
func pagesItems(pages []*portal.GetResponse) []getItem {
	var items []getItem
	for _, p := range pages {
		items = append(items, itemsOf(p)...)
	}
	return items
}

// maxHistoryPages bounds the pages of one history.
const maxHistoryPages = 1000

// verifyHistory proves that pages, every page of a Multiple answer under
// the checkpoint c certifies, hold every record that set q's name, in log
// order: their count and history chain are the certified map value's.
func verifyHistory(keys *getVerifier, c certified, q latestQuery, pages []*portal.GetResponse, now time.Time) getVerification {
	last := *pages[len(pages)-1]
	var all []portal.DataItem
	for _, p := range pages {
		if p.Proof == nil || p.Proof.Checkpoint != c.checkpoint.Note {
			return getVerification{Failed: fmt.Sprintf("a page is not under %s's certified checkpoint of round %d", c.checkpoint.Origin, c.checkpoint.Round)}
		}
		all = append(all, p.DataItems...)
	}
	if last.PageKey != "" {
		return getVerification{Failed: fmt.Sprintf("the history has more than %d pages", maxHistoryPages)}
	}
	latest := last
	if n := len(all); n > 0 {
		latest.DataItems = all[n-1:]
		latest.Proof = withHistoryPredecessors(last.Proof, all)
	}
	v := verifyLatest(keys, c, q, &latest, now)
	if v.Failed != "" {
		return v
	}
	if err := provedChain(c.checkpoint, q, &last, all); err != nil {
		v.Failed = err.Error()
		return v
	}
	if len(all) > 0 { // else verifyLatest proved the name absent
		v.Proved = append(v.Proved, fmt.Sprintf("the %d versions served are every record that set the name, in log order: their history chain is the certified map value's", len(all)))
	}
	return v
}

// provedChain checks that items are the records the map value of q's
// profile or escrow name counts: each is in the checkpoint, and the
// history chain over them is the value's.
func provedChain(cp audit.Checkpoint, q latestQuery, last *portal.GetResponse, items []portal.DataItem) error {
	if len(items) == 0 {
		return nil // absent: proved by verifyLatest
	}
	name := items[len(items)-1].Identifier
	ns := vmap.Profile
	if l, err := audit.ParseLeaf(items[len(items)-1].Leaf); err == nil && l.Kind == "Escrow" {
		ns = vmap.Escrow
	}
	v, _, err := lookup(cp, last, ns, name)
	if err != nil {
		return err
	}
	var h vmap.Hash
	for _, it := range items {
		if err := verifyGetItem(cp, it); err != nil {
			return err
		}
		h = vmap.NextHistory(h, *it.Index, vmap.Hash(rfc6962.DefaultHasher.HashLeaf(it.Leaf)))
	}
	if uint64(len(items)) != v.Count || h != v.History {
		return fmt.Errorf("the %d versions served are not the %d records that set %s in %s's log (their history chain differs from the certified one)",
			len(items), v.Count, name, cp.Origin)
	}
	return nil
}

// homeClient returns a client of account's home member (by its domain in
// the federation file) when the file gives its portal URL and c is not
// that portal already; else c.
func homeClient(keys *getVerifier, account string, c *portalClient) (*portalClient, error) {
	home, ok := keys.fed.Home(account)
	if !ok || home.HTTP == "" || strings.TrimSuffix(home.HTTP, "/") == strings.TrimSuffix(c.url, "/") {
		return c, nil
	}
	hc, err := client.New(home.HTTP)
	if err != nil {
		return nil, fmt.Errorf("the home of %s, %s, at %s: %w", account, home.Origin, home.HTTP, err)
	}
	return &portalClient{Client: hc, url: home.HTTP}, nil
}

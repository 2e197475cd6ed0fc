package portal

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal/mesh"
)

// publishTypes are the entries Publish accepts.
var publishTypes = []string{mesh.TypeProfileMesh, mesh.TypeProfileDevice, mesh.TypeProfileAccount,
	mesh.TypeProfileService, mesh.TypeProfileHost, mesh.TypeOfflineEscrowEntry, mesh.TypeCatalogedPublication}

// publish answers Publish: a signed profile, an OfflineEscrowEntry or a
// CatalogedPublication (an encrypted entry, stored like an escrow entry), for
// an open account of this portal (PublishRequest.AccountID). The entry is
// verified completely first; the indexer then decides, atomically with the
// append, whether it may be registered: the account's own profile (or the
// ProfileMesh its ProfileAccount names) by its signature chain, any other
// entry only with an AccountProof; a new profile signed by its offline key;
// an update by the offline key or an online key of the registered version,
// and newer than it; an escrow entry never replaced. A new entry answers
// SuccessCreated, an update SuccessUpdated.
func (s *Server) publish(ctx context.Context, req *PublishRequest) (*PublishResponse, error) {
	const field = "PublishRequest.Entry"
	e, prev, err := s.verifyAgainstRegistered(field, req.Entry, publishTypes...)
	if err != nil {
		return nil, err
	}
	if req.AccountID == "" {
		return nil, Errorf(ClientUnauthorized, "PublishRequest.AccountID is missing: publishing needs an account at this portal, bound to the profile (CreateAccount first)")
	}
	account, err := s.account("PublishRequest.AccountID", req.AccountID)
	if err != nil {
		return nil, err
	}
	var origins []string
	if s.replicas != nil && e.Profile() != nil {
		if origins, err = s.replicas.Replicas(); err != nil {
			return nil, err
		}
	}
	id := e.Identifier.String()
	reads, err := s.state.readForPublish(account, id, origins)
	if err != nil {
		return nil, err
	}
	acct := reads.acct
	if err := openAccount(req.AccountID, acct, reads.acctFound); err != nil {
		return nil, err
	}
	if err := s.checkUpdated(field, e); err != nil {
		return nil, err
	}
	if err := s.checkReplicatedIn(field, e, origins, reads.replicaUpdated, reads.replicaFound); err != nil {
		return nil, err
	}
	pe := portalEntry(TxPublish, e, req.Entry, prev)
	if id != acct.ProfileUDF && id != acct.MeshProfile {
		signer, err := s.verifyAccountProof("PublishRequest.Proof", req.Proof, account, acct, TxPublish, e.Envelope)
		if err != nil {
			return nil, err
		}
		pe.Proof, pe.ProofSigner = req.Proof, signer
	}
	kind := KindProfile
	if e.Type == mesh.TypeOfflineEscrowEntry || e.Type == mesh.TypeCatalogedPublication {
		kind = KindEscrow // stored opaque, never replaced
	}
	update := reads.objFound
	rec, err := s.append(ctx, kind, id, account, pe)
	if err != nil {
		return nil, err
	}
	status := SuccessCreated
	if update {
		status = SuccessUpdated
	}
	return &PublishResponse{MeshResponse: MeshResponse{Status: status}, Written: writtenOf(rec)}, nil
}

// checkUpdated refuses a profile whose signed Updated is further in the
// future than the portal's clock allows: such a version would outrank
// every later one.
func (s *Server) checkUpdated(field string, e *mesh.Entry) error {
	p := e.Profile()
	if p == nil || p.Base().Updated == nil {
		return nil
	}
	if u := *p.Base().Updated; u.After(s.now().Add(maxClockSkew)) {
		return Errorf(ClientBadRequest, "%s: Updated %s is in the future (the portal's time is %s)", field,
			u.UTC().Format(time.RFC3339), s.now().UTC().Format(time.RFC3339))
	}
	return nil
}

// maxClockSkew is how far in the future a profile's Updated may be.
const maxClockSkew = 5 * time.Minute

// get answers Get by Identifier (a profile or escrow entry) or by Account
// (the account's profile). Without Multiple it returns the latest version
// inside the time window; with Multiple every version, oldest first, paged.
// Either examines at most MaxPageExamined versions per request, and
// answers with a PageKey when it stopped there.
// Full adds the log metadata and the leaf bytes, with which a client checks
// the entry against a checkpoint. An identifier this portal never
// registered is looked up in the replicated state of its peers (see
// versionsOf); such entries are flagged Replicated, with their Origin.
func (s *Server) get(ctx context.Context, req *GetRequest) (*GetResponse, error) {
	const field = "GetRequest"
	b, err := s.pageBounds(field, req.SearchConstraints)
	if err != nil {
		return nil, err
	}
	if len(req.KeyValues) > 0 {
		return nil, Errorf(ClientBadRequest, "GetRequest.KeyValues are not supported: look up by Identifier or Account")
	}
	if req.Origin != "" && req.Identifier == "" {
		return nil, Errorf(ClientBadRequest, "GetRequest.Origin is for a lookup by Identifier, not by Account (an account is proved at its home member)")
	}
	var c cursor
	var src versions
	if sc := req.SearchConstraints; sc != nil && sc.PageKey != "" {
		if c, err = s.decodeCursor(field+".SearchConstraints", TxGet, sc.PageKey); err != nil {
			return nil, err
		}
		if src, err = s.versionsFrom(c.Origin); err != nil {
			return nil, err
		}
	} else {
		id, err := s.resolveGet(req)
		if err != nil {
			return s.notFound(ctx, req, "", "", err)
		}
		c = cursor{Tx: TxGet, Name: id}
		c.NotBefore, c.Before = timeWindow(req.SearchConstraints)
		if src, err = s.versionsAsked(req, id); err != nil {
			return s.notFound(ctx, req, src.origin, id, err) // absent from the log asked: proved absent from it
		}
		c.Origin = src.origin
	}
	payloadSize := func(r *log.Record) int { return len(r.Payload) }
	var recs []log.Record
	var next string
	if req.Multiple && !c.Latest {
		recs, next, err = s.collect(src.source, c, b, payloadSize)
	} else {
		recs, next, err = s.latest(src, c)
	}
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 && next == "" {
		return s.notFound(ctx, req, src.origin, c.Name, Errorf(NotFound, "no version of %s was published in the requested time window", c.Name))
	}
	resp := &GetResponse{PageKey: next}
	for i := range recs {
		item := dataItem(&recs[i], req.Full, true)
		if src.origin != "" {
			item.Replicated, item.Origin = true, recs[i].Origin
		}
		resp.DataItems = append(resp.DataItems, item)
	}
	if req.Full && s.deps.Proofs != nil {
		var chain *predecessorChain
		if !req.Multiple && len(recs) == 1 {
			if chain, err = predecessorsOf(src.source, &recs[0]); err != nil {
				return nil, err
			}
		}
		if err := s.proveEntriesWith(ctx, ProofRequest{Origin: src.origin, Round: req.Round, Names: s.getNames(req, c.Name)}, req, resp, chain); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// versionsAsked returns where Get finds id: versionsOf's choice, or, for
// a GetRequest that names an Origin, that log alone (the node's own, or
// its replica of the origin). An id with no version there is a NotFound
// error returned with the log's versions, so that its absence is proved
// from that log's map; an Origin the node holds no replica of is a
// ClientBadRequest.
func (s *Server) versionsAsked(req *GetRequest, id string) (versions, error) {
	if req.Origin == "" {
		return s.versionsOf(id)
	}
	src := s.localVersions()
	if req.Origin != s.origin {
		if s.replicas == nil || !s.replicas.HasReplica(req.Origin) {
			return versions{}, Errorf(ClientBadRequest, "GetRequest.Origin: %q is neither this node's origin (%q) nor an origin it holds a replica of", req.Origin, s.origin)
		}
		r, err := s.replicas.Replica(req.Origin)
		if err != nil {
			return versions{}, fmt.Errorf("portal: opening the replica of %q: %w", req.Origin, err)
		}
		src = s.replicaVersions(req.Origin, r)
	}
	_, found, err := src.latest(id)
	if err != nil {
		return versions{}, err
	}
	if !found {
		return src, Errorf(NotFound, "no entry with identifier %s in the log of %s", id, req.Origin)
	}
	return src, nil
}

// proveEntries adds the proofs of a Full Get answer's entries (pr without
// its Indexes, which are the answer's).
//
// For a Get by account of the node's own log, the proof also carries the
// account's latest Account record (GetProof.Account), which req names.
func (s *Server) proveEntries(ctx context.Context, pr ProofRequest, req *GetRequest, resp *GetResponse) error {
	return s.proveEntriesWith(ctx, pr, req, resp, nil)
}

// proveEntriesWith is proveEntries that also proves chain, the
// predecessors of an online-signed latest version (GetProof.Predecessors).
func (s *Server) proveEntriesWith(ctx context.Context, pr ProofRequest, req *GetRequest, resp *GetResponse, chain *predecessorChain) error {
	pr.Indexes = make([]uint64, len(resp.DataItems))
	for i, item := range resp.DataItems {
		pr.Indexes[i] = *item.Index
	}
	items := len(pr.Indexes)
	if chain != nil {
		for _, rec := range chain.records {
			pr.Indexes = append(pr.Indexes, rec.Seq)
		}
	}
	acctRec, hasAcct, err := s.accountRecord(pr.Origin, req)
	if err != nil {
		return err
	}
	if hasAcct {
		pr.Indexes = append(pr.Indexes, acctRec.Seq)
	}
	proof, inclusions, err := s.deps.Proofs.ProveEntries(ctx, pr)
	if err != nil || proof == nil {
		return err
	}
	resp.Proof = proof
	for i := range resp.DataItems {
		if i < len(inclusions) {
			resp.DataItems[i].Inclusion = inclusions[i]
		}
	}
	if hasAcct && len(inclusions) == len(pr.Indexes) {
		item := dataItem(&acctRec, true, true)
		item.Inclusion = inclusions[len(inclusions)-1]
		proof.Account = &item
	}
	if chain != nil && len(inclusions) >= items+len(chain.records) {
		for i := range chain.records {
			item := dataItem(&chain.records[i], true, true)
			item.Inclusion = inclusions[items+i]
			if pr.Origin != "" {
				item.Replicated, item.Origin = true, chain.records[i].Origin
			}
			proof.Predecessors = append(proof.Predecessors, item)
		}
		proof.HistoryBefore = chain.before[:]
	}
	return nil
}

// accountRecord returns, for a Get by account of the node's own log
// (origin ""), the account's latest Account record, if it has one.
func (s *Server) accountRecord(origin string, req *GetRequest) (log.Record, bool, error) {
	if origin != "" || req.Identifier != "" || req.Account == "" {
		return log.Record{}, false, nil
	}
	account, err := s.account("GetRequest.Account", req.Account)
	if err != nil {
		return log.Record{}, false, nil
	}
	acct, found, err := s.state.account(account)
	if err != nil || !found {
		return log.Record{}, false, err
	}
	rec, err := s.log.Get(acct.Seq)
	if err != nil {
		return log.Record{}, false, fmt.Errorf("portal: account record %d: %w", acct.Seq, err)
	}
	return rec, true, nil
}

// resolveGet returns the identifier a GetRequest asks for.
func (s *Server) resolveGet(req *GetRequest) (string, error) {
	switch {
	case req.Identifier != "":
		id, err := parseUDF("GetRequest.Identifier", req.Identifier)
		return id.String(), err
	case req.Account != "":
		account, err := s.account("GetRequest.Account", req.Account)
		if err != nil {
			return "", err
		}
		acct, found, err := s.state.account(account)
		if err != nil {
			return "", err
		}
		if !found || acct.Status != AccountOpen {
			return "", &Error{Status: NotFound, Err: ErrAccountNotFound, Description: "account " + jsonQuote(req.Account) + " does not exist"}
		}
		return acct.ProfileUDF, nil
	}
	return "", Errorf(ClientBadRequest, "GetRequest needs an Identifier or an Account")
}

// latest returns the latest version of c.Name in src inside c's time
// window. When the latest version is outside the window it searches the
// history, at most MaxPageExamined versions per request: if that does not
// reach the end, it returns no record and the page key that continues the
// search.
func (s *Server) latest(src versions, c cursor) ([]log.Record, string, error) {
	if !c.Latest {
		seq, found, err := src.latest(c.Name)
		if err != nil || !found {
			return nil, "", err
		}
		rec, err := src.get(seq)
		if err != nil {
			return nil, "", err
		}
		if inWindow(rec.Time, c.NotBefore, c.Before) {
			return []log.Record{rec}, "", nil
		}
		c.Latest, c.Next = true, 0
	}
	for budget := MaxPageExamined; ; {
		recs, next, examined, err := s.walk(src.source, c, bounds{entries: 256, bytes: math.MaxInt}, budget, func(*log.Record) int { return 0 })
		if err != nil {
			return nil, "", err
		}
		if len(recs) > 0 {
			c.Found = recs[len(recs)-1].Seq + 1
		}
		if budget -= examined; next == nil || budget == 0 {
			return s.latestFound(src, c, next)
		}
		c.Next = next.Next
	}
}

// latestFound ends a search of latest: the version found, or (next not
// nil) the page key that continues the search.
func (s *Server) latestFound(src versions, c cursor, next *cursor) ([]log.Record, string, error) {
	if next != nil {
		next.Found = c.Found
		return nil, s.encodeCursor(*next), nil
	}
	if c.Found == 0 {
		return nil, "", nil
	}
	rec, err := src.get(c.Found - 1)
	if err != nil {
		return nil, "", err
	}
	return []log.Record{rec}, "", nil
}

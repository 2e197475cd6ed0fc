package portal

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/intermesh/intermesh/log"
)

// status answers Status: when the log was last written, when checkpoints
// were and will be made, the latest checkpoint, and (once the InterMesh
// provides them through Deps.Peers) the proof chains of the federation.
func (s *Server) status(ctx context.Context) (*StatusResponse, error) {
	resp := &StatusResponse{}
	if t := s.log.LastTime(); !t.IsZero() {
		resp.LastWriteTime = &t
	}
	if sch := s.deps.Schedule; sch != nil {
		resp.LastCheckpointTime = timePtr(sch.LastCheckpointTime())
		resp.NextCheckpointTime = timePtr(sch.NextCheckpointTime())
	}
	if cp := s.deps.Checkpoints; cp != nil {
		note, err := latestCheckpoint(cp)
		if err != nil {
			return nil, err
		}
		resp.CheckpointValue = string(note)
	}
	if p := s.deps.Peers; p != nil {
		peers, err := p.PeerProofs(ctx, []byte(resp.CheckpointValue))
		if err != nil {
			return nil, err
		}
		resp.Peers = peers
		if es, ok := p.(EvidenceSource); ok {
			if resp.Evidence, err = es.Evidence(ctx); err != nil {
				return nil, err
			}
		}
	}
	return resp, nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// transfer answers Transfer: a page of the log, each record with its index,
// its leaf bytes and its decoded fields. With an Origin other than the
// node's own, the page comes from the node's replica of that origin's log
// (NotFound if it holds none), its items flagged Replicated. It needs the
// Transfer bearer token, an Authorizer's consent, or a public configuration.
func (s *Server) transfer(ctx context.Context, r *http.Request, req *TransferRequest) (*TransferResponse, error) {
	authorized := s.cfg.TransferPublic || bearer(r, s.cfg.TransferToken) ||
		(s.deps.Authorizer != nil && s.deps.Authorizer.AuthorizeTransfer(r))
	if !authorized {
		return nil, Errorf(ClientUnauthorized, "Transfer needs authorization: send the operator's transfer token as \"Authorization: Bearer <token>\"")
	}
	b, err := s.pageBounds("TransferRequest", req.SearchConstraints)
	if err != nil {
		return nil, err
	}
	c := log.Constraints{MaxEntries: b.entries, MaxBytes: b.bytes, From: req.From}
	if sc := req.SearchConstraints; sc != nil {
		c.NotBefore, c.Before = timeWindow(sc)
		c.PageKey = sc.PageKey
	}
	rangeOf, replicated := s.log.Range, false
	if req.Origin != "" && req.Origin != s.origin {
		r, err := s.replicaLog("TransferRequest.Origin", req.Origin)
		if err != nil {
			return nil, err
		}
		rangeOf, replicated = r.Range, true
	}
	page, err := rangeOf(ctx, c)
	if errors.Is(err, log.ErrInvalidPageKey) {
		return nil, Errorf(ClientBadRequest, "TransferRequest.SearchConstraints.PageKey: %w", err)
	}
	if err != nil {
		return nil, err
	}
	resp := &TransferResponse{PageKey: page.PageKey}
	for i := range page.Records {
		item := dataItem(&page.Records[i], true, false)
		item.Replicated = replicated
		resp.DataItems = append(resp.DataItems, item)
	}
	return resp, nil
}

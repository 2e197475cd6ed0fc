package portal

import (
	"context"
	"errors"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/vmap"
)

// getNames are the names a Get answer about id proves in the map: by
// Account, the account (canonical) and, when it is open, the profile id
// it is bound to; by Identifier, id as a profile and as an escrow
// identifier.
func (s *Server) getNames(req *GetRequest, id string) []vmap.Name {
	if req.Identifier == "" && req.Account != "" {
		var names []vmap.Name
		if account, err := s.account("GetRequest.Account", req.Account); err == nil {
			names = append(names, vmap.Name{Namespace: vmap.Account, Name: account})
		}
		if id != "" {
			names = append(names, vmap.Name{Namespace: vmap.Profile, Name: id})
		}
		return names
	}
	if id == "" {
		u, err := parseUDF("GetRequest.Identifier", req.Identifier)
		if err != nil {
			return nil
		}
		id = u.String()
	}
	return []vmap.Name{{Namespace: vmap.Profile, Name: id}, {Namespace: vmap.Escrow, Name: id}}
}

// notFound answers a Get that found nothing with err: for a Full Get whose
// err is a NotFound, a GetResponse of that status with the lookup proofs of
// the names asked for in origin's log ("" for the node's own), which show
// what the log holds of them (absence, or a closed account); otherwise
// err.
func (s *Server) notFound(ctx context.Context, req *GetRequest, origin, id string, err error) (*GetResponse, error) {
	var pe *Error
	if !req.Full || s.deps.Proofs == nil || !errors.As(err, &pe) || pe.Status != NotFound {
		return nil, err
	}
	resp := &GetResponse{MeshResponse: MeshResponse{Status: NotFound, StatusDescription: pe.Description}}
	pr := ProofRequest{Origin: origin, Round: req.Round, Names: s.getNames(req, id)}
	if perr := s.proveEntries(ctx, pr, req, resp); perr != nil {
		return nil, perr
	}
	return resp, nil
}

// writtenOf names the record a write appended.
func writtenOf(rec log.Record) *WrittenRecord {
	return &WrittenRecord{Origin: rec.Origin, Index: rec.Seq}
}

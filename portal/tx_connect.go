package portal

import (
	"context"
	"fmt"
	"slices"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal/mesh"
)

// The device connection flow (seed 003 §8.3): the new device posts a
// ConnectionRequest signed by its own key (ConnectStart); an administration
// device of the account lists pending requests (ConnectPending) and posts a
// ConnectionResult signed by an administration key of the account's profile
// (ConnectComplete); the device polls for it (ConnectStatus). The request's
// and the result's ParentUDF must be the profile the account is bound to.

// connectAccount validates an AccountID and returns the canonical name and
// the open account's state.
func (s *Server) connectAccount(field, name string) (string, accountState, error) {
	account, err := s.account(field, name)
	if err != nil {
		return "", accountState{}, err
	}
	acct, found, err := s.state.account(account)
	if err != nil {
		return "", acct, err
	}
	if err := openAccount(name, acct, found); err != nil {
		return "", acct, err
	}
	return account, acct, nil
}

// openAccount says why an account read as acct (found or not) cannot be
// used, or nil if it is open.
func openAccount(name string, acct accountState, found bool) error {
	if !found || acct.Status != AccountOpen {
		return &Error{Status: NotFound, Err: ErrAccountNotFound, Description: "account " + jsonQuote(name) + " does not exist"}
	}
	return nil
}

func checkParent(field string, e *mesh.Entry, acct accountState) error {
	if e.Subject.String() != acct.ProfileUDF {
		return Errorf(ClientBadRequest, "%s asks to connect to %s, but account %q is bound to profile %s", field, e.Subject, acct.AccountID, acct.ProfileUDF)
	}
	return nil
}

// connectStart answers ConnectStart.
func (s *Server) connectStart(ctx context.Context, req *ConnectStartRequest) (*ConnectStartResponse, error) {
	account, acct, err := s.connectAccount("ConnectStartRequest.AccountID", req.AccountID)
	if err != nil {
		return nil, err
	}
	const field = "ConnectStartRequest.SignedRequest"
	e, err := s.verifyEntry(field, req.SignedRequest, nil, mesh.TypeConnectionRequest)
	if err != nil {
		return nil, err
	}
	if err := checkParent(field, e, acct); err != nil {
		return nil, err
	}
	pe := portalEntry(TxConnectStart, e, req.SignedRequest, nil)
	pe.AccountID = req.AccountID
	if _, err := s.append(ctx, KindConnectionRequest, e.Identifier.String(), account, pe); err != nil {
		return nil, err
	}
	return &ConnectStartResponse{MeshResponse{Status: SuccessCreated}}, nil
}

// connectPending answers ConnectPending: the account's pending requests,
// oldest first, paged. They are the account's private state: every page
// needs an AccountProof (for ConnectPending) signed by a key of the
// account's profile, and a page key only continues the account it was
// issued for.
func (s *Server) connectPending(req *ConnectPendingRequest) (*ConnectPendingResponse, error) {
	c, b, _, err := s.privatePage("ConnectPendingRequest", TxConnectPending, req.AccountID, req.Proof, req.SearchConstraints, "requests")
	if err != nil {
		return nil, err
	}
	recs, next, err := s.collect(s.localSource(tagQueue), c, b, func(r *log.Record) int { return len(r.Payload) })
	if err != nil {
		return nil, err
	}
	resp := &ConnectPendingResponse{PageKey: next}
	for i := range recs {
		pe, err := UnmarshalPortalEntry(recs[i].Payload)
		if err != nil {
			return nil, err
		}
		resp.Pending = append(resp.Pending, pe.Entry)
	}
	return resp, nil
}

// privatePage checks a request for a page of an account's private state
// (tx is ConnectPending or ListMessages; what names what it lists, for
// errors): the page bounds, the account, its AccountProof for tx, and the
// page key, which continues only the account it was issued for. It returns
// the cursor to read from, the bounds and the account's state.
func (s *Server) privatePage(field, tx, accountID string, proof Entry, sc *SearchConstraints, what string) (cursor, bounds, accountState, error) {
	b, err := s.pageBounds(field, sc)
	if err != nil {
		return cursor{}, bounds{}, accountState{}, err
	}
	account, acct, err := s.connectAccount(field+".AccountID", accountID)
	if err != nil {
		return cursor{}, bounds{}, accountState{}, err
	}
	if _, err := s.verifyAccountProof(field+".Proof", proof, account, acct, tx, nil); err != nil {
		return cursor{}, bounds{}, accountState{}, err
	}
	c := cursor{Tx: tx, Name: account}
	c.NotBefore, c.Before = timeWindow(sc)
	if sc != nil && sc.PageKey != "" {
		if c, err = s.decodeCursor(field+".SearchConstraints", tx, sc.PageKey); err != nil {
			return cursor{}, bounds{}, accountState{}, err
		}
		if c.Name != account {
			return cursor{}, bounds{}, accountState{}, Errorf(ClientBadRequest, "%s.SearchConstraints.PageKey continues another account's %s, not %q", field, what, accountID)
		}
	}
	return c, b, acct, nil
}

// connectComplete answers ConnectComplete.
func (s *Server) connectComplete(ctx context.Context, req *ConnectCompleteRequest) (*ConnectCompleteResponse, error) {
	account, acct, err := s.connectAccount("ConnectCompleteRequest.AccountID", req.AccountID)
	if err != nil {
		return nil, err
	}
	const field = "ConnectCompleteRequest.Result"
	e, err := s.verifyEntry(field, req.Result, s.registered, mesh.TypeConnectionResult)
	if err != nil {
		return nil, err
	}
	if err := checkParent(field, e, acct); err != nil {
		return nil, err
	}
	if err := s.checkNotAnswered(field, account, e); err != nil {
		return nil, err
	}
	pe := portalEntry(TxConnectComplete, e, req.Result, nil)
	pe.AccountID = req.AccountID
	if _, err := s.append(ctx, KindConnectionResult, e.Identifier.String(), account, pe); err != nil {
		return nil, err
	}
	return &ConnectCompleteResponse{MeshResponse{Status: SuccessCreated}}, nil
}

// checkNotAnswered refuses a result that already answered an earlier
// request of its device to the account. A result names the device and the
// profile, not the request it answers, and ConnectStatus shows it to
// anyone: posted again, an old refusal (or acceptance) would close the
// device's new request before an administration device saw it. A fresh
// answer is a new signature over a new payload (an acceptance carries a
// new activation); the same refusal of the same request twice is the one
// answer this refuses.
func (s *Server) checkNotAnswered(field, account string, e *mesh.Entry) error {
	c, found, err := s.state.conn(account, e.Identifier.String())
	if err != nil || !found {
		return err
	}
	if slices.Contains(c.Answered, resultDigest(e.Envelope.Payload)) {
		return &Error{Status: AlreadyExists, Err: ErrResultRecorded,
			Description: fmt.Sprintf("%s already answered an earlier connection request of device %s to %q: an old result does not answer a new request", field, e.Identifier, account)}
	}
	return nil
}

// connectStatus answers ConnectStatus: the signed result once there is one;
// while the request is pending, success without a Result.
func (s *Server) connectStatus(req *ConnectStatusRequest) (*ConnectStatusResponse, error) {
	account, err := s.account("ConnectStatusRequest.AccountID", req.AccountID)
	if err != nil {
		return nil, err
	}
	device, err := parseUDF("ConnectStatusRequest.DeviceID", req.DeviceID)
	if err != nil {
		return nil, err
	}
	c, found, err := s.state.conn(account, device.String())
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, &Error{Status: NotFound, Err: ErrNoPending,
			Description: "device " + device.String() + " has no connection request to account " + jsonQuote(req.AccountID)}
	}
	if !c.Done {
		return &ConnectStatusResponse{MeshResponse: MeshResponse{Status: SuccessOK, StatusDescription: "The connection request is pending"}}, nil
	}
	rec, err := s.log.Get(c.ResultSeq)
	if err != nil {
		return nil, err
	}
	pe, err := UnmarshalPortalEntry(rec.Payload)
	if err != nil {
		return nil, err
	}
	return &ConnectStatusResponse{Result: pe.Entry}, nil
}

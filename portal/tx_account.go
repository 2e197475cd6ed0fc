package portal

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/intermesh/intermesh/portal/mesh"
	"github.com/intermesh/intermesh/vmap"
)

// isDNSName reports whether a service name can be the host of the
// service's URI ("portal.example.com"), unlike a log origin such as
// "testnet/node0", which names a portal but no host.
func isDNSName(name string) bool {
	if name == "" || len(name) > 253 || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// hello answers Hello: the protocol version (Mesh 3.0, JSON) and the
// portal's service name, which AccountProofs name.
func (s *Server) hello(*HelloRequest) *HelloResponse {
	v := &Version{Major: 3, Minor: 0, Encodings: []Encoding{{ID: []string{"application/json"}}}}
	if isDNSName(s.cfg.Service) {
		v.URI = []string{"https://" + s.cfg.Service + WellKnownPath}
	}
	return &HelloResponse{Version: v, Service: s.serviceName(), EnvelopedProfileService: s.cfg.ServiceProfile}
}

// validateAccount answers ValidateAccount. An unacceptable or taken name is
// a successful transaction with Valid false and a Reason. Reservations are
// not honoured (the drafts allow that).
func (s *Server) validateAccount(ctx context.Context, req *ValidateRequest) (*ValidateResponse, error) {
	resp := &ValidateResponse{Minimum: s.cfg.AccountMinLength, Maximum: s.cfg.AccountMaxLength}
	reason, invalid := s.checkAccountName(req.Account)
	resp.InvalidCharacters = invalid
	if reason == "" {
		reason = s.domainReason(CanonicalAccount(req.Account))
	}
	if reason == "" {
		acct, found, err := s.state.account(CanonicalAccount(req.Account))
		if err != nil {
			return nil, err
		}
		if found && acct.Status == AccountOpen {
			reason = reasonTaken
		}
	}
	resp.Valid, resp.Reason = reason == "", reason
	if req.Full && s.deps.Proofs != nil && (reason == "" || reason == reasonTaken) {
		name := vmap.Name{Namespace: vmap.Account, Name: CanonicalAccount(req.Account)}
		proof, _, err := s.deps.Proofs.ProveEntries(ctx, ProofRequest{Names: []vmap.Name{name}})
		if err != nil {
			return nil, err
		}
		resp.Proof = proof
	}
	return resp, nil
}

// reasonTaken is ValidateAccount's reason for a name an open account has.
const reasonTaken = "the account name is already taken"

// profileTypes are the entries an account may be bound to.
var accountProfileTypes = []string{mesh.TypeProfileAccount, mesh.TypeProfileMesh}

// createAccount answers CreateAccount: the account is bound to a verified
// profile, which is registered (or updated) in the same record.
func (s *Server) createAccount(ctx context.Context, req *CreateRequest) (*CreateResponse, error) {
	account, err := s.account("CreateRequest.Account", req.Account)
	if err != nil {
		return nil, err
	}
	if reason := s.domainReason(account); reason != "" {
		return nil, &Error{Status: ClientUnauthorized, Err: ErrDomainNotServed,
			Description: fmt.Sprintf("CreateRequest.Account %q: %s", req.Account, reason)}
	}
	e, err := s.verifyEntry("CreateRequest.Profile", req.Profile, nil, accountProfileTypes...)
	if err != nil {
		return nil, err
	}
	if err := s.checkUpdated("CreateRequest.Profile", e); err != nil {
		return nil, err
	}
	if err := s.checkReplicated("CreateRequest.Profile", e); err != nil {
		return nil, err
	}
	signer, err := s.checkConsent(req, account, e)
	if err != nil {
		return nil, err
	}
	pe := portalEntry(TxCreateAccount, e, req.Profile, nil)
	pe.AccountID, pe.Status = req.Account, AccountOpen
	if signer != "" {
		pe.Proof, pe.ProofSigner = req.Proof, signer
	}
	rec, err := s.append(ctx, KindAccount, e.Identifier.String(), account, pe)
	if err != nil {
		return nil, err
	}
	return &CreateResponse{MeshResponse: MeshResponse{Status: SuccessCreated}, Written: writtenOf(rec)}, nil
}

// checkConsent checks that the profile e of a CreateRequest consents to
// be bound to account (canonical name): either req.Proof is an AccountProof
// for CreateAccount, this portal and account whose Digest is that of the
// profile, signed by the profile's offline key or one of its online keys,
// or, without a proof, the profile is a ProfileAccount whose signed
// AccountAddresses list the account. It returns the proof's signer ("" if
// the profile's AccountAddresses consented). A proof that is given is
// checked even where the addresses would do.
func (s *Server) checkConsent(req *CreateRequest, account string, e *mesh.Entry) (string, error) {
	const field = "CreateRequest.Proof"
	if len(req.Proof) == 0 {
		if listsAccount(e, account) {
			return "", nil
		}
		return "", Errorf(ClientUnauthorized, "%s is missing: binding account %q needs the consent of the %s %s in CreateRequest.Profile, "+
			"which does not list %q in its AccountAddresses: give an AccountProof for Transaction %q, Portal %q and Account %q "+
			"with the Digest of CreateRequest.Profile, signed by the profile's offline key or one of its online keys",
			field, req.Account, e.Type, e.Identifier, req.Account, TxCreateAccount, s.serviceName(), req.Account)
	}
	claim := proofClaim{field: field, account: account, spelled: req.Account, tx: TxCreateAccount, env: e.Envelope}
	return s.checkAccountProof(claim, req.Proof, func() (map[mesh.UDF]mesh.PublicKey, error) {
		keys, err := mesh.AuthorityKeys(e.Profile())
		if err != nil {
			return nil, meshError("CreateRequest.Profile", err)
		}
		return keys, nil
	})
}

// listsAccount reports whether e is a ProfileAccount whose AccountAddresses
// list account (a canonical name), compared canonically.
func listsAccount(e *mesh.Entry, account string) bool {
	p, ok := e.Object.(*mesh.ProfileAccount)
	if !ok {
		return false
	}
	for _, a := range p.AccountAddresses {
		if CanonicalAccount(a) == account {
			return true
		}
	}
	return false
}

// DeleteProof is the payload of the proof a DeleteRequest carries:
// {"DeleteAccount":{"Account":"alice@example.com"}}, in an envelope signed by
// the offline key or an online key of the account's profile.
type DeleteProof struct {
	Account string
	// Signed is when the proof was signed. A proof signed before the
	// account was (re)created is refused, so that a deletion proof, which
	// the log makes public, cannot be replayed against a later account of
	// the same name and profile.
	Signed time.Time
}

// Clock skew allowed between a client signing a delete proof and the portal.
const (
	deleteProofPast   = time.Minute     // before the account's creation
	deleteProofFuture = 5 * time.Minute // after the portal's now
)

// TypeName implements mesh.Object, so mesh.SignObject can sign a proof.
func (*DeleteProof) TypeName() string { return "DeleteAccount" }

// deleteAccount answers DeleteAccount. The account is closed; its profile
// stays published. The request must carry a proof signed by a key of the
// account's profile, or the operator's admin bearer token.
func (s *Server) deleteAccount(ctx context.Context, r *http.Request, req *DeleteRequest) (*DeleteResponse, error) {
	account, err := s.account("DeleteRequest.Account", req.Account)
	if err != nil {
		return nil, err
	}
	acct, found, err := s.state.account(account)
	if err != nil {
		return nil, err
	}
	if !found || acct.Status != AccountOpen {
		return nil, &Error{Status: NotFound, Err: ErrAccountNotFound, Description: "account " + jsonQuote(req.Account) + " does not exist"}
	}
	pe := &PortalEntry{Transaction: TxDeleteAccount, AccountID: req.Account, Status: AccountClosed}
	switch {
	case len(req.Proof) > 0:
		signer, err := s.verifyDeleteProof(req, account, acct)
		if err != nil {
			return nil, err
		}
		pe.Type, pe.Signer, pe.Entry = req.Proof.Type(), signer, req.Proof
	case bearer(r, s.cfg.AdminToken):
	default:
		return nil, Errorf(ClientUnauthorized, "DeleteRequest.Proof is missing: deleting an account needs a proof signed by a key of its profile, or the operator's admin token")
	}
	if _, err := s.append(ctx, KindAccount, "", account, pe); err != nil {
		return nil, err
	}
	return &DeleteResponse{}, nil
}

// verifyDeleteProof checks the proof of a DeleteRequest and returns its signer.
func (s *Server) verifyDeleteProof(req *DeleteRequest, account string, acct accountState) (string, error) {
	profileUDF := acct.ProfileUDF
	const field = "DeleteRequest.Proof"
	if err := s.checkEntry(field, req.Proof); err != nil {
		return "", err
	}
	typ, env, err := mesh.ParseEntry(req.Proof)
	if err != nil {
		return "", meshError(field, err)
	}
	var proof DeleteProof
	if err := mesh.DecodePayload(env.Payload, &proof); err != nil || typ != proof.TypeName() {
		return "", Errorf(ClientBadRequest, "%s must be a signed %q entry", field, proof.TypeName())
	}
	if CanonicalAccount(proof.Account) != account {
		return "", Errorf(ClientUnauthorized, "%s is for account %q, not %q", field, proof.Account, req.Account)
	}
	switch {
	case proof.Signed.IsZero():
		return "", Errorf(ClientBadRequest, "%s has no Signed time", field)
	case proof.Signed.Before(acct.Created.Add(-deleteProofPast)):
		return "", Errorf(ClientUnauthorized, "%s was signed at %s, before account %q was created at %s: it is not for this account",
			field, proof.Signed.UTC().Format(time.RFC3339), req.Account, acct.Created.UTC().Format(time.RFC3339))
	case proof.Signed.After(s.now().Add(deleteProofFuture)):
		return "", Errorf(ClientBadRequest, "%s is signed at %s, in the future", field, proof.Signed.UTC().Format(time.RFC3339))
	}
	id, err := mesh.ParseUDF(profileUDF)
	if err != nil {
		return "", err
	}
	profile, err := s.registered(id)
	if err != nil || profile == nil {
		return "", Errorf(ServerInternal, "the profile %s of account %q cannot be read", profileUDF, req.Account)
	}
	keys, err := mesh.AuthorityKeys(profile.Profile())
	if err != nil {
		return "", err
	}
	signer, err := env.VerifyWith(KeyResolverOf(keys))
	if err != nil {
		return "", meshError(field, err)
	}
	return signer.String(), nil
}

func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

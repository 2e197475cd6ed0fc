package node

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/intermesh/intermesh/config"
)

// The federation endpoints:
//
//	GET  /federation          the node's versions and pending proposals (FederationState)
//	GET  /federation/updates  the signed updates from version 1 on (FederationUpdates)
//	POST /federation          a signed update or more signatures for one (operator only:
//	                          "Authorization: Bearer <http.admin_token>"); answers FederationSubmission

// FederationState is the body of GET /federation.
type FederationState struct {
	// Name is the federation's name.
	Name string
	// Version is the latest version the node accepted.
	Version uint64
	// Hash is the base64 SHA-256 of that version's text.
	Hash string
	// Effective is the round from which it is in force.
	Effective uint64
	// InForce is the version in force in the current round.
	InForce uint64
	// Following is the version whose Mesh the node runs (or would, were
	// it a member).
	Following uint64
	// Member reports whether the node takes part in rounds now.
	Member bool
	// Round is the node's current round.
	Round uint64
	// Members are the origins of the latest version's members.
	Members []string
	// Quorum is the latest version's quorum.
	Quorum int
	// Text is the latest version's note text.
	Text string
	// Pending are the proposals for the next version.
	Pending []FederationProposal
}

// registerFederation adds the federation endpoints to mux.
func (n *Node) registerFederation(mux *http.ServeMux) {
	mux.HandleFunc("GET /federation", n.serveFederationState)
	mux.HandleFunc("GET /federation/updates", func(w http.ResponseWriter, r *http.Request) {
		fu := FederationUpdates{Updates: []string{}}
		for _, u := range n.history.updates(1) {
			fu.Updates = append(fu.Updates, string(u))
		}
		writeFedJSON(w, http.StatusOK, fu)
	})
	mux.HandleFunc("POST /federation", n.serveFederationSubmit)
}

func (n *Node) serveFederationState(w http.ResponseWriter, r *http.Request) {
	cur, chain := n.history.current()
	round := n.Epoch()
	h := cur.Hash()
	st := FederationState{
		Name: cur.Name, Version: cur.Version, Hash: base64.StdEncoding.EncodeToString(h[:]),
		Effective: cur.Effective, InForce: config.InForce(chain, round).Version,
		Member: n.Mesh() != nil, Round: round, Quorum: cur.Quorum, Text: string(cur.Text()),
		Pending: n.FederationPending(),
	}
	if f := n.following.Load(); f != nil {
		st.Following = f.Version
	}
	for _, m := range cur.Members {
		st.Members = append(st.Members, m.Origin)
	}
	writeFedJSON(w, http.StatusOK, st)
}

func (n *Node) serveFederationSubmit(w http.ResponseWriter, r *http.Request) {
	if n.cfg.HTTP.AdminToken == "" {
		writeFedError(w, http.StatusForbidden, "this node has no http.admin_token: it takes no federation updates over HTTP")
		return
	}
	if !adminBearer(r, n.cfg.HTTP.AdminToken) {
		writeFedError(w, http.StatusUnauthorized, "POST /federation needs Authorization: Bearer <the node's http.admin_token>")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, config.MaxFederationNote+1))
	if err != nil {
		writeFedError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	if len(body) > config.MaxFederationNote {
		writeFedError(w, http.StatusRequestEntityTooLarge, "a federation update is at most 64 KiB")
		return
	}
	sub, err := n.SubmitFederationUpdate(r.Context(), body)
	switch {
	case err == nil:
		writeFedJSON(w, http.StatusOK, sub)
	case errors.Is(err, ErrFederationStale), errors.Is(err, ErrFederationConflict), errors.Is(err, ErrFederationLate):
		writeFedError(w, http.StatusConflict, err.Error())
	case errors.Is(err, config.ErrFederationUpdate), errors.Is(err, config.ErrFederation):
		writeFedError(w, http.StatusBadRequest, err.Error())
	default:
		n.logger.Error("federation update", "err", err)
		writeFedError(w, http.StatusInternalServerError, "the update could not be stored")
	}
}

// adminBearer reports whether r carries the operator's bearer token.
func adminBearer(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	a, b := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// federationError is the body of a refused federation request.
type federationError struct {
	Error string
}

func writeFedError(w http.ResponseWriter, status int, msg string) {
	writeFedJSON(w, status, federationError{Error: msg})
}

func writeFedJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

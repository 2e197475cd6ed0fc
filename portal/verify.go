package portal

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal/mesh"
)

// Verification happens here, before anything is appended and outside the
// log's sequencer: every signature is checked with package portal/mesh. The
// indexer (State.Index) then only compares key identifiers.

// verifyEntry verifies a signed entry of a request field and checks that its
// type is one of types.
func (s *Server) verifyEntry(field string, raw Entry, lookup func(mesh.UDF) (*mesh.Entry, error), types ...string) (*mesh.Entry, error) {
	if err := s.checkEntry(field, raw); err != nil {
		return nil, err
	}
	typ := raw.Type()
	ok := false
	for _, t := range types {
		ok = ok || t == typ
	}
	if !ok {
		return nil, Errorf(ClientBadRequest, "%s is a %q, want one of %v", field, typ, types)
	}
	e, err := mesh.Verifier{MaxSize: s.cfg.MaxEntryBytes, Lookup: lookup}.Verify(raw)
	if err != nil {
		return nil, meshError(field, err)
	}
	return e, nil
}

// meshError maps an error of package mesh to a protocol error naming the
// request field: signatures that do not verify are ClientUnauthorized,
// oversized input TooLarge, anything else malformed ClientBadRequest.
func meshError(field string, err error) *Error {
	status := ClientBadRequest
	switch {
	case errors.Is(err, mesh.ErrTooLarge):
		status = TooLarge
	case errors.Is(err, mesh.ErrBadSignature), errors.Is(err, mesh.ErrBadDigest),
		errors.Is(err, mesh.ErrUnknownKey), errors.Is(err, mesh.ErrNotPermitted):
		status = ClientUnauthorized
	}
	return &Error{Status: status, Description: fmt.Sprintf("%s: %v", field, err), Err: err}
}

// portalEntry describes a verified entry for the log. prev is the
// registered version the entry was verified against (nil if its own keys
// sufficed): if the signer is a key of prev only, its public key is kept in
// SignerKey.
func portalEntry(tx string, e *mesh.Entry, raw Entry, prev *mesh.Entry) *PortalEntry {
	pe := &PortalEntry{Transaction: tx, Type: e.Type, Entry: raw}
	if !e.Signer.IsZero() {
		pe.Signer = e.Signer.String()
	}
	if p := e.Profile(); p != nil {
		pe.OfflineKey = e.Identifier.String()
		for _, k := range e.OnlineKeys {
			pe.OnlineKeys = append(pe.OnlineKeys, k.String())
		}
		if e.Type == mesh.TypeProfileAccount && !e.Subject.IsZero() {
			pe.MeshProfile = e.Subject.String()
		}
		if u := p.Base().Updated; u != nil {
			t := u.UTC()
			pe.Updated = &t
		}
		if !e.SignedOffline && !slices.ContainsFunc(e.OnlineKeys, e.Signer.Equal) && prev != nil && prev.Profile() != nil {
			if keys, err := prev.Profile().Base().OnlineKeys(); err == nil {
				for _, k := range keys {
					if k.UDF().Equal(e.Signer) {
						pe.SignerKey = mesh.NewKeyData(k)
					}
				}
			}
		}
	}
	return pe
}

// verifyAgainstRegistered verifies a request's entry whose signer may be a
// key of the registered version of its profile (a profile update, a
// connection result). It returns the entry and the registered version it
// was verified against, if that was needed.
func (s *Server) verifyAgainstRegistered(field string, raw Entry, types ...string) (*mesh.Entry, *mesh.Entry, error) {
	var prev *mesh.Entry
	lookup := func(id mesh.UDF) (*mesh.Entry, error) {
		e, err := s.registered(id)
		if e != nil {
			prev = e
		}
		return e, err
	}
	e, err := s.verifyEntry(field, raw, lookup, types...)
	return e, prev, err
}

// registered returns the verified registered version of a profile, or nil
// if there is none. It re-verifies the stored entry, so it costs a signature
// check; it serves the rare transactions that need the public keys of a
// registered profile (ConnectComplete, DeleteAccount, account proofs). A
// version signed by a key that only its previous version listed verifies
// with the SignerKey kept in its record.
func (s *Server) registered(id mesh.UDF) (*mesh.Entry, error) {
	obj, found, err := s.state.object(id.String())
	if err != nil || !found {
		return nil, err
	}
	rec, err := s.log.Get(obj.Seq)
	if err != nil {
		return nil, fmt.Errorf("portal: reading registered version of %s: %w", id, err)
	}
	pe, err := UnmarshalPortalEntry(rec.Payload)
	if err != nil {
		return nil, err
	}
	v := mesh.Verifier{}
	if pe.SignerKey != nil {
		// The version was verified against its previous version, of which
		// only the signer's key matters: present that key as the online
		// key of a stand-in previous version.
		kept := &mesh.Entry{Object: &mesh.ProfileMesh{Profile: mesh.Profile{KeysOnlineSignature: []mesh.KeyData{*pe.SignerKey}}}}
		v.Lookup = func(mesh.UDF) (*mesh.Entry, error) { return kept, nil }
	}
	e, err := v.Verify(pe.Entry)
	if err != nil {
		return nil, fmt.Errorf("portal: registered version of %s (record %d) no longer verifies: %w", id, rec.Seq, err)
	}
	return e, nil
}

// append writes a portal record and maps what can go wrong to statuses.
func (s *Server) append(ctx context.Context, kind log.Kind, id, account string, pe *PortalEntry) (log.Record, error) {
	payload, err := MarshalPortalEntry(pe)
	if err != nil {
		return log.Record{}, err
	}
	rec, err := s.log.Append(ctx, log.Record{Kind: kind, Identifier: id, Account: account, Payload: payload})
	if err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			return log.Record{}, pe
		}
		if errors.Is(err, log.ErrInvalidRecord) {
			return log.Record{}, Errorf(TooLarge, "the entry does not fit in a log record: %w", err)
		}
		return log.Record{}, fmt.Errorf("portal: appending %s record: %w", kind, err)
	}
	return rec, nil
}

// parseUDF parses an identifier from a request field into canonical form.
func parseUDF(field, s string) (mesh.UDF, error) {
	if s == "" {
		return mesh.UDF{}, Errorf(ClientBadRequest, "%s is missing", field)
	}
	u, err := mesh.ParseUDF(s)
	if err != nil {
		return mesh.UDF{}, Errorf(ClientBadRequest, "%s %q is not a UDF: %w", field, s, err)
	}
	return u, nil
}

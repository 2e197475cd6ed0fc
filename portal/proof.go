package portal

import (
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/intermesh/intermesh/portal/mesh"
)

// AccountProof proves that a request comes from an administration device of
// an account: a signed timestamp, bound to the portal, the account, the
// transaction and (for Publish) the entry it vouches for. It travels as a
// signed entry {"AccountProof":[header, payload, trailer]} whose payload is
//
//	{"AccountProof":{"Portal":"example.com","Account":"alice@example.com",
//	  "Transaction":"ConnectPending","Signed":"2026-11-28T23:50:00Z"}}
//
// signed by the offline key or an online (administration) key of the
// profile the account is bound to. Portal is the service name the portal
// gives in HelloResponse.Service: a proof made for one portal is refused by
// every other, even where the same account name exists (it would otherwise
// read the account's pending requests there, or publish there). The portal
// accepts it while Signed is within AccountProofWindow of its clock, so no
// portal state is needed; a proof captured in that window can be replayed
// only at the same portal, for the same account and transaction (and, for
// Publish, the same entry) until it expires.
type AccountProof struct {
	// Portal is the service name of the portal the proof is for, as its
	// Hello answers it (HelloResponse.Service).
	Portal string
	// Account is the account name.
	Account string
	// Transaction is the transaction the proof authorizes, e.g. "Publish".
	Transaction string
	// Signed is when the proof was signed.
	Signed time.Time
	// Digest is, for Publish, the unpadded base64url SHA-512 of the payload
	// of the entry published (its PayloadDigest).
	Digest string `json:",omitempty"`
}

// TypeName implements mesh.Object.
func (*AccountProof) TypeName() string { return "AccountProof" }

// AccountProofWindow is how far Signed may be from the portal's clock, in
// either direction.
const AccountProofWindow = 5 * time.Minute

// SignAccountProof returns an AccountProof entry for the portal named
// service (its HelloResponse.Service), account and transaction tx, signed
// at signed by key. For Publish, entry is the entry published; otherwise
// nil.
func SignAccountProof(service, account, tx string, entry Entry, signed time.Time, key *mesh.PrivateKey) (Entry, error) {
	if service == "" {
		return nil, fmt.Errorf("portal: account proof for %s: %w", tx, ErrNoPortalName)
	}
	p := &AccountProof{Portal: service, Account: account, Transaction: tx, Signed: signed.UTC()}
	if len(entry) > 0 {
		_, env, err := mesh.ParseEntry(entry)
		if err != nil {
			return nil, fmt.Errorf("portal: account proof: %w", err)
		}
		p.Digest = entryDigest(env)
	}
	env, err := mesh.SignObject(p, key)
	if err != nil {
		return nil, fmt.Errorf("portal: signing account proof: %w", err)
	}
	raw, err := mesh.MarshalEntry(p.TypeName(), env)
	if err != nil {
		return nil, fmt.Errorf("portal: account proof: %w", err)
	}
	return raw, nil
}

// ErrNoPortalName is returned by SignAccountProof for an empty service
// name: a proof must name the portal it is for.
var ErrNoPortalName = errors.New("the portal's service name is empty (it is HelloResponse.Service)")

// entryDigest is the Digest an AccountProof gives for an entry.
func entryDigest(env *mesh.Envelope) string {
	d := sha512.Sum512(env.Payload)
	return base64.RawURLEncoding.EncodeToString(d[:])
}

// verifyAccountProof checks the AccountProof of a request field: for
// account (canonical name, open, state acct) and transaction tx, within the
// window, for this portal (serviceName), for the entry whose envelope is
// env (Publish; nil otherwise), and signed by a key of the account's
// registered profile. It returns the
// signer's UDF. Every refusal is ClientUnauthorized, except a malformed
// proof (ClientBadRequest).
func (s *Server) verifyAccountProof(field string, raw Entry, account string, acct accountState, tx string, env *mesh.Envelope) (string, error) {
	if len(raw) == 0 {
		return "", Errorf(ClientUnauthorized, "%s is missing: %s for account %q needs an AccountProof signed by an administration key of the account's profile",
			field, tx, acct.AccountID)
	}
	claim := proofClaim{field: field, account: account, spelled: acct.AccountID, tx: tx, env: env,
		notBefore: acct.Created.Add(-deleteProofPast)}
	return s.checkAccountProof(claim, raw, func() (map[mesh.UDF]mesh.PublicKey, error) { return s.accountKeys(acct) })
}

// proofClaim is what an AccountProof must say to be accepted.
type proofClaim struct {
	field   string // the request field, for messages
	account string // the canonical account name
	spelled string // the account name as the client spelled it
	tx      string // the transaction
	// env is the entry the proof must vouch for (its Digest); nil for none.
	env *mesh.Envelope
	// notBefore, if not zero, is the earliest Signed time accepted: the
	// account's creation, so that a proof is not for an earlier account of
	// the same name.
	notBefore time.Time
}

// checkAccountProof checks that raw is an AccountProof for this portal
// that says what claim says, signed within AccountProofWindow of the
// portal's clock by one of keys. It returns the signer's UDF.
func (s *Server) checkAccountProof(claim proofClaim, raw Entry, keys func() (map[mesh.UDF]mesh.PublicKey, error)) (string, error) {
	field := claim.field
	if err := s.checkEntry(field, raw); err != nil {
		return "", err
	}
	var proof AccountProof
	typ, penv, err := mesh.ParseEntry(raw)
	if err != nil {
		return "", meshError(field, err)
	}
	if err := mesh.DecodePayload(penv.Payload, &proof); err != nil || typ != proof.TypeName() {
		return "", Errorf(ClientBadRequest, "%s must be a signed %q entry", field, proof.TypeName())
	}
	if err := s.checkProofPortal(field, proof.Portal); err != nil {
		return "", err
	}
	now := s.now()
	switch {
	case CanonicalAccount(proof.Account) != claim.account:
		return "", Errorf(ClientUnauthorized, "%s is for account %q, not %q", field, proof.Account, claim.spelled)
	case proof.Transaction != claim.tx:
		return "", Errorf(ClientUnauthorized, "%s is for transaction %q, not %q", field, proof.Transaction, claim.tx)
	case proof.Signed.IsZero():
		return "", Errorf(ClientBadRequest, "%s has no Signed time", field)
	case proof.Signed.Before(now.Add(-AccountProofWindow)) || proof.Signed.After(now.Add(AccountProofWindow)):
		return "", Errorf(ClientUnauthorized, "%s was signed at %s, more than %s from the portal's time %s: sign a fresh one",
			field, proof.Signed.UTC().Format(time.RFC3339), AccountProofWindow, now.UTC().Format(time.RFC3339))
	case !claim.notBefore.IsZero() && proof.Signed.Before(claim.notBefore):
		return "", Errorf(ClientUnauthorized, "%s was signed before account %q was created: it is not for this account", field, claim.spelled)
	}
	if claim.env != nil && subtle.ConstantTimeCompare([]byte(proof.Digest), []byte(entryDigest(claim.env))) != 1 {
		return "", Errorf(ClientUnauthorized, "%s vouches for another entry (Digest %q)", field, proof.Digest)
	}
	ks, err := keys()
	if err != nil {
		return "", err
	}
	signer, err := penv.VerifyWith(KeyResolverOf(ks))
	if err != nil {
		return "", meshError(field, err)
	}
	return signer.String(), nil
}

// KeyResolverOf returns a mesh.KeyResolver that knows the keys of keys, by
// their UDF, and no other (mesh.ErrUnknownKey).
func KeyResolverOf(keys map[mesh.UDF]mesh.PublicKey) mesh.KeyResolver {
	return func(kid mesh.UDF) (mesh.PublicKey, error) {
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return mesh.PublicKey{}, mesh.ErrUnknownKey
	}
}

// checkProofPortal refuses an AccountProof that names another portal, or
// none: a proof alice made for one portal must not open her account of the
// same name at another.
func (s *Server) checkProofPortal(field, named string) error {
	own := s.serviceName()
	switch {
	case named == "":
		return Errorf(ClientUnauthorized, "%s names no Portal: sign one for this portal, %q (HelloResponse.Service)", field, own)
	case named != own:
		return Errorf(ClientUnauthorized, "%s is for portal %q, not this portal %q: sign one for %q (HelloResponse.Service)", field, named, own, own)
	}
	return nil
}

// serviceName is the name this portal gives in Hello and that its
// AccountProofs must name: Config.Service, or the log's origin without it.
func (s *Server) serviceName() string {
	if s.cfg.Service != "" {
		return s.cfg.Service
	}
	return s.origin
}

// accountKeys returns the keys that may sign for an account: the offline
// and online keys of the registered version of its profile. The version
// was verified when it was appended to this node's log, so its keys are
// read without checking its signature again (an account proof then costs
// one signature check, not two). They come from the state's key cache when
// it holds those of the record of the registered version, the record is
// read and parsed (and its keys cached) otherwise.
func (s *Server) accountKeys(acct accountState) (map[mesh.UDF]mesh.PublicKey, error) {
	obj, found, err := s.state.object(acct.ProfileUDF)
	if err != nil {
		return nil, accountKeysError(acct, err)
	}
	if !found {
		return nil, accountKeysError(acct, errors.New("not registered"))
	}
	if keys, ok := s.state.keys.get(acct.ProfileUDF, obj.Seq); ok {
		return keys, nil
	}
	keys, err := s.profileKeys(obj.Seq)
	if err != nil {
		return nil, accountKeysError(acct, err)
	}
	s.state.keys.put(acct.ProfileUDF, obj.Seq, keys)
	return keys, nil
}

// accountKeysError is the error of accountKeys for acct, wrapping err.
func accountKeysError(acct accountState, err error) error {
	return fmt.Errorf("portal: the profile %s of account %q cannot be read: %w", acct.ProfileUDF, acct.AccountID, err)
}

// profileKeys reads the profile (a ProfileMesh or ProfileAccount) of the
// log record seq and returns its authority keys, without verifying it.
func (s *Server) profileKeys(seq uint64) (map[mesh.UDF]mesh.PublicKey, error) {
	rec, err := s.log.Get(seq)
	if err != nil {
		return nil, err
	}
	pe, err := UnmarshalPortalEntry(rec.Payload)
	if err != nil {
		return nil, err
	}
	typ, env, err := mesh.ParseEntry(pe.Entry)
	if err != nil {
		return nil, err
	}
	var p mesh.SignedProfile
	switch typ {
	case mesh.TypeProfileMesh:
		p = &mesh.ProfileMesh{}
	case mesh.TypeProfileAccount:
		p = &mesh.ProfileAccount{}
	default:
		return nil, fmt.Errorf("an account's profile cannot be a %s", typ)
	}
	if err := mesh.DecodePayload(env.Payload, p); err != nil {
		return nil, err
	}
	return mesh.AuthorityKeys(p)
}

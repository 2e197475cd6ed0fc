package portal

import (
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/intermesh/intermesh/portal/mesh"
)

// ErrNoConsent is returned (wrapped) by VerifyConsent for a binding its
// profile did not consent to.
var ErrNoConsent = errors.New("portal: the profile did not consent to the binding")

// VerifyConsent checks offline, as a client does with an Account record
// from the log, that the profile entry consented to be bound to account
// (a canonical name): it is a ProfileAccount whose signed
// AccountAddresses list the account, or proof (the record's PortalEntry
// Proof) is an AccountProof for CreateAccount and the account whose
// Digest is the profile's, signed by the profile's offline key or one of
// its online keys. The proof's portal and time were the portal's checks
// when it took the request; they are not checked here. It returns how
// the profile consented.
func VerifyConsent(account string, profile, proof Entry) (string, error) {
	e, err := mesh.VerifyEntry(profile, 0)
	if err != nil {
		return "", fmt.Errorf("%w: the bound profile: %w", ErrNoConsent, err)
	}
	if e.Profile() == nil {
		return "", fmt.Errorf("%w: a %s is not a profile", ErrNoConsent, e.Type)
	}
	if len(proof) == 0 {
		if listsAccount(e, account) {
			return fmt.Sprintf("its ProfileAccount lists %s", account), nil
		}
		return "", fmt.Errorf("%w: the %s %s does not list %s and no AccountProof was given", ErrNoConsent, e.Type, e.Identifier, account)
	}
	var ap AccountProof
	typ, penv, err := mesh.ParseEntry(proof)
	if err != nil || mesh.DecodePayload(penv.Payload, &ap) != nil || typ != ap.TypeName() {
		return "", fmt.Errorf("%w: the proof is not a signed %s", ErrNoConsent, ap.TypeName())
	}
	switch {
	case CanonicalAccount(ap.Account) != account:
		return "", fmt.Errorf("%w: the proof is for account %q, not %q", ErrNoConsent, ap.Account, account)
	case ap.Transaction != TxCreateAccount:
		return "", fmt.Errorf("%w: the proof is for %s, not %s", ErrNoConsent, ap.Transaction, TxCreateAccount)
	case subtle.ConstantTimeCompare([]byte(ap.Digest), []byte(entryDigest(e.Envelope))) != 1:
		return "", fmt.Errorf("%w: the proof vouches for another profile", ErrNoConsent)
	}
	keys, err := mesh.AuthorityKeys(e.Profile())
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoConsent, err)
	}
	signer, err := penv.VerifyWith(KeyResolverOf(keys))
	if err != nil {
		return "", fmt.Errorf("%w: the proof's signature: %w", ErrNoConsent, err)
	}
	return fmt.Sprintf("an AccountProof signed by its key %s", signer), nil
}

package mesh

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error this package returns wraps one of them, so
// callers (the portal maps them to status codes) test with errors.Is; the
// message names the field that failed and why.
var (
	// ErrMalformed: the input is not well-formed (bad JSON, bad base64,
	// wrong shape, missing required field, bad UDF syntax).
	ErrMalformed = errors.New("malformed")
	// ErrTooLarge: the input or one of its fields exceeds a size limit.
	ErrTooLarge = errors.New("too large")
	// ErrUnsupported: a well-formed value this package does not implement
	// (unknown digest or signature algorithm, unknown entry type).
	ErrUnsupported = errors.New("unsupported")
	// ErrBadDigest: PayloadDigest is not the SHA-512 of the payload.
	ErrBadDigest = errors.New("payload digest mismatch")
	// ErrBadSignature: a signature does not verify, or no signature by an
	// acceptable key is present.
	ErrBadSignature = errors.New("bad signature")
	// ErrUnknownKey: a signature names a key (kid) that cannot be resolved.
	ErrUnknownKey = errors.New("unknown key")
	// ErrIdentifierMismatch: a UDF stated in the data does not match the
	// UDF computed from the key or content it names.
	ErrIdentifierMismatch = errors.New("identifier mismatch")
	// ErrWrongCurve: a key is present but of the wrong curve for its role.
	ErrWrongCurve = errors.New("wrong curve")
	// ErrMissingKey: a key the object type requires is absent.
	ErrMissingKey = errors.New("missing key")
	// ErrNotPermitted: a new version may not replace the registered one.
	ErrNotPermitted = errors.New("not permitted")
	// ErrThreshold: fewer escrow shares than the threshold were given.
	ErrThreshold = errors.New("not enough shares")
	// ErrBadShare: an escrow share is malformed, duplicated, inconsistent
	// with the others, or recovers a key that matches no escrow entry.
	ErrBadShare = errors.New("bad share")
	// ErrDecrypt: authenticated decryption failed.
	ErrDecrypt = errors.New("decryption failed")
)

// FieldError reports which field of the input failed and why. It wraps one
// of the sentinel errors (Kind), so errors.Is(err, ErrMalformed) works, and
// errors.As gives the portal the field name for its StatusDescription.
type FieldError struct {
	// Field is a path into the input, e.g. "trailer.signatures[0].kid".
	Field string
	// Kind is the sentinel error the failure belongs to.
	Kind error
	// Reason explains the failure in words.
	Reason string
}

// Error implements error: "mesh: <field>: <kind>: <reason>".
func (e *FieldError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("mesh: %v: %s", e.Kind, e.Reason)
	}
	if e.Reason == "" {
		return fmt.Sprintf("mesh: %s: %v", e.Field, e.Kind)
	}
	return fmt.Sprintf("mesh: %s: %v: %s", e.Field, e.Kind, e.Reason)
}

// Unwrap returns the sentinel error.
func (e *FieldError) Unwrap() error { return e.Kind }

// fieldErr builds a *FieldError.
func fieldErr(kind error, field, format string, args ...any) error {
	return &FieldError{Field: field, Kind: kind, Reason: fmt.Sprintf(format, args...)}
}

// inField prefixes the field path of err (a *FieldError) with prefix, or
// wraps a plain error as a FieldError of kind ErrMalformed.
func inField(prefix string, err error) error {
	if err == nil {
		return nil
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		f := prefix
		if fe.Field != "" {
			f = prefix + "." + fe.Field
		}
		return &FieldError{Field: f, Kind: fe.Kind, Reason: fe.Reason}
	}
	return fmt.Errorf("mesh: %s: %w", prefix, err)
}

func asFieldError(err error, target **FieldError) bool { return errors.As(err, target) }

// fieldIndex is "name[i]".
func fieldIndex(name string, i int) string { return fmt.Sprintf("%s[%d]", name, i) }

package portal

import (
	"errors"
	"fmt"
	"time"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal/mesh"
	"github.com/intermesh/intermesh/vmap"
)

// ErrMapRule is returned (wrapped) by CheckMapRecord for a record that no
// honest portal logs.
var ErrMapRule = errors.New("portal: record breaks the map's rules")

// CheckMapRecord is the rule of the records that set keys of the
// verifiable map (package vmap; docs/formats.md, "What members check"),
// which a member applies to every record of another member's log as it
// recomputes that member's map: name is a name that rec sets (vmap.Sets),
// and prev the record that set it before, nil if none did. It rests only
// on what the records' signers wrote, never on what the portal wrote
// beside it, so a refusal is evidence that anyone holding the two records
// can check:
//
//   - an escrow identifier is set once;
//   - a record that sets a profile key carries a profile whose identifier
//     (the UDF of its KeyOfflineSignature) is the record's identifier, and
//     whose signed Updated is later than the version of prev's, or equal
//     to it for an Account record (CreateAccount binding the registered
//     version); a version without Updated is older than any with one.
//
// A record that closes an account sets no profile key now, but one that
// DeleteAccount wrote before the map (carrying the profile's identifier)
// does: it is taken as it is, and the next version is then checked against
// nothing. Account keys have no rule of their own.
func CheckMapRecord(name vmap.Name, prev, rec *log.Record) error {
	switch name.Namespace {
	case vmap.Escrow:
		if prev != nil {
			return fmt.Errorf("%w: escrow %s is set again by record %d (record %d set it)", ErrMapRule, name.Name, rec.Seq, prev.Seq)
		}
	case vmap.Profile:
		return checkProfileVersion(prev, rec)
	}
	return nil
}

// checkProfileVersion is CheckMapRecord's rule for a profile key.
func checkProfileVersion(prev, rec *log.Record) error {
	if closing(rec) {
		return nil
	}
	id, updated, err := recordProfile(rec)
	if err != nil {
		return fmt.Errorf("%w: record %d (%s of %s): %w", ErrMapRule, rec.Seq, rec.Kind, rec.Identifier, err)
	}
	if id.String() != rec.Identifier {
		return fmt.Errorf("%w: record %d is logged as profile %s, but its KeyOfflineSignature makes it %s", ErrMapRule, rec.Seq, rec.Identifier, id)
	}
	if prev == nil || closing(prev) {
		return nil
	}
	_, before, err := recordProfile(prev)
	if err != nil {
		return fmt.Errorf("%w: record %d (the version before record %d): %w", ErrMapRule, prev.Seq, rec.Seq, err)
	}
	if newer(updated, before) || (rec.Kind == KindAccount && timesEqual(updated, before)) {
		return nil
	}
	return fmt.Errorf("%w: record %d logs profile %s with Updated %s after record %d with Updated %s: versions must be logged in signed Updated order",
		ErrMapRule, rec.Seq, rec.Identifier, formatUpdated(updated), prev.Seq, formatUpdated(before))
}

// closing reports whether rec closes an account.
func closing(rec *log.Record) bool {
	if rec.Kind != KindAccount {
		return false
	}
	pe, err := UnmarshalPortalEntry(rec.Payload)
	return err == nil && pe.Status == AccountClosed
}

// recordProfile reads the profile a Profile or Account record carries:
// its identifier and signed Updated (mesh.ProfileVersion).
func recordProfile(rec *log.Record) (mesh.UDF, *time.Time, error) {
	if rec.Kind != KindProfile && rec.Kind != KindAccount {
		return mesh.UDF{}, nil, fmt.Errorf("a %s record sets no profile", rec.Kind)
	}
	pe, err := UnmarshalPortalEntry(rec.Payload)
	if err != nil {
		return mesh.UDF{}, nil, err
	}
	return mesh.ProfileVersion(pe.Entry)
}

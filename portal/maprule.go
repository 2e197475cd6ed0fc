package portal

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

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
	return checkMapRecord(name, prev, rec, profileOf)
}

// checkMapRecord is CheckMapRecord, reading the records' profiles with read.
func checkMapRecord(name vmap.Name, prev, rec *log.Record, read func(*log.Record) (recordVersion, error)) error {
	switch name.Namespace {
	case vmap.Escrow:
		if prev != nil {
			return fmt.Errorf("%w: escrow %s is set again by record %d (record %d set it)", ErrMapRule, name.Name, rec.Seq, prev.Seq)
		}
	case vmap.Profile:
		return checkProfileVersion(prev, rec, read)
	}
	return nil
}

// checkProfileVersion is CheckMapRecord's rule for a profile key.
func checkProfileVersion(prev, rec *log.Record, read func(*log.Record) (recordVersion, error)) error {
	pv, err := read(rec)
	switch {
	case err != nil:
		return fmt.Errorf("%w: record %d (%s of %s): %w", ErrMapRule, rec.Seq, rec.Kind, rec.Identifier, err)
	case pv.closing:
		return nil
	case pv.id.String() != rec.Identifier:
		return fmt.Errorf("%w: record %d is logged as profile %s, but its KeyOfflineSignature makes it %s", ErrMapRule, rec.Seq, rec.Identifier, pv.id)
	case prev == nil:
		return nil
	}
	before, err := read(prev)
	switch {
	case err != nil:
		return fmt.Errorf("%w: record %d (the version before record %d): %w", ErrMapRule, prev.Seq, rec.Seq, err)
	case before.closing:
		return nil
	case newer(pv.updated, before.updated), rec.Kind == KindAccount && timesEqual(pv.updated, before.updated):
		return nil
	}
	return fmt.Errorf("%w: record %d logs profile %s with Updated %s after record %d with Updated %s: versions must be logged in signed Updated order",
		ErrMapRule, rec.Seq, rec.Identifier, formatUpdated(pv.updated), prev.Seq, formatUpdated(before.updated))
}

// recordVersion is what a record that sets a profile key says of the
// profile: that it closes an account (and carries no profile), or the
// profile's identifier and signed Updated.
type recordVersion struct {
	closing bool
	id      mesh.UDF
	updated *time.Time
}

// profileOf reads a Profile or Account record's profile (mesh.ProfileVersion),
// decoding its PortalEntry once, and only the fields it needs.
func profileOf(rec *log.Record) (recordVersion, error) {
	if rec.Kind != KindProfile && rec.Kind != KindAccount {
		return recordVersion{}, fmt.Errorf("a %s record sets no profile", rec.Kind)
	}
	var m struct {
		PortalEntry *struct {
			Status string
			Entry  json.RawMessage
		}
	}
	if err := json.Unmarshal(rec.Payload, &m); err != nil || m.PortalEntry == nil {
		return recordVersion{}, fmt.Errorf("the payload is not a %s", portalEntryName)
	}
	if rec.Kind == KindAccount && m.PortalEntry.Status == AccountClosed {
		return recordVersion{closing: true}, nil
	}
	id, updated, err := mesh.ProfileVersion(m.PortalEntry.Entry)
	return recordVersion{id: id, updated: updated}, err
}

// NewMapRule returns CheckMapRecord with a cache of the profiles it read
// last (at most size, by the SHA-256 of the record's kind and payload,
// which are all a profile is read from): a record
// checked when the map takes it is, at the profile's next version, the
// version before, and is not decoded again. It is safe for concurrent use.
func NewMapRule(size int) func(name vmap.Name, prev, rec *log.Record) error {
	c, err := lru.New[[32]byte, recordVersion](max(1, size))
	if err != nil {
		panic(err) // only for a size below 1
	}
	read := func(r *log.Record) (recordVersion, error) {
		h := sha256.New()
		h.Write([]byte(r.Kind))
		h.Write([]byte{0})
		h.Write(r.Payload)
		key := [32]byte(h.Sum(nil))
		if v, ok := c.Get(key); ok {
			return v, nil
		}
		v, err := profileOf(r)
		if err == nil {
			c.Add(key, v)
		}
		return v, err
	}
	return func(name vmap.Name, prev, rec *log.Record) error {
		return checkMapRecord(name, prev, rec, read)
	}
}

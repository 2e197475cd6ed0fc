package portal

import (
	"fmt"
	"time"

	"github.com/intermesh/intermesh/portal/mesh"
)

// A profile version replayed at a portal that never registered the newer
// versions (they were published at another member) must be refused too.
// The local rules see only the local state, so before appending a profile
// the server looks at the replicated versions of the same identifier: a
// replicated version newer than the candidate supersedes it if a chain of
// versions, each signed by the offline key or an online key of the one
// before, leads to it from the candidate. Starting the chain at the
// candidate means a member cannot block a profile with versions it made
// up: only versions the candidate's own keys endorsed count.

// Bounds of the search through one origin's versions of a profile.
const (
	maxSupersedeRecords  = 1024 // versions read
	maxSupersedeVerifies = 64   // signatures checked
)

// checkReplicated refuses a profile whose replicated versions supersede it
// (AlreadyExists, naming the newest such version).
func (s *Server) checkReplicated(field string, e *mesh.Entry) error {
	p := e.Profile()
	if p == nil || s.replicas == nil {
		return nil
	}
	id := e.Identifier.String()
	origins, err := s.replicas.Replicas()
	if err != nil {
		return err
	}
	updated, found, err := s.state.replicaUpdatedOf(origins, id)
	if err != nil {
		return err
	}
	return s.checkReplicatedIn(field, e, origins, updated, found)
}

// checkReplicatedIn is checkReplicated with the Updated of the entry's
// latest version in each origin's replica already read (updated[i], if
// found[i]).
func (s *Server) checkReplicatedIn(field string, e *mesh.Entry, origins []string, updated []*time.Time, found []bool) error {
	p := e.Profile()
	if p == nil {
		return nil
	}
	id := e.Identifier.String()
	for i, origin := range origins {
		if !found[i] || !newer(updated[i], p.Base().Updated) {
			continue
		}
		last, seq, err := s.supersedingVersion(field, origin, e)
		if err != nil {
			return err
		}
		if last != nil {
			return &Error{Status: AlreadyExists, Err: ErrNotNewer,
				Description: fmt.Sprintf("%s: profile %s: this version (Updated %s) is not newer than the registered version (record %d of %s, Updated %s), which its own keys endorsed",
					field, id, formatUpdated(p.Base().Updated), seq, origin, formatUpdated(last.Profile().Base().Updated))}
		}
	}
	return nil
}

// supersedingVersion walks the versions of e's profile in the replica of
// origin, in log order, and follows the chain of versions that start from
// e: a version is taken if it is newer than the last one taken and may
// replace it (mesh.MayReplace: signed by its offline key or an online key
// of the last one). It returns the last version taken beyond e, and its
// record, or nil.
func (s *Server) supersedingVersion(field, origin string, e *mesh.Entry) (*mesh.Entry, uint64, error) {
	r, err := s.replicaLog(field, origin)
	if err != nil {
		return nil, 0, err
	}
	seqs, _, err := s.state.replicaSeqs(origin, e.Identifier.String(), 0, maxSupersedeRecords)
	if err != nil {
		return nil, 0, err
	}
	trust := e
	var last *mesh.Entry
	var lastSeq uint64
	verifies := 0
	for _, seq := range seqs {
		if verifies == maxSupersedeVerifies {
			break
		}
		rec, err := r.Get(seq)
		if err != nil {
			return nil, 0, err
		}
		pe, err := UnmarshalPortalEntry(rec.Payload)
		if err != nil || !newer(pe.Updated, trust.Profile().Base().Updated) {
			continue
		}
		verifies++
		prev := trust
		next, err := mesh.Verifier{Lookup: func(mesh.UDF) (*mesh.Entry, error) { return prev, nil }}.Verify(pe.Entry)
		if err != nil || next.Profile() == nil || mesh.MayReplace(prev, next) != nil ||
			!newer(next.Profile().Base().Updated, prev.Profile().Base().Updated) {
			continue
		}
		trust, last, lastSeq = next, next, seq
	}
	return last, lastSeq, nil
}

package portal

import (
	"fmt"
	"time"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal/mesh"
)

// versions are the versions of the identifiers of one source: a source of
// the history index, and how to find an identifier's latest version.
type versions struct {
	source
	// latest returns the sequence number of id's latest version.
	latest func(id string) (seq uint64, found bool, err error)
}

// localVersions reads versions from the local state and the node's log.
func (s *Server) localVersions() versions {
	return versions{
		source: s.localSource(tagHistory),
		latest: func(id string) (uint64, bool, error) {
			obj, found, err := s.state.object(id)
			return obj.Seq, found, err
		},
	}
}

// replicaVersions reads versions from the replicated state of origin and
// its replica log.
func (s *Server) replicaVersions(origin string, r *log.Replica) versions {
	return versions{
		source: source{
			origin: origin,
			seqs: func(id string, from uint64, limit int) ([]uint64, bool, error) {
				return s.state.replicaSeqs(origin, id, from, limit)
			},
			get: r.Get,
		},
		latest: func(id string) (uint64, bool, error) {
			obj, found, err := s.state.replicaObjectOf(origin, id)
			return obj.Seq, found, err
		},
	}
}

// versionsOf returns where Get finds id, so that no portal serves a
// version older than one it holds (the version order of docs/formats.md):
//
//   - If this portal registered id, the local state, unless a replica holds
//     a newer version that supersedes the registered one (checked as
//     supersedingVersion does: a chain of versions endorsed by the
//     registered version's keys), which is then served.
//   - Otherwise the replica whose latest version is the newest, ties going
//     to the one sequenced last, then to the origin first in name order.
//   - Without any version, a NotFound error.
func (s *Server) versionsOf(id string) (versions, error) {
	local, have, err := s.state.object(id)
	if err != nil {
		return versions{}, err
	}
	if s.replicas == nil {
		if !have {
			return versions{}, Errorf(NotFound, "no entry with identifier %s", id)
		}
		return s.localVersions(), nil
	}
	origins, err := s.replicas.Replicas()
	if err != nil {
		return versions{}, err
	}
	best, bestUpdated, bestTime := "", (*time.Time)(nil), time.Time{}
	var registered *mesh.Entry
	objs, founds, err := s.state.replicaObjectsOf(origins, id)
	if err != nil {
		return versions{}, err
	}
	for i, origin := range origins {
		obj, found := objs[i], founds[i]
		switch {
		case !found:
		case have:
			if !newer(obj.Updated, local.Updated) || (best != "" && !newer(obj.Updated, bestUpdated)) {
				continue
			}
			if registered == nil {
				if registered, err = s.registeredProfile(id); err != nil || registered == nil {
					return s.localVersions(), err
				}
			}
			if last, _, err := s.supersedingVersion("GetRequest.Identifier", origin, registered); err != nil {
				return versions{}, err
			} else if last != nil {
				best, bestUpdated = origin, obj.Updated
			}
		case best == "" || newer(obj.Updated, bestUpdated) ||
			(timesEqual(obj.Updated, bestUpdated) && obj.Time.After(bestTime)):
			best, bestUpdated, bestTime = origin, obj.Updated, obj.Time
		}
	}
	if best == "" && !have {
		return versions{}, Errorf(NotFound, "no entry with identifier %s", id)
	}
	return s.versionsFrom(best)
}

// versionsFrom returns the versions of origin ("" for the local ones).
func (s *Server) versionsFrom(origin string) (versions, error) {
	if origin == "" {
		return s.localVersions(), nil
	}
	r, err := s.replicaLog("GetRequest.SearchConstraints.PageKey", origin)
	if err != nil {
		return versions{}, err
	}
	return s.replicaVersions(origin, r), nil
}

// replicaLog returns this portal's replica of origin, or a NotFound error
// naming field if it holds none.
func (s *Server) replicaLog(field, origin string) (*log.Replica, error) {
	if s.replicas == nil || !s.replicas.HasReplica(origin) {
		return nil, Errorf(NotFound, "%s: this portal holds no replica of the log of origin %q", field, origin)
	}
	r, err := s.replicas.Replica(origin)
	if err != nil {
		return nil, fmt.Errorf("portal: opening the replica of %q: %w", origin, err)
	}
	return r, nil
}

// registeredProfile is registered for a profile identifier; nil if id is
// not a registered profile.
func (s *Server) registeredProfile(id string) (*mesh.Entry, error) {
	u, err := mesh.ParseUDF(id)
	if err != nil {
		return nil, nil
	}
	e, err := s.registered(u)
	if err != nil || e == nil || e.Profile() == nil {
		return nil, err
	}
	return e, nil
}

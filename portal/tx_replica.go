package portal

import (
	"fmt"

	"github.com/intermesh/intermesh/log"
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

// versionsOf returns where Get finds id: the local state if this portal
// registered id (local entries always win), else the replica of the peer
// whose latest version of id was sequenced last (ties go to the origin
// first in name order), else a NotFound error.
func (s *Server) versionsOf(id string) (versions, error) {
	if _, found, err := s.state.object(id); err != nil {
		return versions{}, err
	} else if found {
		return s.localVersions(), nil
	}
	if s.replicas != nil {
		origins, err := s.replicas.Replicas()
		if err != nil {
			return versions{}, err
		}
		var best string
		var bestObj replicaObject
		for _, origin := range origins {
			obj, found, err := s.state.replicaObjectOf(origin, id)
			if err != nil {
				return versions{}, err
			}
			if found && (best == "" || obj.Time.After(bestObj.Time)) {
				best, bestObj = origin, obj
			}
		}
		if best != "" {
			return s.versionsFrom(best)
		}
	}
	return versions{}, Errorf(NotFound, "no entry with identifier %s", id)
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

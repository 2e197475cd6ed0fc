package node

import (
	"errors"
	"net/http"
	"slices"

	"github.com/intermesh/intermesh/merkle"
	"github.com/intermesh/intermesh/portal/tiles"
)

// handler is the node's HTTP handler: the C2SP tlog-tiles read API of its
// log and replicas (package tiles), and the portal for everything else.
func (n *Node) handler() http.Handler {
	mux := http.NewServeMux()
	tiles.New(tiles.Config{
		Own: tiles.Log{
			Checkpoint: func() ([]byte, error) {
				signed, err := n.tree.LatestCheckpoint()
				if errors.Is(err, merkle.ErrNotFound) {
					return nil, nil
				}
				return signed, err
			},
			Hashes:  n.tree,
			Entries: n.log,
		},
		Replica:  n.tileReplica,
		Replicas: n.tileReplicas,
		Cosigned: n.cosignedCheckpoint,
		Logger:   n.logger,
	}).Register(mux)
	if n.witnessing.witness != nil {
		mux.Handle("POST /add-checkpoint", n.witnessing.witness)
	}
	if n.history != nil {
		n.registerFederation(mux)
	}
	mux.Handle("/", n.portal.Handler())
	// The tlog-tiles reads count towards http.max_in_flight as the portal's
	// own read endpoints do. The portal (pattern "/") counts its requests
	// itself, once their body is read. The witness's add-checkpoint, which
	// has a body, is not counted, lest a client trickling its body hold a
	// slot; the connection cap and http.read_timeout bound it.
	limited := n.portal.LimitInFlight(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			limited.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// tileReplicas lists the members whose logs the node replicates.
func (n *Node) tileReplicas() []string {
	im := n.Mesh()
	if im == nil {
		return nil
	}
	var origins []string
	for o := range im.Replicas() {
		origins = append(origins, o)
	}
	slices.Sort(origins)
	return origins
}

// tileReplica is the node's replica of origin's log, served up to the
// latest checkpoint of origin that the replica verified.
func (n *Node) tileReplica(origin string) (tiles.Log, bool) {
	im := n.Mesh()
	if im == nil {
		return tiles.Log{}, false
	}
	if _, ok := im.Replicas()[origin]; !ok {
		return tiles.Log{}, false
	}
	rep, err := n.log.Replica(origin)
	if err != nil {
		return tiles.Log{}, false
	}
	return tiles.Log{
		Checkpoint: func() ([]byte, error) {
			if m := n.Mesh(); m != nil {
				return m.Replicas()[origin].Verified, nil
			}
			return im.Replicas()[origin].Verified, nil
		},
		Hashes:  merkle.NewTree(n.log.DB(), merkle.ReplicaPrefix(origin)),
		Entries: rep,
	}, true
}

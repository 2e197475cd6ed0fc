package intermesh

import "github.com/intermesh/intermesh/log"

// The kinds of record the InterMesh puts in a member's log. The log stores a
// kind as an opaque string; these values are in every leaf already written,
// so they never change.
const (
	KindMasterHash log.Kind = "MasterHash" // a quorum master-hash certificate or vote
	KindEvidence   log.Kind = "Evidence"   // proof that a federation member equivocated
)

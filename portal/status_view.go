package portal

import (
	"context"
	"time"
)

// FederationView gives the federation as the node sees it, for the status
// page and GET /status.json. A Deps.Peers that also implements it adds the
// federation section to both.
type FederationView interface {
	// FederationStatus returns the node's view; nil when it runs alone.
	FederationStatus(ctx context.Context) (*FederationStatus, error)
}

// The states of a grid cell: what the node holds of one member in one round.
const (
	// CellCertified: the round's master-hash certificate covers the
	// member's checkpoint.
	CellCertified = "certified"
	// CellMissing: the round has a certificate, without the member's
	// checkpoint (it was down, cut off or late).
	CellMissing = "missing"
	// CellNoQuorum: this node closed the round but no certificate formed.
	CellNoQuorum = "no-quorum"
	// CellEvidence: the node holds evidence that the member equivocated,
	// from this round on.
	CellEvidence = "evidence"
	// CellUnknown: this node has nothing of the round (it was not running).
	CellUnknown = "unknown"
	// CellPending: the round closed and this node has not committed its
	// outcome yet (the votes are still coming in).
	CellPending = "pending"
	// CellNotMember: the member was not a member of the federation version
	// in force in the round (it joined later).
	CellNotMember = "not-member"
)

// The federation's health as one node sees it: the status page's headline.
const (
	// HealthHealthy: the latest round this node committed is certified
	// with every member's checkpoint.
	HealthHealthy = "healthy"
	// HealthDegraded: it is certified, without some members' checkpoints
	// (Missing says whose, and since when).
	HealthDegraded = "degraded"
	// HealthNoQuorum: no certificate formed (since Since).
	HealthNoQuorum = "no quorum"
	// HealthUnknown: this node committed none of the rounds shown.
	HealthUnknown = "unknown"
)

// Health is the headline of the status page. Example (JSON):
//
//	{"State":"degraded","Round":179575130,
//	 "Missing":[{"Origin":"testnet/node3","SinceRound":179575127,"Since":"2026-11-28T23:05:10Z"}]}
type Health struct {
	// State is one of the Health* constants.
	State string
	// Round is the latest round this node committed, which State
	// describes.
	Round uint64 `json:",omitempty"`
	// Since is when the rounds without a certificate began (no quorum).
	Since *time.Time `json:",omitempty"`
	// Missing are the members whose checkpoints the latest certificate
	// lacks (degraded), each since the first of its consecutive misses.
	Missing []MissingMember `json:",omitempty"`
}

// MissingMember is a member whose checkpoints certificates have lacked
// since round SinceRound (which began at Since).
type MissingMember struct {
	Origin     string
	SinceRound uint64
	Since      time.Time
}

// FederationStatus is the federation as one node sees it. Example (JSON):
//
//	{"Federation":"testnet","Self":"testnet/node0","Quorum":3,"PeriodSeconds":10,"Connected":3,"Gossiping":3,
//	 "Members":["testnet/node0","testnet/node1",...],
//	 "Rounds":[{"Round":179575125,"Signatures":4,"Cells":["certified","certified","missing",...]},...],
//	 "Replicas":[{"Origin":"testnet/node1","Size":120,"Known":120,"LagRecords":0,"LagRounds":0,...,
//	   "MapOpened":true,"MapSize":118,"MapRoot":"kX1u...=","MapMismatches":0}],
//	 "Certificate":{"Round":179575125,"MasterHash":"...","Signers":[...],"Checkpoints":4,"Note":"..."},
//	 "Evidence":[...],"Growth":[{"Time":"2026-11-28T23:00:00Z","Size":118},...]}
type FederationStatus struct {
	Federation    string
	Self          string
	Quorum        int
	PeriodSeconds float64
	Connected     int // members this node is connected to
	Gossiping     int // of those, members it exchanges gossip with on every topic
	Members       []string
	// Health is the headline: healthy, degraded (who, since when) or no
	// quorum, judged from the latest round this node committed.
	Health Health
	// Rounds are the last closed rounds, oldest first; each has one cell
	// per member, in Members order.
	Rounds      []RoundStatus
	Replicas    []ReplicaStatus
	Certificate *CertificateStatus `json:",omitempty"`
	Evidence    []Evidence
	// Backdated are the federation updates the node refused because they
	// would be in force from a round it had certified already: evidence
	// against their signers.
	Backdated []BackdatedUpdate `json:",omitempty"`
	// Growth is the node's log size at its round closes over the last
	// hour, oldest first (from its own checkpoints).
	Growth []GrowthPoint
}

// BackdatedUpdate is the evidence of a backdated federation update: the
// update, certified by the signers of the version before it, and the
// certificate of a round it would rewrite (Round ≥ Effective).
type BackdatedUpdate struct {
	// Version is the version the update would make.
	Version uint64
	// Effective is the round it claims to be in force from.
	Effective uint64
	// Signers are the members who signed it.
	Signers []string
	// Update is the signed update note.
	Update string
	// Round is a round the node certified under the version before, not
	// before Effective.
	Round uint64
	// Certificate is the signed certificate note of Round.
	Certificate string
}

// RoundStatus is one round of the grid.
type RoundStatus struct {
	Round      uint64
	Signatures int // member signatures on its certificate, 0 if none
	Cells      []string
}

// ReplicaStatus is what the node holds of one member's log.
type ReplicaStatus struct {
	Origin        string
	Size          uint64 // records held
	Known         uint64 // records the origin is known to have
	LagRecords    uint64
	VerifiedSize  uint64 // size of the newest checkpoint the replica reproduces
	VerifiedRound uint64
	LagRounds     uint64 // rounds between the last closed round and VerifiedRound
	Untrusted     string `json:",omitempty"`
	// Busy says the replica was being worked on (its map recomputed) when
	// the status was read: Known, the lags, the Verified and Map fields
	// and Untrusted were not read.
	Busy bool `json:",omitempty"`
	// MapOpened says the node's recomputation of the origin's verifiable
	// map is open (it opens when a checkpoint with a map line is first
	// checked); MapSize is how many records it covers and MapRoot its root
	// over them (base64, as in a checkpoint's map line; "" unless opened).
	MapOpened bool
	MapSize   uint64
	MapRoot   string `json:",omitempty"`
	// MapMismatches counts the origin's checkpoints refused since the node
	// started because their map line was not the recomputed root.
	MapMismatches uint64
}

// CertificateStatus is the newest master-hash certificate the node holds.
type CertificateStatus struct {
	Round       uint64
	MasterHash  string // base64
	Signers     []string
	Checkpoints int
	Note        string
}

// GrowthPoint is the log size at a round close.
type GrowthPoint struct {
	Time time.Time
	Size uint64
}

// Package intermesh is the consensus half of the InterMesh: each member's
// libp2p host, the federation's gossip topics and their validators, the
// collection of members' checkpoints per round, the quorum master hash, the
// votes over it and the master-hash certificate, and equivocation evidence.
// It does not build checkpoints (package merkle does), write the log (the
// node appends each RoundResult as a MasterHash record) or replicate
// records (it only creates and size-checks the records topic).
//
// # Using it
//
// The node creates a Mesh with New (federation file, its origin and Ed25519
// key, listen addresses, its Badger DB, a Commit hook), runs Mesh.Run in a
// goroutine until shutdown, then calls Mesh.Close. After closing round r
// into a signed checkpoint note it calls Mesh.PublishCheckpoint(ctx, r,
// note). Once round r's outcome is known, the Mesh calls Commit with a
// RoundResult, at most once per round and before one period has passed
// since the round started, from a goroutine of its own; the node appends
// it to its log before closing round r+1. Certificate, LatestCertificate,
// LatestCheckpoints, Peers and Evidence serve the Status endpoint.
//
// # Rounds
//
// Round r is floor(unix seconds / period), the same everywhere. A round
// starts, for this node, when it first sees a checkpoint (its own or a
// member's) or a vote of the round; its deadlines count from then:
// QuorumGrace (default period/10) after a quorum of checkpoints is held,
// VoteDeadline (period/2) and CommitDeadline (3/4 period).
//
// # Messages
//
// The checkpoint topic /intermesh/<federation>/checkpoint/1 carries signed
// checkpoint notes, exactly as package merkle makes them:
//
//	test/node1
//	4711
//	MzdqO9Y+mZNwioTd/mworli4NQXdH+1xG9kk7FpiOfA=
//	round 1767225600
//	time 1767225601
//	prev baBjNSjeqgFE57BYMV8LdT7AuUUWOnK/lqDRgYD53g0=
//
//	— test/node1 <base64 of 4-byte key hash || Ed25519 signature>
//
// The master topic /intermesh/<federation>/master/1 carries votes. A vote is
// a C2SP signed note whose text is the federation's master origin line, the
// number of checkpoints covered, the base64 master hash M_r and the round:
//
//	test/master
//	4
//	<base64 M_r>
//	round 1767225600
//
//	— test/node0 <base64 of 4-byte key hash || Ed25519 signature>
//
// signed by the voter (key name = its origin). Gossiped, it travels as JSON
// together with the checkpoints it covers, in origin order, so that a member
// that missed a checkpoint gets it with the vote:
//
//	{"round":1767225600,"note":"test/master\n4\n...","checkpoints":["test/node0\n...","test/node1\n...",...]}
//
// This is also the JSON form of a Certificate, which is a vote carrying a
// quorum of signatures. The records topic /intermesh/<federation>/records/1
// is created for record replication; its validator only checks the size.
//
// Pubsub neither signs nor numbers messages (StrictNoSign): every payload is
// signed by its origin, and the message ID is the SHA-256 of the payload.
//
// # Master hash
//
// M_r is the RFC 6962 Merkle tree root (transparency-dev/merkle) over one
// leaf per checkpoint, sorted by origin, where a leaf is the origin's bytes
// followed by the 32-byte SHA-256 of the whole signed checkpoint note (see
// MasterLeaf and MasterHash).
//
// # The vote rule
//
// A member holds, per round, the valid checkpoints of the round of members
// it still counts (see Equivocation). Its vote is always over all of them.
// It votes:
//
//  1. as soon as it holds the checkpoints of every counted member, or
//  2. when it holds a quorum q and another member has voted over exactly
//     the set it holds, or
//  3. when it has held a quorum for QuorumGrace, or
//  4. at VoteDeadline, over whatever it holds (at least one checkpoint).
//
// After voting it votes again, over the new set, whenever the set it holds
// changes, until the round leaves the round window. A member never signs a
// set it does not hold in full.
//
// Why this converges: in the common case every member receives every
// checkpoint within milliseconds and votes once, by rule 1, over the same
// text. When a checkpoint is late or lost on the way to some members, it
// still reaches them inside the votes of the members that have it, so the
// sets held by honest connected members grow to the same union; each growth
// triggers a new vote, so all honest members end up signing the text of
// that union, and a quorum of honest connected members certifies it. Each
// member votes at most once per checkpoint added, so the number of votes
// per round is bounded by the number of members. Two certificates of one
// round can exist (a smaller set certified before a late checkpoint
// arrived, then the larger one); they never disagree about a checkpoint,
// since honest members hold at most one checkpoint per origin and round.
//
// # Certificates and outcomes
//
// Signature lines of votes over the same text are merged; the merged note
// with valid signatures of at least q counted members is the certificate
// (note.Open with the federation's verifiers checks it; VerifyCertificate
// also recomputes M_r from the checkpoints). The round's first certificate
// is committed (RoundResult outcome "certificate"). If none has formed by
// CommitDeadline, the node commits outcome "no-quorum" with its own latest
// vote. A certificate held in memory can still improve afterwards (more
// signatures, or a larger set, per the rule above); Certificate returns the
// best one held.
//
// # Validation
//
// Every topic has a validator. Stateless checks run concurrently in
// pubsub's validator goroutines: size limit, syntax, a valid signature of a
// member (a checkpoint's signer must be its origin), the round within
// RoundWindow (default 2) of the current round. Stateful checks run on the
// round loop: a checkpoint must be new (a repeat is ignored) and consistent
// with the origin's checkpoints held of other rounds: the tree never
// shrinks, the same size has the same root, and the prev line of round r+1
// is the SHA-256 of the round-r note when that note is held. A vote must
// bring a new counted signature. Invalid messages are rejected (gossipsub
// then penalizes the peer that sent them), duplicates and messages of
// members no longer counted are ignored. Only accepted messages count. The
// connection gater admits members only, so a non-member cannot even connect.
//
// # Equivocation
//
// Two different checkpoints of one origin for one round, or two that fail
// the consistency checks, are evidence: the node records both notes
// (Evidence, persisted), stops counting that member's checkpoints and
// signatures, and leaves it out of LatestCheckpoints. Writing an Evidence
// record to the log and gossiping it is left to record replication.
//
// # Persistence
//
// The Mesh keeps the latest checkpoint of each member, the certificates and
// the evidence in the node's Badger DB under keys starting with 'x' (see
// store.go), so that after a restart the consistency checks resume where
// they stopped and Certificate still answers for old rounds.
package intermesh

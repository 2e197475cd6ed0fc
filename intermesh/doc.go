// Package intermesh is the InterMesh: each member's libp2p host, the
// federation's gossip topics and their validators, the collection of
// members' checkpoints per round, the quorum master hash, the votes over it
// and the master-hash certificate; the replication of every member's log
// (records gossip, verified replica logs, the Transfer stream); and
// equivocation evidence. It does not build checkpoints (package merkle
// does) or sequence records (package log does; the node appends each
// RoundResult as a MasterHash record).
//
// # Using it
//
// The node creates a Mesh with New (federation file, its origin and Ed25519
// key, listen addresses, its Badger DB, a Commit hook), runs Mesh.Run in a
// goroutine until shutdown, then calls Mesh.Close. After closing round r
// into a signed checkpoint note it calls Mesh.PublishCheckpoint(ctx, r,
// note). Once round r's outcome is known, the Mesh calls Commit with a
// RoundResult, at most once per round, with a context that expires one
// period after the round's close, from a goroutine of its own; the node
// appends it to its log before closing round r+1. No result is dropped:
// when the committer falls behind (64 jobs queued) the round loop waits
// for it, and at shutdown the committer finishes the queued jobs (within
// 10 s) after the round loop has returned. Certificate, LatestCertificate,
// LatestCheckpoints, Peers and Evidence serve the Status endpoint.
//
// # Rounds
//
// Round r is floor(unix seconds / period), the same everywhere, and it
// closes at its scheduled close (r+1)·period on the round clock
// (Config.Now). Every deadline of round r counts from that close, never
// from when or from whom a message arrived: QuorumGrace (default
// period/10) after a quorum of checkpoints is held (and the round has
// closed), VoteDeadline (period/2) and CommitDeadline (3/4 period) after
// the close.
//
// A checkpoint or vote of round r is early if it arrives before the close
// less ClockSkew (default period/20, at most VoteDeadline). An early
// message of the round in progress (r = the current round) is held, then
// handled when the round closes: at most two checkpoints per member and
// one vote per first signer are held (the latest vote replaces the held
// one), so the buffer is bounded by the federation, whatever members
// send. A message of a round that has not begun (r > the current round) is
// rejected. Neither creates a round, a ballot, a vote, an outcome or a
// no-quorum record before the round closes: a member that publishes its
// checkpoint early cannot make the others vote over it alone, and an
// honest member whose clock runs fast has its checkpoint held, not lost.
// This node's own checkpoint is never held (its clock is the round clock).
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
// A checkpoint is known by the SHA-256 of its note, so a note is taken only
// in that one form: the origin's signature line alone, in canonical
// base64. A copy with another signature line (a cosignature, a stranger's,
// the origin's twice) or loosened base64 still opens with the origin's key
// but is refused, on every topic and as evidence: otherwise anyone holding
// a member's checkpoint could forge a "second checkpoint of the round" in
// its name.
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
// together with the leaves of the checkpoints it covers, in origin order:
// each origin and the base64 SHA-256 of its signed note, what M_r commits to:
//
//	{"round":1767225600,"note":"test/master\n4\n...","covers":[{"origin":"test/node0","hash":"<base64>"},...]}
//
// A vote does not carry the checkpoint notes (they travel on the checkpoint
// topic): a receiver counts its signatures at once, and forms a certificate
// over it only once it holds every note covered. Carrying the notes made a
// vote of 16 members about 4.5 KB and most of a member's traffic; on slow,
// lossy paths that volume, not the vote rule, decided whether rounds
// certified (docs/scaling.md, "Liveness over a wide-area network"). A
// Certificate, a vote carrying a quorum of signatures, does carry the notes
// (see Certificate). The records topic /intermesh/<federation>/records/1
// carries records batches signed by their origin (see Replication), and the
// evidence topic /intermesh/<federation>/evidence/1 carries Evidence JSON
// (see Equivocation).
//
// Pubsub neither signs nor numbers messages (StrictNoSign): every payload is
// signed by its origin, and the message ID is the SHA-256 of the payload.
// Every member publishes to all the members it is connected to (flood
// publish). Checkpoints, votes and evidence are also relayed by the
// members that receive them; records batches are not (their validator
// takes the batch and tells gossipsub to ignore it, which costs the sender
// nothing): relaying them made every member receive each batch about four
// times, and a member its origin cannot reach fetches the records with
// Transfer from another member once a checkpoint of the origin reaches it
// (see Replication). Copies dropped as already seen are counted in
// intermesh_gossip_duplicates_total.
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
// it still counts (see Equivocation). With replication (Config.Log) a
// member's checkpoint is held only once the node's replica of that member
// holds its records and reproduces both its tree root and its map line
// (see Replication): a checkpoint the records do not give, or one without
// a map line (whose map nobody can check), is never voted over or
// certified here, and a certificate forms only over notes held so.
// Its vote is always over all of them. It votes:
//
//  1. as soon as it holds the checkpoints of every counted member, or
//  2. when it holds a quorum q and another member has voted over exactly
//     the set it holds, or
//  3. when it has held a quorum for QuorumGrace and no other checkpoint of
//     the round awaits its replica's verification, or
//  4. at VoteDeadline, over whatever it holds (at least one checkpoint).
//
// After voting it votes again, over the new set, whenever the set it holds
// grows, until the round leaves the round window, but at most once per
// QuorumGrace (at once when the set becomes every counted member's, or when
// another member voted over exactly that set): the checkpoints that arrive
// within that time are covered by one re-vote, not one each. A member never
// signs a set it does not hold in full, and never certifies one either.
//
// Endorsement: from VoteDeadline on, while it holds no certificate of the
// round, a member also signs the text of any other member's vote over at
// least a quorum of checkpoints that it holds every one of (and none of a
// member that equivocated), at most maxTextsPerSigner texts in all. With
// replication a member whose replica of some origin lags holds fewer
// checkpoints than the others at the deadline and votes over fewer; the
// others sign its smaller set too, so a quorum split between two sets
// still certifies the one they all hold.
//
// Why this converges: in the common case every member receives every
// checkpoint within milliseconds and votes once, by rule 1, over the same
// text. When a checkpoint is late or lost on the way to some members, it
// still reaches them by gossipsub's retransmission or, after a member
// reconnects, by resync (see Connections), so the sets held by honest
// connected members grow to the same union; each growth
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
// member (a checkpoint's signer must be its origin), the round at most
// RoundWindow (default 2) rounds before the current round and not after
// it. Stateful checks run on the round loop: early messages are held (see
// Rounds); a checkpoint must be new (a repeat is ignored) and consistent
// with the origin's checkpoints held of other rounds: the tree never
// shrinks, the same size has the same root, and the prev line of round r+1
// is the SHA-256 of the round-r note when that note is held. A vote must
// bring a new counted signature, checked before anything is stored: a
// vote signed only by members no longer counted, or repeating signatures
// held, changes nothing (no round, no ballot, no checkpoint), and a member
// counts on at most n+1 vote texts per round (maxTextsPerSigner, n the
// members; an honest member signs at most one per checkpoint it adds).
// Invalid messages are rejected (gossipsub then penalizes the peer that
// sent them), duplicates and messages of members no longer counted are
// ignored, and valid votes that bring nothing cost their sender score
// (see Peer scoring). Only accepted messages count. The connection gater
// admits members only, so a non-member cannot even connect.
//
// # Replication
//
// With Config.Log the Mesh replicates. Every PublishInterval (250 ms by default) it
// reads the records its log committed since the last tick (it polls
// Log.Size and reads with Log.Range: a log hook could not publish, since a
// transaction may still fail) and gossips them in batches of at most 64 KiB
// of leaves, at most 16 batches a tick; a node more than 8192 records
// behind skips ahead and leaves the rest to Transfer. A batch is binary,
// signed by its origin's key (see recordsBatch in records.go for the exact
// layout):
//
//	01 | origin (2-byte length) | first seq (8) | count (4) |
//	count × (4-byte length | leaf encoding) | Ed25519 signature (64)
//
// over "intermesh records batch v1\x00" || federation || 0x00 || the bytes
// before it. The validator rejects a batch that is not signed by its
// origin, a member, or whose leaves are not that origin's contiguous
// records from first; valid batches of other members are appended to the
// origin's replica log (log.Replica) by one goroutine per origin, so the
// origins' commits share Badger's writes and fsyncs. Gossipsub validates
// messages concurrently, so an origin's batches arrive out of order: a
// batch that starts past the replica's end waits in a reorder buffer for
// the batches before it, and batches that continue each other are
// appended together (up to 4096 records). Per origin, the queue and the
// reorder buffer each hold at most 128/(members-1) batches (at least 8,
// each under 1 MiB); a batch beyond that is dropped (from the buffer, the
// one furthest ahead) and its records fetched.
//
// Gossip is not reliable (it drops silently under load), so every gap is
// repaired with the Transfer stream (TransferProtocol, /intermesh/transfer/1,
// documented there): a batch that starts past the replica's end or a
// dropped batch wakes the origin's fetcher at once; records announced by a
// checkpoint or a batch are fetched if they are still missing a second
// later (gossip is usually delivering them: fetching them at once would
// move every record twice under load). The fetcher pages everything
// missing from the origin if it is connected, else from any connected
// member (each serves its own log and its replicas), fetching the next
// page while it appends the current one, and retrying every second while
// records are known to be missing.
// A page relayed by a member other than the origin counts only as far as a
// checkpoint of the origin proves it: its records are taken up to the
// largest checkpoint of the origin not yet verified that the page reaches,
// after checking that the replica's tree extended with them has the root
// of every such checkpoint (a dry run over the tree's compact range);
// records past it are dropped and fetched again once a checkpoint covers
// them, and the relay's claimed size is ignored (the records the replica
// waits for grow only with what the origin signed: its checkpoints and
// batches). So every record a relay adds is proven by the origin's
// signature. A page that fails, or that breaks the page limits asked for,
// is dropped, and the relay is logged, counted
// (intermesh_relay_pages_rejected_total), penalized (see Peer scoring) and
// not asked for that origin's records for a minute; the origin is never
// blamed for it. A replica that stopped matching its origin (below) is
// repaired from the origin, without a restart, once the origin's records
// reproduce its checkpoints again (repair.go): the replica is cut back to
// the last record it shares with the origin's signed history (records and
// Merkle tree in one transaction, then Config.ReplicaReset rebuilds what
// the node derived from it) and filled again from the origin.
//
// Each accepted checkpoint of a member is checked against its replica as
// soon as the replica holds cp.Size records: the root the replica's tree
// (merkle.ReplicaPrefix) recomputes at cp.Size must be the signed root.
// Every verified checkpoint is thereby consistent with the earlier ones
// (they are roots of one append-only tree), and the replica's tree gives
// the consistency proof between two of them (ConsistencyProof, used by
// Status). A root that does not match, or a signed batch or a page from the
// origin that conflicts with a record held (log.ForkError), makes the
// replica untrusted: it is logged, counted (intermesh_replica_inconsistent_total),
// shown in Replicas, and no longer appended to until it is repaired.
//
// A checkpoint with a map line (merkle.Checkpoint.Map) is verified only if
// the line is also the root of the verifiable map (package vmap) the node
// recomputes from the replica's first cp.Size records (replica_map.go).
// The map is derived state, held in memory, advanced as checkpoints are
// verified (in size order) and forgotten above the cut when the replica is
// cut back. A map line the records do not give leaves the checkpoint
// unverified, is logged and counted (intermesh_map_mismatches_total), and
// leaves the replica trusted: its records are the ones the origin's tree
// root signs.
//
// At start the node catches up before it votes: it waits (within
// CatchUpTimeout, default half a period) for connections to a quorum of
// members less itself, pulls every replica up to what its source holds, and
// only then applies the vote rule.
//
// # Equivocation
//
// Two different checkpoints of one origin for one round, or two that fail
// the consistency checks (a tree that shrank, two roots or two map lines at
// one size, a prev line that skips the previous round's checkpoint), are
// evidence: the node
// records both notes (Evidence, persisted), appends an Evidence record (its
// JSON, Identifier = origin) to its own log once, gossips it on the
// evidence topic, stops counting that member's checkpoints and signatures,
// and leaves it out of LatestCheckpoints. The evidence validator accepts
// only evidence that VerifyEvidence accepts, which anyone can run offline
// with the federation file; a member that receives it does the same as if
// it had found it (except gossiping it again: pubsub relays it). The
// Evidence JSON is
//
//	{"origin":"test/node3","reason":"tree shrank from 4 (round 1767225600) to 1 (round 1767225601)",
//	 "notes":["test/node3\n4\n...","test/node3\n1\n..."]}
//
// A member that restarts with a rewritten log is caught by its first
// checkpoint. If the rewritten tree is not larger than the one the others
// hold a checkpoint of, the two notes conflict on their face. If it grew
// past it, the notes alone prove nothing, so the node proves the fork with
// the origin's own records (consistency evidence): a checkpoint c2 (size
// s2, root r2) of a member that its replica does not reproduce (or that
// arrives once the replica is untrusted), while the replica did verify an
// earlier checkpoint c1 (s1 < s2, root r1), wakes that member's fork
// investigator (one goroutine per member, one investigation at a time,
// each within forkTimeout). It fetches records 0 to s2-1 over Transfer from
// the origin itself (its history as it serves it now; at most
// maxForkLeaves, into memory as leaf hashes), checks that their root is
// r2 (if not, the origin serves something other than what it signed: that
// is logged and counted, not evidence), and computes their root r1' at s1.
// If r1' ≠ r1 for some verified c1, the tree the origin signed at s2 is not
// an extension of the one it signed at s1, and the evidence carries r1'
// ("root1") and the RFC 6962 consistency proof from r1' at s1 to r2 at s2
// ("proof", built by merkle.LeafConsistencyProof), both base64, with the
// smaller tree's note first and a reason starting with "not-consistent":
//
//	{"origin":"test/node3","reason":"not-consistent: the tree of size 24 (round 1767225610) has root c880… at size 2, not the root 2a08… of round 1767225607",
//	 "notes":["test/node3\n2\n...","test/node3\n24\n..."],
//	 "root1":"yIA6a3z3hq1KV8/3tQtdOA9DvXG2ZQf6k5Y1nTOBVo4=",
//	 "proof":["...","..."]}
//
// VerifyEvidence checks it with the notes and the federation file alone:
// both notes signed by the origin's key, 0 < s1 < s2, root1 ≠ r1, and
// proof.VerifyConsistency(s1, s2, root1, r2) of transparency-dev/merkle; so
// barring a SHA-256 collision the origin signed two trees of which the
// later does not extend the earlier. The investigation never blocks the
// round loop: it hands the evidence to it like a validator does. A replica
// that stops matching its origin is reported (see Replication) but is not
// evidence by itself: what a replica holds is not all signed by its origin.
//
// # Bounds
//
// What a member's messages can make this node hold, at most (n members):
//
//   - rounds: the round window (RoundWindow+2 rounds) of closed rounds, each
//     created only by an accepted message; early messages of the round in
//     progress: 2 checkpoints per member and 1 vote per first signer;
//   - ballots: only for votes that add a counted signature, at most n+1
//     texts per member and round, so n·(n+1) per round;
//   - Transfer pages read: the max_entries and max_bytes the client asked
//     for (20,000 records, 16 MiB, plus one leaf of at most
//     log.MaxLeafLen bytes); a frame past them fails the page before it
//     is read;
//   - Transfer streams served: maxTransferStreams (4) of a member at once,
//     each for at most transferTimeout (30 s); more are answered "busy" at
//     once and counted (intermesh_transfer_refused_total). The client
//     opens at most 2 at once to a member, so it is never refused;
//   - fork investigations: one at a time per member, within maxForkLeaves
//     leaf hashes, allocated as the origin's records arrive (starting from
//     the largest checkpoint verified here, not from the size claimed);
//   - replication: 256 gossiped batches and 256 checkpoints waiting, 16
//     pending and 16 verified checkpoints per member;
//   - penalties: one decaying number per member.
//
// # Peer scoring
//
// Gossipsub scores every member: invalid messages (rejected by a
// validator) count against it in every topic, and the Mesh adds an
// application-specific penalty (score.go) for valid but useless votes (no
// new counted signature) and for Transfer pages that lie or break the page
// limits. Penalties halve every 10 s; a member whose score falls below
// -400 (graylist) has all its gossip ignored until it recovers. Scores are
// exported (intermesh_peer_score, intermesh_peers_graylisted,
// intermesh_peer_penalties_total, intermesh_graylistings_total) and a
// member crossing the threshold is logged. Held early messages cost
// nothing. A member's scoring counters outlive its connection for 10
// minutes, so reconnecting does not clear them.
//
// # Connections
//
// Each node dials every other member it is not connected to (backing off
// from 250 ms to 30 s), and a watchdog checks every 250 ms that each
// connected member is also a gossip peer on every topic. gossipsub learns a
// peer's topics only from the first message of the peer's stream and
// forgets them when either stream between the two fails; a stream that
// fails while the connection stays up (a restarted member's stale QUIC
// connection reset after its new one is up, a duplicate connection closed)
// would otherwise leave the two sending each other nothing for as long as
// the connection lasts. A connected member missing from a topic for 3 s
// (10 s after a new connection opened), or still missing 2 s after
// gossipsub reported it leaving one, has its connection closed and
// redialled (intermesh_gossip_reconnects_total); each further close of a
// member that does not come back waits twice as long, up to 48 s. A
// graylisted member is left alone. GossipPeers lists the members gossip
// flows with.
//
// Gossip reaches the members connected when a message is published (and,
// for about 3 s after, those that ask for it), so a member cut off around a
// round's close (restarted, partitioned, or reconnected by the watchdog)
// would miss that round's checkpoints for good, and the others its own.
// Each time a member joins a node's checkpoint topic, the node therefore
// sends it, on a stream of ResyncProtocol, every checkpoint it holds of the
// rounds whose commit deadline has not passed and its own latest vote of
// each; the receiver checks them exactly as gossip of their topics (one
// stream per member at a time, at most (RoundWindow+3)·(members+1) frames
// within the topics' size limits; a rejected message ends the stream and
// costs the sender as a bad relay). intermesh_resyncs_total counts them.
//
// # Persistence
//
// The Mesh keeps the latest checkpoint of each member, the certificates,
// the evidence and the index of each Evidence record in the node's Badger
// DB under keys starting with 'x' (see store.go), so that after a restart
// the consistency checks resume where they stopped and Certificate still
// answers for old rounds. The index of an Evidence record is written by
// EvidenceIndexer, a log.Indexer the node registers, in the transaction
// that appends the record, and a second Evidence record of the same
// evidence is refused: a crash never leaves a record the node would append
// again. Replica logs are the log's (log.Replica).
package intermesh

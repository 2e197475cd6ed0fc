// Package log is intermesh's append-only log of opaque records, stored in
// Badger.
//
// The log knows a record's sequence number, time, origin and leaf encoding,
// and the hooks (indexers) its callers register; it does not know what the
// records mean. Each caller defines the kinds of record it appends (a Kind
// is a string the log stores as given) and what their payloads hold: the
// portal its transactions, the InterMesh its certificates and evidence, the
// node its federation history. A record's two labels, Identifier and
// Account, are opaque to the log too; they keep their names because they
// are fields of the leaf encoding (docs/formats.md), which auditors and the
// verifiable map read by those names.
//
// The log owns records, their dense sequence numbers (from 0, issued in commit
// order; a record's sequence number is its leaf index in the Merkle tree),
// paging with the SearchConstraints of the Mesh Portal Protocol, group commit
// and crash safety. It does not own the Merkle tree (package merkle) or the
// portal's materialized state (package portal): both are kept by an Indexer or
// BatchIndexer that the log calls inside the very Badger transaction that
// commits the records, so derived state can never disagree with the log.
//
// The leaf encoding of a record (what is hashed into the tree) is documented on
// Record.MarshalLeaf; auditors recompute leaf hashes from it. The Badger key
// layout is documented in keys.go: the log owns the keys starting with
// KeyPrefix (the list of every prefix of the store: see internal/keyspace).
//
// # Group commit and durability
//
// Append hands its record to a single sequencer goroutine, which takes every
// record queued while the previous transaction was being synced (up to
// Options.MaxBatch), assigns sequence numbers and times, runs the indexers,
// and commits them in one Badger transaction with SyncWrites on: one sync for
// the whole batch, since Badger does not merge the syncs of concurrent
// transactions. Append returns only after that commit, so an acknowledged
// record survives kill -9 and power loss. A batch too big for one Badger
// transaction is split. Record times come from the clock at sequencing, in
// UTC, and never go backwards, so Range finds a time by binary search.
//
// # Crash safety
//
// The log's size (its head) is written in the same transaction as the
// records and the indexers' derived state, and Badger replays a transaction
// whole or not at all, so after a crash the log reopens with no holes, every
// acknowledged record present, and derived state matching the records. Open
// checks the head against the last record (ErrCorrupt if they disagree) and
// deletes records stored past the head, which no acknowledged write can have
// left. TestCrashKillWriter checks all this by SIGKILLing a writer process
// under load, INTERMESH_CRASH_KILLS times.
//
// # Replica logs
//
// Log.Replica(origin) is the node's copy of a peer's log, in the same
// database under the origin's namespace: the origin's records with the
// origin's sequence numbers and times, never reassigned. Replica.Append
// takes contiguous records of that origin, checks the ones already held
// byte for byte (a difference is a *ForkError, equivocation evidence),
// refuses gaps (ErrGap), and commits the new ones with the replica's own
// indexers (Options.ReplicaIndexers: the portal's replicated state, the
// replica's Merkle tree) and head in one durable transaction, as the
// sequencer does for the node's log. Log.Replicas lists the origins held,
// also after a restart.
package log

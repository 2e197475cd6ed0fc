// Package portal serves the Mesh Portal Protocol (JSON over HTTP at
// /.well-known/mmm/, seeds 001 §7 and 004 §3) on top of a node's log, and
// keeps the portal's materialized state. Its Go client is portal/client; the
// Mesh data model (profiles, envelopes, UDFs) is portal/mesh.
//
// It owns: the protocol messages (shared with the client), request decoding
// and limits (body and entry size, a bounded per-client rate limiter, the
// HTTP server's timeouts and its caps on connections and requests in flight:
// overload.go), the transactions, the materialized state (accounts, the
// latest version of every profile and escrow entry, pending device
// connections) and the operator endpoints GET /checkpoint, /healthz,
// /metrics and the status page at /. It does not
// own the log, the Merkle tree or checkpoints (packages log and merkle), nor
// replication (package intermesh).
//
// # Replicated entries
//
// The node keeps a replica log of each peer's log (log.Replica), filled by
// the InterMesh. State.ReplicaIndexer(origin) is the indexer of the replica
// of origin: it keeps the latest version and the versions of every profile
// and escrow entry of that origin in a key space of its own (replica.go),
// and never rejects a record, since the replica mirrors what the origin
// admitted, except that its latest version of an identifier never goes
// back to an older one. The local rules read only the local state, but
// before registering a profile version the server refuses one that
// replicated versions endorsed by its own keys supersede (supersede.go).
// Get answers with the newest version the portal holds (see versionsOf),
// flagging replicated items Replicated with their Origin; Get by Account
// stays local, account names being the portal's own. Transfer with an
// Origin pages through the replica of that origin. The node wires it with
// log.Options.ReplicaIndexers:
//
//	ReplicaIndexers: func(origin string) log.ReplicaOptions {
//		return log.ReplicaOptions{
//			Indexers:      []log.Indexer{state.ReplicaIndexer(origin)},
//			BatchIndexers: []log.BatchIndexer{merkle.NewTree(nil, merkle.ReplicaPrefix(origin))},
//		}
//	},
//
// # Writes
//
// Every state-changing transaction verifies its signed input first (package
// mesh, outside the log's sequencer), then appends one record whose payload
// is a PortalEntry: the Mesh object as received plus what was verified about
// it (signer, keys). State implements log.Indexer: inside the transaction
// that commits the record it makes the cheap checks that depend on the
// current state (account free or open, signer is a registered key of the
// profile) and writes the new state, or rejects the record. Nothing is
// written for a request that fails, and the state is always the fold of the
// log (State.Rebuild replays it).
//
// # Wiring
//
//	state := portal.NewState()
//	l, _ := log.Open(ctx, log.Options{Dir: dir, Indexers: []log.Indexer{state}, ...})
//	srv, _ := portal.New(portal.Config{...}, portal.Deps{Log: l, State: state, ...})
//	hs := srv.HTTPServer(nil)            // the configured timeouts
//	ln, _ := net.Listen("tcp", addr)
//	hs.Serve(srv.LimitListener(ln))      // the connection cap
//
// # Choices the drafts leave open
//
//   - Publish needs an account of this portal (seeds 001 §7.7, 004 §3.7:
//     accounts before profiles): PublishRequest.AccountID. The account's own
//     profile, or the ProfileMesh its ProfileAccount names, needs nothing
//     more; any other entry needs an AccountProof (proof.go) of the account
//     and stays bound to it. A new profile must be signed by its offline key;
//     an update by the offline key or an online key of the registered
//     version, and it must be newer by its signed Updated (docs/formats.md,
//     "Profile versions"), here and against the versions replicated from
//     peers (supersede.go). Escrow entries are never replaced. A new entry
//     answers SuccessCreated, an update SuccessUpdated.
//   - ConnectPending needs an AccountProof signed by a key of the account's
//     profile; page keys are MACed with a per-node secret (paging.go).
//   - Account names are ASCII letters, digits and ".-_+@" (one '@' at most),
//     compared in lower case. CreateAccount binds the name to a ProfileAccount
//     or ProfileMesh, registered in the same record. A portal with
//     Config.Domains (its member's domains in the federation file) is the
//     home of NAME@DOMAIN for those domains only: it refuses any other name,
//     one without '@' included, with ClientUnauthorized, before logging
//     anything, and ValidateAccount reports it not valid (domains.go).
//   - DeleteAccount needs a Proof (a "DeleteAccount" entry
//     {"Account":..., "Signed":<time>} signed by a key of the account's
//     profile) or the operator's admin bearer token. A proof signed before
//     the account was created is refused: proofs are public in the log, and
//     must not delete a later account of the same name.
//   - ConnectStart and ConnectComplete need the request's ParentUDF to be the
//     account's profile; the result must be signed by that profile's offline
//     key or one of its online (administration) keys.
//   - Get without Multiple returns the latest version; with Multiple every
//     version, oldest first. Full adds Index, Time, Kind, Account, Origin and
//     Leaf (log.Record.MarshalLeaf) to each item.
//   - Transfer returns the whole payload of each record with its Index and
//     Leaf; it accepts From, the first log index, besides SearchConstraints.
//   - Status codes: 400 ClientBadRequest, 413 TooLarge and 429 TooManyRequests
//     are added for malformed and over-limit input; the HTTP status is 200 for
//     every 2xx and the protocol status otherwise.
package portal

// Package vmap is the verifiable map of a log: for every name that some
// record of the log names, the latest record that set it and a hash chain of
// all of them, in a prefix tree whose root a checkpoint can commit to. A
// lookup proof under that root shows either a name's current value or that
// the name is absent. (Go cannot name a package map, hence vmap.)
//
// The map is a pure function of a log's records: anyone holding the records
// recomputes it and gets the same root. It proves "latest" and "absent"
// within one log only; which log to ask is the client's choice.
//
// # Keys
//
// A name lives in one of three namespaces, and its key is
//
//	key = SHA-256("intermesh/map/v1/<namespace>" || 0x00 || name)
//
// for the namespaces profile (profile identifiers), escrow (escrow
// identifiers) and account (account names). The name is taken byte for byte:
// checking that it is in its canonical form is the caller's business, not
// the map's. One name gives a different key in each namespace.
//
// # Values and history
//
// A key's value is 80 bytes, integers big-endian:
//
//	latest_index     uint64    index of the latest record that set the key
//	latest_leaf_hash 32 bytes  that record's RFC 6962 leaf hash, SHA-256(0x00 || leaf)
//	count            uint64    how many records set the key
//	history          32 bytes  C_count below
//
// where C_0 is 32 zero bytes and, for the k-th record (index_k, leaf_hash_k)
// that set the key, in log order,
//
//	C_k = SHA-256("intermesh/map/v1/history" || 0x00 || C_(k-1) || uint64 index_k || leaf_hash_k)
//
// so a client that fetches the count records and recomputes the chain knows
// it holds every version, in order, with none added. The tree commits to a
// value through its hash, SHA-256("intermesh/map/v1/value" || 0x00 || value).
//
// # Which records set which keys
//
// The map over the first S records of a log holds one key per name that some
// of those records name (Sets, LogMap):
//
//   - a Profile record with a non-empty identifier sets the profile key of
//     that identifier;
//   - an Account record with a non-empty identifier sets the profile key of
//     that identifier (creating an account registers a version of the
//     profile it binds), and with a non-empty account field the account key
//     of that account; a record that closes an account or only changes its
//     status carries an empty identifier, so it sets the account key alone;
//   - an Escrow record with a non-empty identifier sets the escrow key of
//     that identifier.
//
// Other kinds set nothing, and kind names match exactly. When one record
// sets two keys, both histories take it. A record's index is its position in
// the log, which its seq must equal; a leaf that does not parse, or whose
// text fields are not UTF-8, is never logged, and the map of a log holding
// one is refused.
//
// # Tree
//
// The tree is a binary prefix tree over the keys, read most significant bit
// first, in the style of the IETF KEYTRANS prefix tree without its VRF and
// commitments (the logs are public, so nothing needs hiding). For a set P of
// (key, value hash) pairs:
//
//	h(P) = 32 zero bytes                          if P is empty
//	h(P) = SHA-256(0x02 || key || value_hash)     if P holds one pair (a leaf)
//	h(P) = SHA-256(0x03 || h(P0) || h(P1))        otherwise
//
// where P0 and P1 are the pairs whose next key bit is 0 and 1. The map's
// root is h of all its pairs: 32 zero bytes for an empty map, and a subtree
// holding one key is that key's leaf at whatever depth it sits, never a
// chain of one-sided interior nodes.
//
// # Lookup proofs
//
// A lookup proof for a key under a root (Tree.Prove, Verify) gives the depth
// d at which the search along the key's bits ended, the d sibling hashes from
// the root down, and how the search ended: Inclusion, with the key's value;
// OtherLeaf, an absence proof carrying a different key that shares the first
// d bits and its value hash; or Empty, an absence proof where the subtree at
// depth d on the key's path is empty. The verifier recomputes the root from
// that end node up along the key's bits and compares. The key is never taken
// from the proof: the verifier computes it from its own query. A proof has a
// unique binary encoding (Proof.MarshalBinary, ParseProof) in which empty
// siblings cost one bit.
//
// A Tree holds in memory the hashes of the prefix tree's top 16 levels, a
// dense array down to 65,536 buckets picked by a key's first 16 bits, and
// keeps each bucket's entries (key and value, sorted by key) in a Store: in
// memory (MemStore) for tests and offline checkers, or in a Badger
// database (BadgerStore) for a node, which commits its own log's map at an
// epoch close in memory and writes it to Badger after the close
// (BufferedStore).
// Setting keys marks their buckets stale, and the root or a proof
// recomputes only the stale buckets and their paths. Commit saves the
// changed buckets under a new version, and proofs stay possible under each
// of the last few committed versions (ProveAt), each of which keeps only
// the nodes of the top that changed after it.
package vmap

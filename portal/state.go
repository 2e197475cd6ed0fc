package portal

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/intermesh/intermesh/internal/keyspace"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal/mesh"
)

// Sentinel errors of the materialized state. The indexer returns them
// wrapped in an *Error carrying the protocol status, so both errors.Is and
// errors.As work on what log.Append returns.
var (
	ErrAccountExists   = errors.New("account already exists")
	ErrAccountNotFound = errors.New("no such open account")
	ErrNotAuthorized   = errors.New("signer is not authorized")
	ErrConflict        = errors.New("identifier already holds a different object")
	ErrNoPending       = errors.New("no pending connection request")
	ErrPending         = errors.New("a connection request is already pending")
	ErrNotNewer        = errors.New("not newer than the registered version")
	ErrResultRecorded  = errors.New("connection result already recorded for an earlier request")
)

// StatePrefix is the first byte of every Badger key the portal state writes.
// The log ('L') and the Merkle tree use other first bytes; the list of every
// prefix of the store is in internal/keyspace.
const StatePrefix = keyspace.PortalState

// Key layout, all under StatePrefix. acct is the canonical (lower-case)
// account name and id an identifier (UDF); neither may contain 0x00, which
// the server's validation ensures.
//
//	's' 'a' acct                  → accountState (JSON)
//	's' 'p' id                    → objectState (JSON): latest version of a profile or escrow entry
//	's' 'h' id 0x00 seq(8)        → empty: every version of id, in log order
//	's' 'c' acct 0x00 device      → connState (JSON): latest connection request of a device
//	's' 'q' acct 0x00 seq(8)      → device: pending requests of an account, in log order
//	's' 'm' acct 0x00 seq(8)      → empty: CatalogedPublications published for an account (its messages), in log order
//	's' 'R' ...                   → replicated state of peers (see replica.go)
const (
	tagAccount = 'a'
	tagObject  = 'p'
	tagHistory = 'h'
	tagConn    = 'c'
	tagQueue   = 'q'
	tagMessage = 'm'
)

// accountState is the materialized state of an account.
type accountState struct {
	AccountID  string    // as first spelled by the client
	ProfileUDF string    // the profile the account is bound to
	Status     string    // Open or Closed
	Seq        uint64    // the last Account record
	Created    time.Time // when the account was (last) created
	// MeshProfile is the ProfileMesh that the account's ProfileAccount
	// names, if any: it is published for the account too.
	MeshProfile string `json:",omitempty"`
}

// objectState is the materialized latest version of a profile or escrow entry.
type objectState struct {
	Seq        uint64   // record holding the latest version
	Kind       log.Kind // Profile, Escrow (or Account, for a profile bound by CreateAccount)
	Type       string   // entry type, e.g. ProfileMesh
	OfflineKey string   `json:",omitempty"`
	OnlineKeys []string `json:",omitempty"`
	// Updated is the version's signed Updated time (nil if it has none).
	Updated *time.Time `json:",omitempty"`
	// Account is the account the version was published for.
	Account string `json:",omitempty"`
}

// connState is the materialized state of a device's connection request.
type connState struct {
	RequestSeq uint64
	ResultSeq  uint64 `json:",omitempty"`
	Done       bool   `json:",omitempty"`
	// Answered are the results that answered the device's requests so
	// far (resultDigest), so that none answers a later request: a result
	// names the device and the profile, not the request, and anyone can
	// read it (ConnectStatus).
	Answered []string `json:",omitempty"`
}

// resultDigest identifies a connection result by what its signer signed:
// the SHA-256 of its envelope's payload, in hex. (The entry's JSON could
// be re-encoded; the signed payload cannot.)
func resultDigest(payload []byte) string {
	h := sha256.Sum256(payload)
	return hex.EncodeToString(h[:])
}

// State is the portal's materialized state: accounts, the latest version of
// every profile and escrow entry, the versions of each, and pending
// connection requests. It implements log.Indexer: the log calls Index for
// every record inside the transaction that commits it, so the state never
// disagrees with the log. Index makes only cheap checks on facts the server
// verified before appending (signatures are never checked here) and rejects
// a record by returning an *Error.
//
// Create it with NewState, pass it in log.Options.Indexers, then bind it to
// the log's database (New does that with Log.DB).
type State struct {
	db atomic.Pointer[badger.DB]

	latestMu sync.Mutex
	// latest holds, per origin, the Updated of the latest replicated
	// version of the identifiers indexed last (see replicaIndexer).
	latest map[string]*lru.Cache[string, *time.Time]

	// keys are the authority keys of registered account profiles, by
	// the record they were read from (Server.accountKeys).
	keys *keyCache
}

// NewState returns a State not yet bound to a database; Index works without
// one, the read methods need Bind.
func NewState() *State { return &State{keys: newKeyCache(keyCacheSize)} }

// Bind sets the database the read methods use (and forgets the keys read
// from another).
func (s *State) Bind(db *badger.DB) {
	s.keys.purge()
	s.db.Store(db)
}

func stateKey(tag byte, parts ...string) []byte {
	k := []byte{StatePrefix, tag}
	for i, p := range parts {
		if i > 0 {
			k = append(k, 0)
		}
		k = append(k, p...)
	}
	return k
}

func seqKey(tag byte, name string, seq uint64) []byte {
	k := append(stateKey(tag, name), 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

func getJSON(txn *badger.Txn, key []byte, v any) (bool, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("portal: reading state: %w", err)
	}
	err = item.Value(func(b []byte) error { return json.Unmarshal(b, v) })
	if err != nil {
		return false, fmt.Errorf("portal: decoding state %q: %w", key, err)
	}
	return true, nil
}

func setJSON(txn *badger.Txn, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("portal: encoding state: %w", err)
	}
	return txn.Set(key, b)
}

// Index implements log.Indexer. It checks rec against the current state and
// writes the new state; it writes nothing when it returns an error.
func (s *State) Index(txn *badger.Txn, rec *log.Record) error {
	switch rec.Kind {
	case KindAccount, KindProfile, KindEscrow, KindConnectionRequest, KindConnectionResult:
	default:
		return nil // InterMesh records (MasterHash, Evidence) have no portal state
	}
	pe, err := UnmarshalPortalEntry(rec.Payload)
	if err != nil {
		return Errorf(ClientBadRequest, "record %d: %w", rec.Seq, err)
	}
	switch rec.Kind {
	case KindAccount:
		if pe.Status == AccountClosed {
			return s.indexDelete(txn, rec, pe)
		}
		return s.indexCreate(txn, rec, pe)
	case KindProfile, KindEscrow:
		if err := s.checkObject(txn, rec, pe); err != nil {
			return err
		}
		if err := s.writeObject(txn, rec, pe); err != nil {
			return err
		}
		return s.indexMessage(txn, rec, pe)
	case KindConnectionRequest:
		return s.indexConnectStart(txn, rec)
	default:
		return s.indexConnectComplete(txn, rec, pe)
	}
}

// checkObject applies the update rules of a profile or escrow entry: a new
// profile must be signed by its own offline key; an update by the offline
// key or an online key of the registered version, and it must be newer
// (checkNewer); an escrow entry is never replaced. A published entry
// (record kinds Profile and Escrow) must also be bound to an open account
// of this portal (checkBinding).
func (s *State) checkObject(txn *badger.Txn, rec *log.Record, pe *PortalEntry) error {
	var cur objectState
	found, err := getJSON(txn, stateKey(tagObject, rec.Identifier), &cur)
	if err != nil {
		return err
	}
	if rec.Kind != KindAccount {
		if err := s.checkBinding(txn, rec, pe, found, &cur); err != nil {
			return err
		}
	}
	escrow := rec.Kind == KindEscrow
	switch {
	case !found && escrow:
		return nil
	case !found:
		if pe.Signer != rec.Identifier || pe.OfflineKey != rec.Identifier {
			return &Error{Status: ClientUnauthorized, Err: ErrNotAuthorized,
				Description: fmt.Sprintf("a new profile must be signed by its own offline key %s, not %s", rec.Identifier, pe.Signer)}
		}
		return nil
	case escrow || cur.Kind == KindEscrow:
		return &Error{Status: AlreadyExists, Err: ErrConflict,
			Description: fmt.Sprintf("identifier %s is already published and cannot be replaced", rec.Identifier)}
	case cur.Type != pe.Type:
		return &Error{Status: AlreadyExists, Err: ErrConflict,
			Description: fmt.Sprintf("identifier %s is a %s, not a %s", rec.Identifier, cur.Type, pe.Type)}
	case pe.OfflineKey != cur.OfflineKey:
		return &Error{Status: ClientUnauthorized, Err: ErrNotAuthorized,
			Description: fmt.Sprintf("update of %s has offline key %s, the registered profile has %s", rec.Identifier, pe.OfflineKey, cur.OfflineKey)}
	case pe.Signer != cur.OfflineKey && !slices.Contains(cur.OnlineKeys, pe.Signer):
		return &Error{Status: ClientUnauthorized, Err: ErrNotAuthorized,
			Description: fmt.Sprintf("update of %s is signed by %s, which is neither its offline key nor one of its online keys", rec.Identifier, pe.Signer)}
	}
	return checkNewer(rec, pe, &cur)
}

// checkNewer enforces the version order of a profile (docs/formats.md,
// "Profile versions"): an update's signed Updated must be later than the
// registered version's; a version without Updated is older than any
// version with one. CreateAccount may also bind the registered version
// itself (an equal Updated).
func checkNewer(rec *log.Record, pe *PortalEntry, cur *objectState) error {
	switch {
	case newer(pe.Updated, cur.Updated):
		return nil
	case rec.Kind == KindAccount && timesEqual(cur.Updated, pe.Updated):
		return nil
	}
	return &Error{Status: AlreadyExists, Err: ErrNotNewer,
		Description: fmt.Sprintf("profile %s: this version (Updated %s) is not newer than the registered version (record %d, Updated %s): an update must carry a later Updated time",
			rec.Identifier, formatUpdated(pe.Updated), cur.Seq, formatUpdated(cur.Updated))}
}

// newer reports whether a version with Updated next is newer than one with
// Updated cur: a version without Updated is older than any with one.
func newer(next, cur *time.Time) bool {
	return next != nil && (cur == nil || next.After(*cur))
}

func timesEqual(a, b *time.Time) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && a.Equal(*b))
}

func formatUpdated(t *time.Time) string {
	if t == nil {
		return "none"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// checkBinding checks that a published entry is bound to an open account
// of this portal (the record's Account): the account's own profile, or the
// ProfileMesh its ProfileAccount names, needs nothing more; any other entry
// needs an AccountProof signed by a key of the account's profile (the
// server verified it; ProofSigner is its key), and an entry published
// before for one account cannot be updated for another.
func (s *State) checkBinding(txn *badger.Txn, rec *log.Record, pe *PortalEntry, found bool, cur *objectState) error {
	if rec.Account == "" {
		return &Error{Status: ClientUnauthorized, Err: ErrAccountNotFound,
			Description: fmt.Sprintf("%s is published for no account: publishing needs an account at this portal (CreateAccount first)", rec.Identifier)}
	}
	acct, obj, err := s.openAccount(txn, rec.Account)
	if err != nil {
		return err
	}
	if rec.Identifier == acct.ProfileUDF || (acct.MeshProfile != "" && rec.Identifier == acct.MeshProfile) {
		return nil
	}
	if pe.ProofSigner == "" || (pe.ProofSigner != obj.OfflineKey && !slices.Contains(obj.OnlineKeys, pe.ProofSigner)) {
		return &Error{Status: ClientUnauthorized, Err: ErrNotAuthorized,
			Description: fmt.Sprintf("%s is not the profile of account %q: publishing it for the account needs an AccountProof signed by a key of the account's profile %s", rec.Identifier, acct.AccountID, acct.ProfileUDF)}
	}
	if found && cur.Account != "" && cur.Account != rec.Account {
		return &Error{Status: ClientUnauthorized, Err: ErrNotAuthorized,
			Description: fmt.Sprintf("%s was published for another account of this portal", rec.Identifier)}
	}
	return nil
}

func (s *State) writeObject(txn *badger.Txn, rec *log.Record, pe *PortalEntry) error {
	obj := objectState{Seq: rec.Seq, Kind: rec.Kind, Type: pe.Type, OfflineKey: pe.OfflineKey, OnlineKeys: pe.OnlineKeys,
		Updated: pe.Updated, Account: rec.Account}
	if err := setJSON(txn, stateKey(tagObject, rec.Identifier), &obj); err != nil {
		return err
	}
	return txn.Set(seqKey(tagHistory, rec.Identifier, rec.Seq), nil)
}

// indexMessage lists a CatalogedPublication under the account it was
// published for (ListMessages), in the transaction that registers it.
// Publications are never replaced, so each is listed once.
func (s *State) indexMessage(txn *badger.Txn, rec *log.Record, pe *PortalEntry) error {
	if rec.Kind != KindEscrow || pe.Type != mesh.TypeCatalogedPublication {
		return nil
	}
	if err := txn.Set(seqKey(tagMessage, rec.Account, rec.Seq), nil); err != nil {
		return fmt.Errorf("portal: writing state: %w", err)
	}
	return nil
}

func (s *State) indexCreate(txn *badger.Txn, rec *log.Record, pe *PortalEntry) error {
	var acct accountState
	found, err := getJSON(txn, stateKey(tagAccount, rec.Account), &acct)
	if err != nil {
		return err
	}
	if found && acct.Status != AccountClosed {
		return &Error{Status: AlreadyExists, Err: ErrAccountExists,
			Description: fmt.Sprintf("account %q already exists", pe.AccountID)}
	}
	if err := s.checkObject(txn, rec, pe); err != nil {
		return err
	}
	acct = accountState{AccountID: pe.AccountID, ProfileUDF: rec.Identifier, Status: AccountOpen, Seq: rec.Seq, Created: rec.Time,
		MeshProfile: pe.MeshProfile}
	if err := s.writeObject(txn, rec, pe); err != nil {
		return err
	}
	return setJSON(txn, stateKey(tagAccount, rec.Account), &acct)
}

func (s *State) indexDelete(txn *badger.Txn, rec *log.Record, pe *PortalEntry) error {
	acct, obj, err := s.openAccount(txn, rec.Account)
	if err != nil {
		return err
	}
	if pe.Signer != "" && pe.Signer != obj.OfflineKey && !slices.Contains(obj.OnlineKeys, pe.Signer) {
		return &Error{Status: ClientUnauthorized, Err: ErrNotAuthorized,
			Description: fmt.Sprintf("deletion of %q is signed by %s, which is not a key of the account's profile %s", rec.Account, pe.Signer, acct.ProfileUDF)}
	}
	acct.Status, acct.Seq = AccountClosed, rec.Seq
	return setJSON(txn, stateKey(tagAccount, rec.Account), &acct)
}

// openAccount reads an open account and its profile's current state.
func (s *State) openAccount(txn *badger.Txn, account string) (accountState, objectState, error) {
	var acct accountState
	var obj objectState
	found, err := getJSON(txn, stateKey(tagAccount, account), &acct)
	if err != nil {
		return acct, obj, err
	}
	if !found || acct.Status != AccountOpen {
		return acct, obj, &Error{Status: NotFound, Err: ErrAccountNotFound,
			Description: fmt.Sprintf("account %q does not exist", account)}
	}
	if _, err := getJSON(txn, stateKey(tagObject, acct.ProfileUDF), &obj); err != nil {
		return acct, obj, err
	}
	return acct, obj, nil
}

func (s *State) indexConnectStart(txn *badger.Txn, rec *log.Record) error {
	if _, _, err := s.openAccount(txn, rec.Account); err != nil {
		return err
	}
	var conn connState
	found, err := getJSON(txn, stateKey(tagConn, rec.Account, rec.Identifier), &conn)
	if err != nil {
		return err
	}
	if found && !conn.Done {
		return &Error{Status: AlreadyExists, Err: ErrPending,
			Description: fmt.Sprintf("device %s already has a pending connection request to %q", rec.Identifier, rec.Account)}
	}
	conn = connState{RequestSeq: rec.Seq, Answered: conn.Answered}
	if err := setJSON(txn, stateKey(tagConn, rec.Account, rec.Identifier), &conn); err != nil {
		return err
	}
	return txn.Set(seqKey(tagQueue, rec.Account, rec.Seq), []byte(rec.Identifier))
}

func (s *State) indexConnectComplete(txn *badger.Txn, rec *log.Record, pe *PortalEntry) error {
	acct, obj, err := s.openAccount(txn, rec.Account)
	if err != nil {
		return err
	}
	var conn connState
	found, err := getJSON(txn, stateKey(tagConn, rec.Account, rec.Identifier), &conn)
	if err != nil {
		return err
	}
	if !found || conn.Done {
		return &Error{Status: NotFound, Err: ErrNoPending,
			Description: fmt.Sprintf("device %s has no pending connection request to %q", rec.Identifier, rec.Account)}
	}
	if pe.Signer != obj.OfflineKey && !slices.Contains(obj.OnlineKeys, pe.Signer) {
		return &Error{Status: ClientUnauthorized, Err: ErrNotAuthorized,
			Description: fmt.Sprintf("connection result is signed by %s, which is not an administration key of the account's profile %s", pe.Signer, acct.ProfileUDF)}
	}
	if err := txn.Delete(seqKey(tagQueue, rec.Account, conn.RequestSeq)); err != nil {
		return fmt.Errorf("portal: writing state: %w", err)
	}
	conn.ResultSeq, conn.Done = rec.Seq, true
	if _, env, err := mesh.ParseEntry(pe.Entry); err == nil { // the server verified it
		conn.Answered = append(conn.Answered, resultDigest(env.Payload))
	}
	return setJSON(txn, stateKey(tagConn, rec.Account, rec.Identifier), &conn)
}

// Records is what Rebuild reads: the log's records by sequence number.
type Records interface {
	// Size is the number of records.
	Size() uint64
	// Get returns record seq.
	Get(seq uint64) (log.Record, error)
}

// Rebuild discards the local state in db and replays every record of recs
// (the node's own log) through Index, batch by batch. Use it on a database
// whose state is missing or suspect, while nothing appends to the log. The
// replicated state of peers (see ReplicaIndexer) is kept: RebuildReplica
// rebuilds it, one origin at a time.
func (s *State) Rebuild(ctx context.Context, db *badger.DB, recs Records) error {
	var local [][]byte
	for _, tag := range []byte{tagAccount, tagObject, tagHistory, tagConn, tagQueue, tagMessage} {
		local = append(local, []byte{StatePrefix, tag})
	}
	if err := db.DropPrefix(local...); err != nil {
		return fmt.Errorf("portal: dropping state: %w", err)
	}
	s.keys.purge()
	return replay(ctx, db, recs, s)
}

// replay runs every record of recs through ix, batch by batch.
func replay(ctx context.Context, db *badger.DB, recs Records, ix log.Indexer) error {
	const batch = 512
	size := recs.Size()
	for from := uint64(0); from < size; from += batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := db.Update(func(txn *badger.Txn) error {
			for seq := from; seq < min(from+batch, size); seq++ {
				rec, err := recs.Get(seq)
				if err != nil {
					return fmt.Errorf("portal: rebuilding state: %w", err)
				}
				if err := ix.Index(txn, &rec); err != nil {
					return fmt.Errorf("portal: rebuilding state: record %d: %w", seq, err)
				}
			}
			return nil
		})
		if o, ok := ix.(log.TxnObserver); ok {
			o.TxnDone(err == nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

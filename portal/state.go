package portal

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/intermesh/intermesh/log"
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
)

// StatePrefix is the first byte of every Badger key the portal state writes.
// The log ('L') and the Merkle tree use other first bytes.
const StatePrefix byte = 's'

// Key layout, all under StatePrefix. acct is the canonical (lower-case)
// account name and id an identifier (UDF); neither may contain 0x00, which
// the server's validation ensures.
//
//	's' 'a' acct                  → accountState (JSON)
//	's' 'p' id                    → objectState (JSON): latest version of a profile or escrow entry
//	's' 'h' id 0x00 seq(8)        → empty: every version of id, in log order
//	's' 'c' acct 0x00 device      → connState (JSON): latest connection request of a device
//	's' 'q' acct 0x00 seq(8)      → device: pending requests of an account, in log order
//	's' 'R' ...                   → replicated state of peers (see replica.go)
const (
	tagAccount = 'a'
	tagObject  = 'p'
	tagHistory = 'h'
	tagConn    = 'c'
	tagQueue   = 'q'
)

// accountState is the materialized state of an account.
type accountState struct {
	AccountID  string    // as first spelled by the client
	ProfileUDF string    // the profile the account is bound to
	Status     string    // Open or Closed
	Seq        uint64    // the last Account record
	Created    time.Time // when the account was (last) created
}

// objectState is the materialized latest version of a profile or escrow entry.
type objectState struct {
	Seq        uint64   // record holding the latest version
	Kind       log.Kind // Profile, Escrow (or Account, for a profile bound by CreateAccount)
	Type       string   // entry type, e.g. ProfileMesh
	OfflineKey string   `json:",omitempty"`
	OnlineKeys []string `json:",omitempty"`
}

// connState is the materialized state of a device's connection request.
type connState struct {
	RequestSeq uint64
	ResultSeq  uint64 `json:",omitempty"`
	Done       bool   `json:",omitempty"`
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
}

// NewState returns a State not yet bound to a database; Index works without
// one, the read methods need Bind.
func NewState() *State { return &State{} }

// Bind sets the database the read methods use.
func (s *State) Bind(db *badger.DB) { s.db.Store(db) }

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
	case log.KindAccount, log.KindProfile, log.KindEscrow, log.KindConnectionRequest, log.KindConnectionResult:
	default:
		return nil // InterMesh records (MasterHash, Evidence) have no portal state
	}
	pe, err := UnmarshalPortalEntry(rec.Payload)
	if err != nil {
		return Errorf(ClientBadRequest, "record %d: %w", rec.Seq, err)
	}
	switch rec.Kind {
	case log.KindAccount:
		if pe.Status == AccountClosed {
			return s.indexDelete(txn, rec, pe)
		}
		return s.indexCreate(txn, rec, pe)
	case log.KindProfile, log.KindEscrow:
		if err := s.checkObject(txn, rec, pe); err != nil {
			return err
		}
		return s.writeObject(txn, rec, pe)
	case log.KindConnectionRequest:
		return s.indexConnectStart(txn, rec)
	default:
		return s.indexConnectComplete(txn, rec, pe)
	}
}

// checkObject applies the update rules of a profile or escrow entry: a new
// profile must be signed by its own offline key; an update by the offline
// key or an online key of the registered version; an escrow entry is never
// replaced.
func (s *State) checkObject(txn *badger.Txn, rec *log.Record, pe *PortalEntry) error {
	var cur objectState
	found, err := getJSON(txn, stateKey(tagObject, rec.Identifier), &cur)
	if err != nil {
		return err
	}
	escrow := rec.Kind == log.KindEscrow
	switch {
	case !found && escrow:
		return nil
	case !found:
		if pe.Signer != rec.Identifier || pe.OfflineKey != rec.Identifier {
			return &Error{Status: ClientUnauthorized, Err: ErrNotAuthorized,
				Description: fmt.Sprintf("a new profile must be signed by its own offline key %s, not %s", rec.Identifier, pe.Signer)}
		}
		return nil
	case escrow || cur.Kind == log.KindEscrow:
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
	return nil
}

func (s *State) writeObject(txn *badger.Txn, rec *log.Record, pe *PortalEntry) error {
	obj := objectState{Seq: rec.Seq, Kind: rec.Kind, Type: pe.Type, OfflineKey: pe.OfflineKey, OnlineKeys: pe.OnlineKeys}
	if err := setJSON(txn, stateKey(tagObject, rec.Identifier), &obj); err != nil {
		return err
	}
	return txn.Set(seqKey(tagHistory, rec.Identifier, rec.Seq), nil)
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
	acct = accountState{AccountID: pe.AccountID, ProfileUDF: rec.Identifier, Status: AccountOpen, Seq: rec.Seq, Created: rec.Time}
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
	conn = connState{RequestSeq: rec.Seq}
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
	for _, tag := range []byte{tagAccount, tagObject, tagHistory, tagConn, tagQueue} {
		local = append(local, []byte{StatePrefix, tag})
	}
	if err := db.DropPrefix(local...); err != nil {
		return fmt.Errorf("portal: dropping state: %w", err)
	}
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
		if err != nil {
			return err
		}
	}
	return nil
}

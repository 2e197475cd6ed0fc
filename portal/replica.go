package portal

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/intermesh/intermesh/log"
)

// Replicated state: what the portal keeps of the replica logs of its peers
// (log.Replica), so that Get finds the profiles and escrow entries published
// at any portal of the federation. It lives apart from the local state, under
// tagReplica, one key space per origin:
//
//	's' 'R' len(origin) origin 'p' id                 → replicaObject (JSON): the origin's latest version of id
//	's' 'R' len(origin) origin 'h' len(id) id seq(8)  → empty: every version of id at the origin, in its log order
//
// where len is 2 bytes, big-endian, and seq is the record's sequence number
// in the origin's log (8 bytes, big-endian). For example the latest version
// of MB2G from origin "b" is under 73 52 0001 62 70 "MB2G".
//
// The local rules (account names, update authorization, connections) read
// only the local state: a replica never changes what this portal accepts.
const tagReplica = 'R'

// Tags of the replicated state, after the origin.
const (
	tagReplicaObject  = 'p'
	tagReplicaHistory = 'h'
)

// replicaObject is the replicated latest version of a profile or escrow
// entry from one origin.
type replicaObject struct {
	Seq  uint64    // the record in the origin's log
	Kind log.Kind  // Profile, Escrow or Account
	Type string    `json:",omitempty"` // entry type, e.g. ProfileMesh
	Time time.Time // when the origin sequenced the record
	// Updated is the version's Updated time as the origin's PortalEntry
	// gives it (nil if none).
	Updated *time.Time `json:",omitempty"`
}

// replicaSpace is the key prefix of one origin's replicated state.
func replicaSpace(origin string) []byte {
	k := []byte{StatePrefix, tagReplica}
	k = binary.BigEndian.AppendUint16(k, uint16(len(origin)))
	return append(k, origin...)
}

func replicaObjectKey(origin, id string) []byte {
	return append(append(replicaSpace(origin), tagReplicaObject), id...)
}

// replicaHistoryPrefix is the prefix of the version keys of id from origin.
func replicaHistoryPrefix(origin, id string) []byte {
	k := append(replicaSpace(origin), tagReplicaHistory)
	k = binary.BigEndian.AppendUint16(k, uint16(len(id)))
	return append(k, id...)
}

// ReplicaIndexer returns the indexer of the replica log of a peer origin
// (log.ReplicaOptions.Indexers): it records the origin's profiles and escrow
// entries (latest version and every version of each identifier) in the
// replicated state of that origin. The latest version never regresses: a
// record becomes it only if its Updated is later than the latest's (the
// rule of docs/formats.md), so an older version the origin logged again
// stays in the history only. It never rejects a record: the origin
// already admitted it and the replica mirrors the origin's log exactly, so
// records it does not materialize (connections, account closings, InterMesh
// records, payloads that are not a PortalEntry) are passed over, and only a
// failure of the store is returned.
func (s *State) ReplicaIndexer(origin string) log.Indexer {
	return &replicaIndexer{origin: origin, latest: s.latestOf(origin), pending: make(map[string]*time.Time)}
}

// replicaLatestCacheSize bounds, per origin, how many identifiers the
// replica indexers remember the latest version of (State.latest): at most
// about 250 bytes each (the identifier, its Updated and the LRU's
// bookkeeping), so 250 KB per origin held and 25 MB for 100. The
// identifiers indexed in one transaction wait in the indexer's pending map
// until it commits: at most one batch of the replica (log.DefaultMaxBatch
// records).
const replicaLatestCacheSize = 1024

// latestOf returns the cache of origin's committed latest versions: the
// Updated of the latest version of the identifiers indexed last.
func (s *State) latestOf(origin string) *lru.Cache[string, *time.Time] {
	s.latestMu.Lock()
	defer s.latestMu.Unlock()
	if c, ok := s.latest[origin]; ok {
		return c
	}
	c, err := lru.New[string, *time.Time](replicaLatestCacheSize)
	if err != nil {
		panic(err) // only for a size below 1
	}
	if s.latest == nil {
		s.latest = make(map[string]*lru.Cache[string, *time.Time])
	}
	s.latest[origin] = c
	return c
}

// replicaIndexer indexes one origin's replica; see State.ReplicaIndexer.
//
// It remembers the Updated of the latest version of the identifiers it
// indexed last, so that a record of one of them costs no read of the store
// (a read of a key overwritten every few seconds visits every level of
// Badger, and it was most of a member's reads under load). What the
// current transaction wrote is in pending until the log says it committed
// (TxnDone), then in latest, which holds committed state only and is
// shared by every indexer of the origin. RebuildReplica, which rewrites
// the origin's replicated state, empties latest.
type replicaIndexer struct {
	origin  string
	latest  *lru.Cache[string, *time.Time]
	pending map[string]*time.Time // identifier → Updated of its latest version, in the current transaction
}

// Index implements log.Indexer.
func (ri *replicaIndexer) Index(txn *badger.Txn, rec *log.Record) error {
	switch rec.Kind {
	case KindProfile, KindEscrow, KindAccount:
	default:
		return nil
	}
	if rec.Identifier == "" || len(rec.Identifier) > log.MaxFieldLen {
		return nil
	}
	pe, ok := replicaFieldsOf(rec.Payload)
	if !ok || (rec.Kind == KindAccount && pe.Status == AccountClosed) {
		return nil // not an object, or an account closing: the profile stays as it was
	}
	cur, found := ri.pending[rec.Identifier]
	if !found {
		cur, found = ri.latest.Get(rec.Identifier)
	}
	if !found {
		var obj replicaObject
		var err error
		if found, err = getJSON(txn, replicaObjectKey(ri.origin, rec.Identifier), &obj); err != nil {
			return err
		}
		cur = obj.Updated
	}
	if !found || newer(pe.Updated, cur) {
		obj := replicaObject{Seq: rec.Seq, Kind: rec.Kind, Type: pe.Type, Time: rec.Time.UTC(), Updated: pe.Updated}
		if err := setJSON(txn, replicaObjectKey(ri.origin, rec.Identifier), &obj); err != nil {
			return err
		}
		cur = pe.Updated
	}
	if err := txn.Set(binary.BigEndian.AppendUint64(replicaHistoryPrefix(ri.origin, rec.Identifier), rec.Seq), nil); err != nil {
		return err
	}
	ri.pending[rec.Identifier] = cur
	return nil
}

// TxnDone implements log.TxnObserver: what a committed transaction wrote
// is remembered, what a discarded one wrote is forgotten.
func (ri *replicaIndexer) TxnDone(committed bool) {
	if committed {
		for id, updated := range ri.pending {
			ri.latest.Add(id, updated)
		}
	}
	clear(ri.pending)
}

// replicaFields are the fields of a PortalEntry that the replica indexer
// uses.
type replicaFields struct {
	Type    string
	Status  string
	Updated *time.Time
	Entry   json.RawMessage
}

// replicaFieldsOf decodes the fields of the PortalEntry in payload that the
// replica indexer uses; ok is false if payload is not a PortalEntry whose
// Entry is a JSON object. It does not check Entry's members as
// UnmarshalPortalEntry does: decoding only these fields takes a third of
// the time, for every record of every other member, and the origin's
// portal checked the whole entry when it admitted it (a client checks the
// entry's signature again).
func replicaFieldsOf(payload []byte) (f *replicaFields, ok bool) {
	var m struct{ PortalEntry *replicaFields }
	if err := json.Unmarshal(payload, &m); err != nil || m.PortalEntry == nil {
		return nil, false
	}
	e := bytes.TrimSpace(m.PortalEntry.Entry)
	return m.PortalEntry, len(e) > 0 && e[0] == '{'
}

// RebuildReplica discards the replicated state of origin in db and replays
// every record of its replica log (a *log.Replica) through the origin's
// ReplicaIndexer, batch by batch. Like Rebuild, use it while nothing appends
// to that replica. Rebuild leaves the replicated state alone.
func (s *State) RebuildReplica(ctx context.Context, db *badger.DB, origin string, recs Records) error {
	s.latestOf(origin).Purge() // they may describe records cut from the replica
	if err := db.DropPrefix(replicaSpace(origin)); err != nil {
		return fmt.Errorf("portal: dropping replicated state of %q: %w", origin, err)
	}
	return replay(ctx, db, recs, s.ReplicaIndexer(origin))
}

// replicaObjectOf reads the latest version of id from origin.
func (s *State) replicaObjectOf(origin, id string) (obj replicaObject, found bool, err error) {
	err = s.view(func(txn *badger.Txn) error {
		found, err = getJSON(txn, replicaObjectKey(origin, id), &obj)
		return err
	})
	return obj, found, err
}

// replicaObjectsOf reads the latest version of id from each origin, in one
// read transaction (each transaction waits for the commits in flight, so a
// lookup across every replica costs one wait, not one per member). found[i]
// says whether origins[i] holds a version.
func (s *State) replicaObjectsOf(origins []string, id string) (objs []replicaObject, found []bool, err error) {
	objs, found = make([]replicaObject, len(origins)), make([]bool, len(origins))
	err = s.view(func(txn *badger.Txn) error {
		for i, origin := range origins {
			if found[i], err = getJSON(txn, replicaObjectKey(origin, id), &objs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	return objs, found, err
}

// replicaSeqs lists the sequence numbers of the versions of id from origin,
// from seq from on, at most limit of them; more says whether there are
// others after them.
func (s *State) replicaSeqs(origin, id string, from uint64, limit int) (seqs []uint64, more bool, err error) {
	prefix := replicaHistoryPrefix(origin, id)
	err = s.view(func(txn *badger.Txn) error {
		seqs, more = scanSeqs(txn, prefix, from, limit)
		return nil
	})
	return seqs, more, err
}

// scanSeqs lists the big-endian sequence numbers that follow prefix in keys,
// from seq from on, at most limit of them.
func scanSeqs(txn *badger.Txn, prefix []byte, from uint64, limit int) (seqs []uint64, more bool) {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = prefix
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(binary.BigEndian.AppendUint64(append([]byte{}, prefix...), from)); it.ValidForPrefix(prefix); it.Next() {
		k := it.Item().Key()
		if len(k) != len(prefix)+8 {
			continue
		}
		if len(seqs) == limit {
			return seqs, true
		}
		seqs = append(seqs, binary.BigEndian.Uint64(k[len(prefix):]))
	}
	return seqs, false
}

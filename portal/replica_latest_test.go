package portal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/intermesh/intermesh/log"
)

// recordSlice is a replica's records in memory, for RebuildReplica.
type recordSlice []log.Record

func (r recordSlice) Size() uint64                       { return uint64(len(r)) }
func (r recordSlice) Get(seq uint64) (log.Record, error) { return r[seq], nil }

// The replica indexer's memory of the identifiers it indexed last
// (State.latest) never changes what it decides. Over random records of a
// few identifiers (updates, regressions, ties, versions without Updated,
// account closings), attempts indexed and then discarded (their records
// replaced by others at the same sequence numbers, as when a batch fails
// and other records are offered next), and replicas cut back and rebuilt
// (RebuildReplica), the replicated state after every commit is exactly
// what a fresh indexer derives from the committed records alone.
func TestReplicaLatestNeverChangesWhatTheIndexerDecides(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { checkReplicaLatest(t, seed) })
	}
}

func checkReplicaLatest(t *testing.T, seed uint64) {
	const origin = "a.example/log"
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 0))
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil).WithMemTableSize(1 << 20).WithValueThreshold(64 << 10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ref, err := badger.Open(badger.DefaultOptions("").WithInMemory(true).WithLogger(nil).WithMemTableSize(1 << 20).WithValueThreshold(64 << 10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ref.Close() })
	s := NewState()
	ix := s.ReplicaIndexer(origin)

	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	newRecord := func(seq uint64) log.Record {
		kinds := []log.Kind{KindProfile, KindProfile, KindProfile, KindAccount, KindEscrow}
		pe := map[string]any{"Type": "ProfileMesh", "Entry": map[string]any{}}
		if rng.IntN(6) > 0 { // some versions have no Updated
			pe["Updated"] = base.Add(time.Duration(rng.IntN(8)) * time.Second) // few values: ties and regressions
		}
		kind := kinds[rng.IntN(len(kinds))]
		if kind == KindAccount && rng.IntN(3) == 0 {
			pe["Status"] = AccountClosed
		}
		payload, err := json.Marshal(map[string]any{"PortalEntry": pe})
		if err != nil {
			t.Fatal(err)
		}
		return log.Record{Seq: seq, Kind: kind, Identifier: fmt.Sprintf("MID%d", rng.IntN(5)),
			Time: base.Add(time.Duration(seq)), Origin: origin, Payload: payload}
	}
	newBatch := func(from uint64) []log.Record {
		b := make([]log.Record, 1+rng.IntN(8))
		for i := range b {
			b[i] = newRecord(from + uint64(i))
		}
		return b
	}
	index := func(txn *badger.Txn, recs []log.Record) {
		for i := range recs {
			if err := ix.Index(txn, &recs[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	// commit and discard are what the log does with a transaction, and
	// what it tells its indexers.
	commit := func(recs []log.Record) {
		if err := db.Update(func(txn *badger.Txn) error { index(txn, recs); return nil }); err != nil {
			t.Fatal(err)
		}
		ix.(log.TxnObserver).TxnDone(true)
	}
	discard := func(recs []log.Record) {
		txn := db.NewTransaction(true)
		index(txn, recs)
		txn.Discard()
		ix.(log.TxnObserver).TxnDone(false)
	}

	var committed []log.Record
	for step := range 300 {
		switch op := rng.IntN(10); {
		case op < 7: // append; some attempts fail first (their records are not the ones committed)
			from := uint64(len(committed))
			if rng.IntN(3) == 0 {
				discard(newBatch(from))
			}
			batch := newBatch(from)
			commit(batch)
			committed = append(committed, batch...)
		case op < 9: // a failed attempt redone in two parts (as after ErrTxnTooBig)
			batch := newBatch(uint64(len(committed)))
			discard(batch)
			k := 1 + rng.IntN(len(batch))
			commit(batch[:k])
			commit(batch[k:])
			committed = append(committed, batch...)
		default: // cut back and rebuilt
			committed = committed[:rng.IntN(len(committed)+1)]
			if err := s.RebuildReplica(ctx, db, origin, recordSlice(committed)); err != nil {
				t.Fatal(err)
			}
		}
		if got, want := replicatedState(t, db, origin), derivedState(t, ref, origin, committed); !bytes.Equal(got, want) {
			t.Fatalf("step %d, %d records: the replicated state differs from a fresh indexer's:\n got %s\nwant %s", step, len(committed), got, want)
		}
	}
}

// derivedState is the replicated state a fresh State derives from recs, in
// db.
func derivedState(t *testing.T, db *badger.DB, origin string, recs []log.Record) []byte {
	t.Helper()
	if err := NewState().RebuildReplica(context.Background(), db, origin, recordSlice(recs)); err != nil {
		t.Fatal(err)
	}
	return replicatedState(t, db, origin)
}

// replicatedState lists origin's replicated state in db, a key and value a line.
func replicatedState(t *testing.T, db *badger.DB, origin string) []byte {
	t.Helper()
	var out bytes.Buffer
	err := db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = replicaSpace(origin)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(&out, "%x %s\n", it.Item().Key(), v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

package intermesh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/intermesh/intermesh/internal/keyspace"
)

// Key layout in the node's Badger database. Every key starts with 'x'
// (keyspace.InterMesh), which no other package uses as its first byte (see
// internal/keyspace, the list of every prefix of the store):
//
//	'x' 'l' <origin>               the latest signed checkpoint note of a member
//	'x' 'm' <round, 8 bytes BE>    the certificate of a round (Certificate JSON)
//	'x' 'e' <SHA-256 of both notes> evidence against a member (Evidence JSON)
//	'x' 'i' <SHA-256 of both notes> index of its Evidence record in the log (8 bytes BE)
//
// The latest checkpoints let the consistency checks resume after a restart;
// evidence keeps an equivocating member uncounted across restarts.
const (
	keySpace     = keyspace.InterMesh
	latestKind   = 'l'
	certKind     = 'm'
	evidenceKind = 'e'
)

func latestKey(origin string) []byte {
	return append([]byte{keySpace, latestKind}, origin...)
}

func certKey(round uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{keySpace, certKind}, round)
}

func evidenceKey(e Evidence) []byte {
	h := sha256.New()
	h.Write(e.Notes[0])
	h.Write(e.Notes[1])
	h.Write(ruleEvidenceKey(e))
	return h.Sum([]byte{keySpace, evidenceKind})
}

// store persists the Mesh's state in the node's database; a nil db stores
// nothing.
type store struct {
	db *badger.DB
}

// storeJob is work for the committer, done in order: persist what is set,
// then call the Commit hook with result, if set.
type storeJob struct {
	latest   map[string][]byte // origin → latest signed checkpoint note
	cert     *Certificate
	evidence *Evidence
	result   *RoundResult
	deadline time.Time // for the Commit call
}

// write persists a job's data in one transaction.
func (s *store) write(j storeJob) error {
	if s.db == nil || (j.latest == nil && j.cert == nil && j.evidence == nil) {
		return nil
	}
	return s.db.Update(func(txn *badger.Txn) error {
		for o, n := range j.latest {
			if err := txn.Set(latestKey(o), n); err != nil {
				return err
			}
		}
		if j.cert != nil {
			b, err := json.Marshal(j.cert)
			if err != nil {
				return err
			}
			if err := txn.Set(certKey(j.cert.Round), b); err != nil {
				return err
			}
		}
		if j.evidence != nil {
			b, err := json.Marshal(j.evidence)
			if err != nil {
				return err
			}
			if err := txn.Set(evidenceKey(*j.evidence), b); err != nil {
				return err
			}
		}
		return nil
	})
}

// certificate reads the stored certificate of a round.
func (s *store) certificate(round uint64) (Certificate, bool, error) {
	if s.db == nil {
		return Certificate{}, false, nil
	}
	var c Certificate
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(certKey(round))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &c) })
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Certificate{}, false, nil
	}
	if err != nil {
		return Certificate{}, false, fmt.Errorf("intermesh: read certificate of round %d: %w", round, err)
	}
	return c, true, nil
}

// scan calls f with the value of every key with the given kind.
func (s *store) scan(kind byte, f func(key, val []byte) error) error {
	if s.db == nil {
		return nil
	}
	return s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{keySpace, kind}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if err := item.Value(func(v []byte) error {
				return f(item.KeyCopy(nil), bytes.Clone(v))
			}); err != nil {
				return err
			}
		}
		return nil
	})
}

// delete removes keys in one transaction.
func (s *store) delete(keys [][]byte) error {
	if s.db == nil || len(keys) == 0 {
		return nil
	}
	return s.db.Update(func(txn *badger.Txn) error {
		for _, k := range keys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// loadState restores the latest checkpoint of each member, the evidence and
// the newest certificate from the database. Checkpoints are verified again
// against the federation, so a member removed from it is forgotten, and in
// their canonical form, so a re-encoded copy an earlier version stored is
// forgotten too (the member's next checkpoint chains to the note it signed,
// and would otherwise look inconsistent with the copy).
// Evidence against a member is verified again with the current rules
// (VerifyEvidence): evidence stored by an earlier version that would not
// be taken now, such as a checkpoint and a re-encoded copy of it, is
// deleted (logged and counted in intermesh_evidence_forgotten_total), so
// the member it blamed counts again. Its Evidence record, if appended,
// stays in the log. Evidence against an origin that is no longer a member
// cannot be checked without its key; it is kept and counts nobody.
func (m *Mesh) loadState() error {
	st := m.state
	err := m.store.scan(latestKind, func(_, val []byte) error {
		cp, err := openCheckpoint(val, m.verifiers) // canonical form, as on every topic
		if err != nil {
			m.log.Warn("stored checkpoint no longer verifies; forgotten", "err", err)
			return nil
		}
		os := st.origin(cp.Origin)
		os.notes[cp.Round] = heldCheckpoint{cp: cp, note: val, hash: sha256.Sum256(val)}
		os.latest = cp.Round
		return nil
	})
	if err != nil {
		return fmt.Errorf("intermesh: load checkpoints: %w", err)
	}
	var forget [][]byte
	err = m.store.scan(evidenceKind, func(key, val []byte) error {
		var e Evidence
		if err := json.Unmarshal(val, &e); err != nil {
			return fmt.Errorf("evidence: %w", err)
		}
		if _, ok := m.members[e.Origin]; ok {
			why, err := VerifyEvidenceWith(e, m.fed, m.cfg.MapRule)
			if err != nil {
				m.metrics.forgotten.WithLabelValues(e.Origin).Inc()
				m.log.Warn("stored evidence no longer verifies; forgotten, the member counts again", "member", e.Origin, "err", err)
				forget = append(forget, key)
				return nil
			}
			e.Reason = why
			st.origin(e.Origin).equivocated = true
		}
		st.evidence = append(st.evidence, e)
		return nil
	})
	if err != nil {
		return fmt.Errorf("intermesh: load evidence: %w", err)
	}
	if err := m.store.delete(forget); err != nil {
		return fmt.Errorf("intermesh: forget evidence that no longer verifies: %w", err)
	}
	if m.store.db != nil {
		c, found, err := LatestCertificate(m.store.db)
		if err != nil {
			return err
		}
		if found {
			st.certs[c.Round] = c
		}
	}
	m.publishView(st)
	return nil
}

// LatestCertificate returns the certificate of the latest round a Mesh of
// the node whose database is db certified (under any version of the
// federation), and whether there is one. The node refuses a federation
// update that would be in force from that round or an earlier one (a
// backdated update), with this certificate as evidence.
func LatestCertificate(db *badger.DB) (Certificate, bool, error) {
	var (
		c     Certificate
		found bool
	)
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{keySpace, certKind}, Reverse: true})
		defer it.Close()
		it.Seek(certKey(^uint64(0)))
		if !it.Valid() {
			return nil
		}
		found = true
		return it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &c) })
	})
	if err != nil {
		return Certificate{}, false, fmt.Errorf("intermesh: load latest certificate: %w", err)
	}
	return c, found, nil
}

// queueJob hands a job to the committer, in order. When the committer is
// behind (jobCapacity jobs queued) the round loop waits for it, which slows
// down validation (gossipsub then queues or ignores messages) rather than
// losing durable work; once shutdown has begun, jobs that do not fit are
// kept in st.unsent, which the committer drains after the round loop has
// returned.
func (st *state) queueJob(j storeJob) {
	if len(st.unsent) == 0 {
		select {
		case st.m.jobs <- j:
			return
		default:
		}
		st.m.metrics.jobWaits.Inc()
		select {
		case st.m.jobs <- j:
			return
		case <-st.ctx.Done():
		}
	}
	st.unsent = append(st.unsent, j)
}

// jobCapacity is how many jobs wait for the committer before the round loop
// waits for it.
const jobCapacity = 64

// drainTimeout bounds the work the committer finishes after shutdown began.
const drainTimeout = 10 * time.Second

// commitLoop persists jobs and calls the Commit hook, in order, until ctx
// ends; then it waits for the round loop to return and finishes every job
// still queued (within drainTimeout, with a context that is not ctx), so
// that nothing the round loop decided is lost at shutdown.
func (m *Mesh) commitLoop(ctx context.Context) {
	for _, e := range m.Evidence() { // kept before a crash, maybe not appended
		if err := m.appendEvidence(ctx, e); err != nil && ctx.Err() == nil {
			m.log.Error("append evidence record", "member", e.Origin, "err", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			m.drain(ctx)
			return
		case j := <-m.jobs:
			m.runJob(ctx, j)
		}
	}
}

// drain finishes the queued jobs once the round loop has returned.
func (m *Mesh) drain(ctx context.Context) {
	<-m.loopDone
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	defer cancel()
	for {
		select {
		case j := <-m.jobs:
			m.runJob(dctx, j)
			continue
		default:
		}
		break
	}
	for _, j := range m.state.unsent {
		m.runJob(dctx, j)
	}
	m.state.unsent = nil
}

// runJob persists a job, appends its Evidence record and calls the Commit
// hook with its result.
func (m *Mesh) runJob(ctx context.Context, j storeJob) {
	if err := m.store.write(j); err != nil {
		m.log.Error("persist intermesh state", "err", err)
	}
	if j.evidence != nil {
		if err := m.appendEvidence(ctx, *j.evidence); err != nil && ctx.Err() == nil {
			m.log.Error("append evidence record", "member", j.evidence.Origin, "err", err)
		}
	}
	if j.result == nil || m.cfg.Commit == nil {
		return
	}
	cctx, cancel := context.WithDeadline(ctx, j.deadline)
	err := m.cfg.Commit(cctx, *j.result)
	cancel()
	if err != nil {
		m.log.Error("commit round result", "round", j.result.Round, "outcome", j.result.Outcome, "err", err)
	}
}

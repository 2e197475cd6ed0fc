package portal

import (
	"errors"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// errUnbound is returned by the read methods of a State never bound to a DB.
var errUnbound = errors.New("portal: state is not bound to a database")

func (s *State) view(fn func(txn *badger.Txn) error) error {
	db := s.db.Load()
	if db == nil {
		return errUnbound
	}
	return db.View(fn)
}

// account returns the state of an account (canonical name).
func (s *State) account(name string) (acct accountState, found bool, err error) {
	err = s.view(func(txn *badger.Txn) error {
		found, err = getJSON(txn, stateKey(tagAccount, name), &acct)
		return err
	})
	return acct, found, err
}

// publishReads are what Publish reads before appending (all advisory: the
// indexer decides atomically with the append).
type publishReads struct {
	acct      accountState
	acctFound bool
	objFound  bool // this portal registered a version of the entry
	// replicaUpdated[i] is the Updated of the entry's latest version in the
	// replica of origins[i], if replicaFound[i].
	replicaUpdated []*time.Time
	replicaFound   []bool
}

// readForPublish reads an account, whether an entry is registered, and the
// Updated of the entry's latest version in each origin's replica
// (readReplicaUpdated), in one read transaction: each Badger read
// transaction waits for the commits in flight (replica appends included),
// so one read costs one wait instead of one per lookup.
func (s *State) readForPublish(account, id string, origins []string) (pr publishReads, err error) {
	err = s.view(func(txn *badger.Txn) error {
		if pr.acctFound, err = getJSON(txn, stateKey(tagAccount, account), &pr.acct); err != nil {
			return err
		}
		var obj objectState
		if pr.objFound, err = getJSON(txn, stateKey(tagObject, id), &obj); err != nil {
			return err
		}
		pr.replicaUpdated, pr.replicaFound, err = s.readReplicaUpdated(txn, origins, id)
		return err
	})
	return pr, err
}

// replicaUpdatedOf returns the Updated of the latest version of id in each
// origin's replica (readReplicaUpdated) in one read transaction; found[i]
// says whether origins[i] holds a version.
func (s *State) replicaUpdatedOf(origins []string, id string) (updated []*time.Time, found []bool, err error) {
	err = s.view(func(txn *badger.Txn) error {
		updated, found, err = s.readReplicaUpdated(txn, origins, id)
		return err
	})
	return updated, found, err
}

// readReplicaUpdated returns the Updated of the latest version of id in each
// origin's replica. An identifier the replica indexers remember
// (State.latest, committed state only) is not read from txn: a profile
// updated every few seconds at another member has versions in many of
// Badger's tables, and a read seeks every one of them. What they remember
// may be a few microseconds behind the store (it is updated once a commit
// returns), which is less than any replication delay.
func (s *State) readReplicaUpdated(txn *badger.Txn, origins []string, id string) (updated []*time.Time, found []bool, err error) {
	updated, found = make([]*time.Time, len(origins)), make([]bool, len(origins))
	for i, origin := range origins {
		if updated[i], found[i] = s.latestOf(origin).Get(id); found[i] {
			continue
		}
		var rep replicaObject
		if found[i], err = getJSON(txn, replicaObjectKey(origin, id), &rep); err != nil {
			return nil, nil, err
		}
		updated[i] = rep.Updated
	}
	return updated, found, nil
}

// object returns the latest version of a profile or escrow entry.
func (s *State) object(id string) (obj objectState, found bool, err error) {
	err = s.view(func(txn *badger.Txn) error {
		found, err = getJSON(txn, stateKey(tagObject, id), &obj)
		return err
	})
	return obj, found, err
}

// conn returns the state of a device's connection request to an account.
func (s *State) conn(account, device string) (c connState, found bool, err error) {
	err = s.view(func(txn *badger.Txn) error {
		found, err = getJSON(txn, stateKey(tagConn, account, device), &c)
		return err
	})
	return c, found, err
}

// seqs lists the sequence numbers under the index (tagHistory, tagQueue or
// tagMessage)
// of name, from seq from on, at most limit of them; more says whether
// there are others after them.
func (s *State) seqs(tag byte, name string, from uint64, limit int) (seqs []uint64, more bool, err error) {
	prefix := append(stateKey(tag, name), 0)
	err = s.view(func(txn *badger.Txn) error {
		seqs, more = scanSeqs(txn, prefix, from, limit)
		return nil
	})
	return seqs, more, err
}

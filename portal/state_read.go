package portal

import (
	"errors"

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

// seqs lists the sequence numbers under the index (tagHistory or tagQueue)
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

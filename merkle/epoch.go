package merkle

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"
)

// closeAttempts bounds how often CloseEpoch retries when a concurrent epoch
// close of the same tree gets in its way.
const closeAttempts = 10

// errRetry asks CloseEpoch to take a new snapshot of the tree and try again.
var errRetry = errors.New("merkle: tree snapshot older than the latest checkpoint")

// CloseEpoch closes round: it signs a checkpoint of the tree at its current
// size, chained to the previously closed checkpoint by its prev line, and
// stores it under the round and as the latest, in one transaction. It costs a
// few reads and writes whatever the tree size. The round must be after the
// latest closed round (ErrStaleRound), and s must sign as origin.
//
// The size and root come from a read snapshot, so appends committing
// meanwhile never abort the close; the checkpoint covers the tree as of the
// snapshot. Concurrent closes of the same tree are serialized by Badger's
// conflict detection, and CloseEpoch retries a bounded number of times, until
// ctx is done.
func (t *Tree) CloseEpoch(ctx context.Context, round uint64, now time.Time, s note.Signer, origin string) ([]byte, Checkpoint, error) {
	return t.CloseEpochWithMap(ctx, round, now, s, origin, nil)
}

// MapRoot returns the root of a log's verifiable map over the log's first
// size records.
type MapRoot func(size uint64) ([]byte, error)

// CloseEpochWithMap is CloseEpoch for a log with a verifiable map: the
// checkpoint's map line is mapRoot of its size (no map line if mapRoot is
// nil). mapRoot is called once per attempt, before the checkpoint is
// stored, with sizes that never decrease unless a concurrent close of the
// same tree got in the way; its error fails the close.
func (t *Tree) CloseEpochWithMap(ctx context.Context, round uint64, now time.Time, s note.Signer, origin string, mapRoot MapRoot) ([]byte, Checkpoint, error) {
	if s.Name() != origin {
		return nil, Checkpoint{}, fmt.Errorf("merkle: close round %d of %q with key %q: %w", round, origin, s.Name(), ErrSignature)
	}
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, Checkpoint{}, fmt.Errorf("merkle: close round %d: %w", round, err)
		}
		signed, c, err := t.closeEpoch(round, now, s, origin, mapRoot)
		if (errors.Is(err, badger.ErrConflict) || errors.Is(err, errRetry)) && attempt < closeAttempts {
			continue
		}
		return signed, c, err
	}
}

// closeEpoch is one attempt of CloseEpoch.
func (t *Tree) closeEpoch(round uint64, now time.Time, s note.Signer, origin string, mapRoot MapRoot) ([]byte, Checkpoint, error) {
	var st state
	err := t.db.View(func(txn *badger.Txn) error {
		var err error
		st, err = t.readState(txn)
		return err
	})
	if err != nil {
		return nil, Checkpoint{}, err
	}
	c := Checkpoint{Origin: origin, Size: st.size, Root: st.root, Round: round, Time: now.Unix()}
	if mapRoot != nil {
		if c.Map, err = mapRoot(st.size); err != nil {
			return nil, Checkpoint{}, fmt.Errorf("merkle: close round %d: map root at size %d: %w", round, st.size, err)
		}
	}
	var signed []byte
	err = t.db.Update(func(txn *badger.Txn) error {
		latest, err := t.latestTxn(txn)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return err
		case round <= latest.round:
			return fmt.Errorf("merkle: close round %d after round %d: %w", round, latest.round, ErrStaleRound)
		case st.size < latest.size:
			return errRetry
		default:
			c.Prev = NoteHash(latest.signed)
		}
		if signed, err = SignCheckpoint(c, s); err != nil {
			return err
		}
		if err := txn.Set(t.keys.round(round), signed); err != nil {
			return fmt.Errorf("merkle: store checkpoint of round %d: %w", round, err)
		}
		l := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, round), st.size)
		if err := txn.Set(t.keys.latest(), l); err != nil {
			return fmt.Errorf("merkle: store latest round %d: %w", round, err)
		}
		return nil
	})
	if err != nil {
		return nil, Checkpoint{}, err
	}
	return signed, c, nil
}

// LatestCheckpoint returns the signed note of the latest closed checkpoint,
// or ErrNotFound if no epoch was closed yet.
func (t *Tree) LatestCheckpoint() ([]byte, error) {
	var signed []byte
	err := t.db.View(func(txn *badger.Txn) error {
		l, err := t.latestTxn(txn)
		signed = l.signed
		return err
	})
	return signed, err
}

// CheckpointAt returns the signed note of the checkpoint closed for round,
// or ErrNotFound.
func (t *Tree) CheckpointAt(round uint64) ([]byte, error) {
	var signed []byte
	err := t.db.View(func(txn *badger.Txn) error {
		var err error
		signed, err = t.checkpointTxn(txn, round)
		return err
	})
	return signed, err
}

// CheckpointsAt returns the signed notes of the checkpoints closed for
// rounds, in one read transaction (a Badger read waits for the commits in
// flight, so a page showing many rounds pays that wait once); a round with
// no checkpoint has a nil note.
func (t *Tree) CheckpointsAt(rounds []uint64) ([][]byte, error) {
	out := make([][]byte, len(rounds))
	err := t.db.View(func(txn *badger.Txn) error {
		for i, r := range rounds {
			signed, err := t.checkpointTxn(txn, r)
			switch {
			case errors.Is(err, ErrNotFound):
			case err != nil:
				return err
			default:
				out[i] = signed
			}
		}
		return nil
	})
	return out, err
}

// latestCheckpoint is the latest closed checkpoint of a tree.
type latestCheckpoint struct {
	round  uint64
	size   uint64
	signed []byte
}

// latestTxn returns the latest closed checkpoint, or ErrNotFound.
func (t *Tree) latestTxn(txn *badger.Txn) (latestCheckpoint, error) {
	b, err := getValue(txn, t.keys.latest())
	if err != nil {
		return latestCheckpoint{}, fmt.Errorf("merkle: latest checkpoint: %w", err)
	}
	if len(b) != 16 {
		return latestCheckpoint{}, fmt.Errorf("merkle: latest checkpoint record is %d bytes: %w", len(b), ErrCorrupt)
	}
	l := latestCheckpoint{round: binary.BigEndian.Uint64(b), size: binary.BigEndian.Uint64(b[8:])}
	l.signed, err = t.checkpointTxn(txn, l.round)
	if errors.Is(err, ErrNotFound) {
		return latestCheckpoint{}, fmt.Errorf("merkle: latest round %d has no checkpoint: %w", l.round, ErrCorrupt)
	}
	return l, err
}

// checkpointTxn returns the signed checkpoint of round.
func (t *Tree) checkpointTxn(txn *badger.Txn, round uint64) ([]byte, error) {
	signed, err := getValue(txn, t.keys.round(round))
	if err != nil {
		return nil, fmt.Errorf("merkle: checkpoint of round %d: %w", round, err)
	}
	return signed, nil
}

// getValue returns a copy of the value of key, or ErrNotFound.
func getValue(txn *badger.Txn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

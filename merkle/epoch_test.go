package merkle

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"
)

func TestCloseEpochChainsSignedCheckpoints(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	tree := NewTree(db, []byte("local"))
	s, v := signerVerifier(t, exampleOrigin, 0)

	if _, err := tree.LatestCheckpoint(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LatestCheckpoint of a new tree: err = %v, want ErrNotFound", err)
	}
	signed1, c1, err := tree.CloseEpoch(ctx, 100, time.Unix(1000, 0), s, exampleOrigin)
	if err != nil {
		t.Fatal(err)
	}
	if c1.Size != 0 || c1.Prev != nil || c1.Round != 100 || c1.Time != 1000 {
		t.Fatalf("first checkpoint = %+v, want size 0, round 100, time 1000, no prev", c1)
	}

	indexBatch(t, db, tree, testRecords(0, 37))
	signed2, c2, err := tree.CloseEpoch(ctx, 101, time.Unix(1010, 0), s, exampleOrigin)
	if err != nil {
		t.Fatal(err)
	}
	opened, _, err := OpenCheckpoint(signed2, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	root, _ := tree.Root(37)
	if opened.Size != 37 || string(opened.Root) != string(root) || string(opened.Prev) != string(NoteHash(signed1)) {
		t.Fatalf("second checkpoint = %+v, want size 37, the tree root and prev = hash of the first note", opened)
	}
	if string(c2.Marshal()) != string(opened.Marshal()) {
		t.Fatalf("returned checkpoint %+v differs from the signed one %+v", c2, opened)
	}

	p, err := tree.ConsistencyProof(c1.Size, c2.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyConsistent(c1, c2, p); err != nil {
		t.Fatalf("VerifyConsistent of consecutive epochs: %v", err)
	}

	for round, want := range map[uint64][]byte{100: signed1, 101: signed2} {
		if got, err := tree.CheckpointAt(round); err != nil || string(got) != string(want) {
			t.Errorf("CheckpointAt(%d) = %q, %v; want %q", round, got, err, want)
		}
	}
	if got, err := tree.LatestCheckpoint(); err != nil || string(got) != string(signed2) {
		t.Errorf("LatestCheckpoint() = %q, %v; want the second note", got, err)
	}
	if _, err := tree.CheckpointAt(99); !errors.Is(err, ErrNotFound) {
		t.Errorf("CheckpointAt(99): err = %v, want ErrNotFound", err)
	}
	all, err := tree.CheckpointsAt([]uint64{99, 101, 100, 102})
	if err != nil || len(all) != 4 || all[0] != nil || string(all[1]) != string(signed2) || string(all[2]) != string(signed1) || all[3] != nil {
		t.Errorf("CheckpointsAt(99, 101, 100, 102) = %q, %v; want nil, the second note, the first, nil", all, err)
	}
}

func TestCloseEpochRejectsStaleRounds(t *testing.T) {
	ctx := context.Background()
	tree := NewTree(openDB(t), nil)
	s, _ := signerVerifier(t, exampleOrigin, 0)
	if _, _, err := tree.CloseEpoch(ctx, 5, time.Unix(50, 0), s, exampleOrigin); err != nil {
		t.Fatal(err)
	}
	for _, round := range []uint64{5, 4, 0} {
		if _, _, err := tree.CloseEpoch(ctx, round, time.Unix(60, 0), s, exampleOrigin); !errors.Is(err, ErrStaleRound) {
			t.Errorf("CloseEpoch(round %d) after round 5: err = %v, want ErrStaleRound", round, err)
		}
	}
	if _, _, err := tree.CloseEpoch(ctx, 6, time.Unix(60, 0), s, "example.org/node2"); !errors.Is(err, ErrSignature) {
		t.Errorf("CloseEpoch with a key of another name: err = %v, want ErrSignature", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := tree.CloseEpoch(cancelled, 6, time.Unix(60, 0), s, exampleOrigin); !errors.Is(err, context.Canceled) {
		t.Errorf("CloseEpoch with a cancelled context: err = %v, want context.Canceled", err)
	}
}

func TestCloseEpochSucceedsWhileRecordsAreAppended(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	tree := NewTree(db, nil)
	s, v := signerVerifier(t, exampleOrigin, 0)

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for first := uint64(0); first < 2000; first += 10 {
			if err := db.Update(func(txn *badger.Txn) error { return tree.IndexBatch(txn, testRecords(first, 10)) }); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var prev Checkpoint
	for round := uint64(1); round <= 20; round++ {
		signed, _, err := tree.CloseEpoch(ctx, round, time.Unix(int64(round), 0), s, exampleOrigin)
		if err != nil {
			t.Fatalf("CloseEpoch(round %d): %v", round, err)
		}
		c, _, err := OpenCheckpoint(signed, note.VerifierList(v))
		if err != nil {
			t.Fatal(err)
		}
		if round > 1 {
			p, err := tree.ConsistencyProof(prev.Size, c.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyConsistent(prev, c, p); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		prev = c
	}
	wg.Wait()
}

func TestVerifyConsistentRejectsForksShrinksAndOtherOrigins(t *testing.T) {
	db := openDB(t)
	honest, fork := NewTree(db, []byte("honest")), NewTree(db, []byte("fork"))
	indexBatch(t, db, honest, testRecords(0, 20))
	forked := testRecords(0, 30)
	forked[12].Payload = []byte(`{"rewritten":true}`)
	indexBatch(t, db, fork, forked)
	indexBatch(t, db, honest, testRecords(20, 10))

	checkpoint := func(tr *Tree, size uint64) Checkpoint {
		root, err := tr.Root(size)
		if err != nil {
			t.Fatal(err)
		}
		return Checkpoint{Origin: exampleOrigin, Size: size, Root: root}
	}
	proof := func(tr *Tree, size1, size2 uint64) [][]byte {
		p, err := tr.ConsistencyProof(size1, size2)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	at20, at30, forkAt30 := checkpoint(honest, 20), checkpoint(honest, 30), checkpoint(fork, 30)
	if err := VerifyConsistent(at20, at30, proof(honest, 20, 30)); err != nil {
		t.Fatalf("a real extension: %v", err)
	}
	if err := VerifyConsistent(at30, at30, nil); err != nil {
		t.Fatalf("the same checkpoint twice: %v", err)
	}
	other := at30
	other.Origin = "example.org/node2"
	for _, c := range []struct {
		name       string
		prev, next Checkpoint
		proof      [][]byte
	}{
		{"a fork proven by its own tree", at20, forkAt30, proof(fork, 20, 30)},
		{"a fork with the honest proof", at20, forkAt30, proof(honest, 20, 30)},
		{"a different root at the same size", at30, forkAt30, nil},
		{"a shrink", at30, at20, proof(honest, 20, 30)},
		{"another origin", at20, other, proof(honest, 20, 30)},
		{"a missing proof", at20, at30, nil},
	} {
		if err := VerifyConsistent(c.prev, c.next, c.proof); !errors.Is(err, ErrInconsistent) {
			t.Errorf("%s: err = %v, want ErrInconsistent", c.name, err)
		}
	}
}

func TestConcurrentCloseEpochsKeepOneChain(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	tree := NewTree(db, nil)
	s, v := signerVerifier(t, exampleOrigin, 0)
	indexBatch(t, db, tree, testRecords(0, 5))

	const rounds = 8
	var wg sync.WaitGroup
	for round := uint64(1); round <= rounds; round++ {
		wg.Go(func() {
			_, _, err := tree.CloseEpoch(ctx, round, time.Unix(int64(round), 0), s, exampleOrigin)
			if err != nil && !errors.Is(err, ErrStaleRound) {
				t.Errorf("CloseEpoch(round %d): %v", round, err)
			}
		})
	}
	wg.Wait()

	// The closed rounds, in order, form one chain ending at the latest.
	var prev []byte
	for round := uint64(1); round <= rounds; round++ {
		signed, err := tree.CheckpointAt(round)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		c, _, err := OpenCheckpoint(signed, note.VerifierList(v))
		if err != nil {
			t.Fatal(err)
		}
		if prev == nil && c.Prev != nil || prev != nil && !bytes.Equal(c.Prev, NoteHash(prev)) {
			t.Fatalf("round %d: prev %x does not name the previously closed checkpoint", round, c.Prev)
		}
		prev = signed
	}
	if latest, err := tree.LatestCheckpoint(); err != nil || !bytes.Equal(latest, prev) {
		t.Fatalf("LatestCheckpoint() is not the last checkpoint of the chain (%v)", err)
	}
}

// TestCloseEpochWithMapEndsWithTheMapLine: the checkpoint's map line is the
// map root at the checkpoint's size, and a failing map root fails the close
// and stores nothing.
func TestCloseEpochWithMapEndsWithTheMapLine(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	tree := NewTree(db, []byte("local"))
	s, v := signerVerifier(t, exampleOrigin, 0)
	indexBatch(t, db, tree, testRecords(0, 5))
	var asked []uint64
	mapRoot := func(size uint64) ([]byte, error) {
		asked = append(asked, size)
		return bytes.Repeat([]byte{byte(size)}, 32), nil
	}
	signed, c, err := tree.CloseEpochWithMap(ctx, 100, time.Unix(1000, 0), s, exampleOrigin, mapRoot)
	if err != nil {
		t.Fatal(err)
	}
	opened, _, err := OpenCheckpoint(signed, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != 1 || asked[0] != 5 || !bytes.Equal(opened.Map, bytes.Repeat([]byte{5}, 32)) || !bytes.Equal(c.Map, opened.Map) {
		t.Fatalf("map root asked for sizes %v; checkpoint map %x, want the root at size 5", asked, opened.Map)
	}
	if !bytes.HasSuffix(c.Marshal(), []byte("map BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU=\n")) {
		t.Fatalf("the map line is not the last line:\n%s", c.Marshal())
	}

	indexBatch(t, db, tree, testRecords(5, 2))
	failing := func(uint64) ([]byte, error) { return nil, errors.New("map store failed") }
	if _, _, err := tree.CloseEpochWithMap(ctx, 101, time.Unix(1010, 0), s, exampleOrigin, failing); err == nil {
		t.Fatal("a close whose map root failed succeeded")
	}
	if _, err := tree.CheckpointAt(101); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a failed close stored a checkpoint: %v", err)
	}
	if latest, err := tree.LatestCheckpoint(); err != nil || !bytes.Equal(latest, signed) {
		t.Fatalf("the latest checkpoint changed after a failed close: %v", err)
	}
}

package vmap

import (
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// LowerCommittedTxn lowers the committed version in the caller's
// transaction only when it is above the size cut back to: to the newest
// kept version not above it, or to 0; the store then opens there, the
// saves above dropped, with the root it had at that version.
func TestLowerCommittedTxnCutsTheMapBackWithItsRecords(t *testing.T) {
	tests := []struct {
		name       string
		size, want uint64
	}{
		{"committed at or below the size: unchanged", 200, 200},
		{"above: the newest kept version below", 170, 150},
		{"exactly a kept version", 150, 150},
		{"below every kept version: 0", 90, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openBadger(t, 0)
			store := NewBadgerStore(db, StorePrefix("replica/test/node1"))
			tr, err := store.Open(2)
			if err != nil {
				t.Fatal(err)
			}
			roots := map[uint64]Hash{}
			for v := range uint64(4) {
				for i := range 20 {
					if err := tr.Set(benchKey(int(v)*20+i), Value{}.Append(v, Hash{byte(i)})); err != nil {
						t.Fatal(err)
					}
				}
				if roots[(v+1)*50], err = tr.CommitAt((v + 1) * 50); err != nil {
					t.Fatal(err)
				}
			}
			kept := tr.Versions() // 150 and 200: the last two
			var got uint64
			err = db.Update(func(txn *badger.Txn) error {
				got, err = store.LowerCommittedTxn(txn, tt.size, kept)
				return err
			})
			if err != nil || got != tt.want {
				t.Fatalf("LowerCommittedTxn(%d, kept %v) = %d, %v; want %d", tt.size, kept, got, err, tt.want)
			}
			if tt.want == 0 {
				return // a map at 0 is cleared before it is opened (Clear's test)
			}
			reopened, err := NewBadgerStore(db, StorePrefix("replica/test/node1")).Open(2)
			if err != nil {
				t.Fatal(err)
			}
			if reopened.Version() != tt.want || reopened.Root() != roots[tt.want] {
				t.Fatalf("reopened at %d with root %x, want %d with %x", reopened.Version(), reopened.Root(), tt.want, roots[tt.want])
			}
		})
	}
}

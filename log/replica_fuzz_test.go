package log

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// FuzzReplicaAppend offers a replica batches of the peer's records, some of
// them altered, and checks the replica's promise: a refused batch changes
// nothing, an accepted one only adds records after the held ones, and held
// records never change.
func FuzzReplicaAppend(f *testing.F) {
	f.Add([]byte{0, 5, 0, 0})  // the first records
	f.Add([]byte{3, 9, 1, 2})  // an overlap with a forged payload
	f.Add([]byte{20, 3, 0, 0}) // a gap
	f.Add([]byte{2, 4, 3, 1})  // another origin
	f.Add([]byte{1, 6, 4, 3})  // a seq out of order
	f.Add([]byte{1, 6, 2, 5})  // a time going back
	l, err := Open(context.Background(), Options{Dir: f.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { l.Close() })
	r, err := l.Replica(peer)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		for len(ops) >= 4 {
			op := ops[:4]
			ops = ops[4:]
			batch := peerRecords(int(op[0]%32), int(op[1]%16))
			if len(batch) > 0 {
				alter(&batch[int(op[3])%len(batch)], op[2]%7)
			}
			before := heldLeaves(t, r)
			added, err := r.Append(context.Background(), batch)
			after := heldLeaves(t, r)
			if len(after) < len(before) {
				t.Fatalf("replica shrank from %d to %d records", len(before), len(after))
			}
			for i := range before {
				if !bytes.Equal(before[i], after[i]) {
					t.Fatalf("held record %d changed", i)
				}
			}
			if err != nil && (added != 0 || len(after) != len(before)) {
				t.Fatalf("refused batch (%v) added %d records", err, len(after)-len(before))
			}
			if err == nil {
				if added != len(after)-len(before) {
					t.Fatalf("Append says %d added, the replica grew by %d", added, len(after)-len(before))
				}
				for _, rec := range batch {
					if rec.Seq < uint64(len(after)) && !bytes.Equal(rec.MarshalLeaf(), after[rec.Seq]) {
						t.Fatalf("accepted batch holds record %d, which the replica does not", rec.Seq)
					}
				}
			}
		}
	})
}

// alter changes one field of rec, or nothing (how 0).
func alter(rec *Record, how byte) {
	switch how {
	case 1:
		rec.Payload = append(rec.Payload, ' ')
	case 2:
		rec.Time = rec.Time.Add(time.Nanosecond)
	case 3:
		rec.Origin = "other.example"
	case 4:
		rec.Seq += 2
	case 5:
		rec.Time = time.Unix(0, 0).UTC()
	case 6:
		rec.Kind = ""
	}
}

// heldLeaves reads the leaf encodings of every record the replica holds.
func heldLeaves(t *testing.T, r *Replica) [][]byte {
	t.Helper()
	page, err := r.Range(context.Background(), Constraints{MaxEntries: MaxPageEntries})
	if err != nil {
		t.Fatal(err)
	}
	leaves := make([][]byte, len(page.Records))
	for i := range page.Records {
		leaves[i] = page.Records[i].MarshalLeaf()
	}
	if uint64(len(leaves)) != r.Size() {
		t.Fatalf("Range read %d records of %d", len(leaves), r.Size())
	}
	return leaves
}

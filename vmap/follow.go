package vmap

import (
	"context"
	"fmt"

	"github.com/intermesh/intermesh/log"
)

// Ranger reads a log's records a page at a time: log.Log and log.Replica.
type Ranger interface {
	Range(ctx context.Context, c log.Constraints) (log.Page, error)
}

// Follow appends the records of src from the map's size up to size, read a
// page at a time. It fails if src holds fewer than size records, and on
// the first record Append refuses (the map then covers the records before
// it).
func (m *LogMap) Follow(ctx context.Context, src Ranger, size uint64) error {
	for m.Size() < size {
		want := int(min(size-m.Size(), log.MaxPageEntries)) // no record past size is read
		page, err := src.Range(ctx, log.Constraints{From: m.Size(), MaxEntries: want})
		if err != nil {
			return fmt.Errorf("vmap: reading records from %d: %w", m.Size(), err)
		}
		if len(page.Records) == 0 {
			return fmt.Errorf("vmap: the map needs %d records, the log has none from %d", size, m.Size())
		}
		for _, r := range page.Records {
			if m.Size() == size {
				break
			}
			if r.Seq != m.Size() {
				return fmt.Errorf("vmap: the log gave record %d where %d was due", r.Seq, m.Size())
			}
			if err := m.Append(r.MarshalLeaf()); err != nil {
				return err
			}
		}
	}
	return nil
}

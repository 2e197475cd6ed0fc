package portal

import (
	"fmt"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/vmap"
)

// predecessorChain is what a Full Get adds for a latest version signed by
// an online key (GetProof.Predecessors, HistoryBefore): the records before
// it in its identifier's history, oldest first, and the history value
// before the oldest of them.
type predecessorChain struct {
	records []log.Record
	before  vmap.Hash
}

// predecessorsOf returns the chain of latest, the latest version of its
// identifier in src, when latest is a profile (a Profile or Account record)
// signed by one of its online keys: the records before it back to the
// latest one signed by the offline key, at most MaxPredecessors. It
// returns nil for any other record. The history value is recomputed from
// the identifier's first record, as the map computes it.
func predecessorsOf(src source, latest *log.Record) (*predecessorChain, error) {
	if (latest.Kind != KindProfile && latest.Kind != KindAccount) || signedOffline(latest) {
		return nil, nil
	}
	seqs, err := seqsBefore(src, latest.Identifier, latest.Seq)
	if err != nil {
		return nil, err
	}
	var chain []log.Record
	for i := len(seqs) - 1; i >= 0 && len(chain) < MaxPredecessors; i-- {
		rec, err := src.get(seqs[i])
		if err != nil {
			return nil, fmt.Errorf("portal: predecessor %d of %s: %w", seqs[i], latest.Identifier, err)
		}
		chain = append([]log.Record{rec}, chain...)
		if signedOffline(&rec) {
			break
		}
	}
	c := &predecessorChain{records: chain}
	for _, seq := range seqs[:len(seqs)-len(chain)] {
		rec, err := src.get(seq)
		if err != nil {
			return nil, fmt.Errorf("portal: version %d of %s: %w", seq, latest.Identifier, err)
		}
		c.before = vmap.NextHistory(c.before, rec.Seq, vmap.Hash(rfc6962.DefaultHasher.HashLeaf(rec.MarshalLeaf())))
	}
	return c, nil
}

// signedOffline reports whether a record's portal entry says that the
// profile's offline key signed it: Signer is its OfflineKey, as the portal
// verified when it took the entry (PortalEntry). Reading the claim rather
// than verifying the signature again spares an Ed448 verification per
// Get; a claim that is false (a lying origin's record in a replica) only
// leaves out predecessors the client then finds missing, and it refuses
// the answer.
func signedOffline(rec *log.Record) bool {
	pe, err := UnmarshalPortalEntry(rec.Payload)
	return err == nil && pe.Signer != "" && pe.Signer == pe.OfflineKey
}

// seqsBefore lists the sequence numbers src's index holds for id below
// seq, in log order.
func seqsBefore(src source, id string, seq uint64) ([]uint64, error) {
	var out []uint64
	for from := uint64(0); ; {
		page, more, err := src.seqs(id, from, MaxPageExamined)
		if err != nil {
			return nil, fmt.Errorf("portal: versions of %s: %w", id, err)
		}
		for _, s := range page {
			if s >= seq {
				return out, nil
			}
			out = append(out, s)
		}
		if !more || len(page) == 0 {
			return out, nil
		}
		from = page[len(page)-1] + 1
	}
}

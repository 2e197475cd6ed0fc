package portal

import (
	"errors"
	"net/http"
	"time"

	"github.com/intermesh/intermesh/merkle"
)

// latestCheckpoint reads the latest checkpoint; none yet is an empty note.
func latestCheckpoint(cp Checkpoints) ([]byte, error) {
	note, err := cp.LatestCheckpoint()
	if errors.Is(err, merkle.ErrNotFound) {
		return nil, nil
	}
	return note, err
}

// serveCheckpoint answers GET /checkpoint with the latest signed note.
func (s *Server) serveCheckpoint(w http.ResponseWriter, r *http.Request) {
	if s.deps.Checkpoints == nil {
		http.Error(w, "this node makes no checkpoints", http.StatusNotFound)
		return
	}
	note, err := latestCheckpoint(s.deps.Checkpoints)
	if err != nil {
		s.logger.Error("portal: reading the latest checkpoint", "err", err)
		http.Error(w, "cannot read the latest checkpoint", http.StatusInternalServerError)
		return
	}
	if len(note) == 0 {
		http.Error(w, "no checkpoint yet", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(note)
}

// serveHealth answers GET /healthz: 200 while the log's database is open
// and every write was made durable.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if db := s.log.DB(); db == nil || db.IsClosed() {
		http.Error(w, "log is closed", http.StatusServiceUnavailable)
		return
	}
	if err := s.log.Durability(); err != nil {
		http.Error(w, "the store takes no writes: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// PeriodSchedule is a Schedule of wall-clock aligned epochs (docs/design.md,
// "Epochs and rounds"): round r = floor(unix seconds / Period) closes at
// the start of round r+1. A node with a real epoch ticker can supply its own
// Schedule with the actual time of the last checkpoint instead.
type PeriodSchedule struct {
	// Period is the epoch length.
	Period time.Duration
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
}

func (p PeriodSchedule) clock() time.Time {
	if p.Clock != nil {
		return p.Clock()
	}
	return time.Now()
}

// Epoch implements Schedule.
func (p PeriodSchedule) Epoch() uint64 {
	if p.Period <= 0 {
		return 0
	}
	return uint64(p.clock().UnixNano() / int64(p.Period))
}

// LastCheckpointTime implements Schedule: the start of the current round.
func (p PeriodSchedule) LastCheckpointTime() time.Time {
	if p.Period <= 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(p.Epoch())*int64(p.Period)).UTC()
}

// NextCheckpointTime implements Schedule: the start of the next round.
func (p PeriodSchedule) NextCheckpointTime() time.Time {
	if p.Period <= 0 {
		return time.Time{}
	}
	return p.LastCheckpointTime().Add(p.Period)
}

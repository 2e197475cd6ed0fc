package portal

import (
	"errors"
	"html/template"
	"net/http"
	"strings"
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

// serveHealth answers GET /healthz: 200 while the log's database is open.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if db := s.log.DB(); db == nil || db.IsClosed() {
		http.Error(w, "log is closed", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

var statusPage = template.Must(template.New("status").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Service}} — Mesh portal</title>
<style>body{font-family:sans-serif;margin:2em}td{padding:.2em 1em}pre{background:#f4f4f4;padding:1em}</style></head>
<body><h1>{{.Service}}</h1>
<p>A Mathematical Mesh portal. The protocol is served at <code>POST {{.Path}}</code>;
auditors read <a href="/checkpoint">/checkpoint</a>, operators <a href="/metrics">/metrics</a>.</p>
<table>
<tr><td>Log size</td><td>{{.Size}} records</td></tr>
<tr><td>Last write</td><td>{{.LastWrite}}</td></tr>
<tr><td>Last checkpoint</td><td>{{.LastCheckpoint}}</td></tr>
<tr><td>Next checkpoint</td><td>{{.NextCheckpoint}}</td></tr>
<tr><td>Up since</td><td>{{.Started}}</td></tr>
</table>
{{with .Checkpoint}}<h2>Latest checkpoint</h2><pre>{{.}}</pre>{{end}}
{{with .Peers}}<h2>Federation</h2><p>The members' checkpoints that the latest master-hash
certificate committed to this log covers (origin, tree size, root):</p>
<pre>{{range .}}{{.Head}}
{{end}}</pre>{{end}}
{{with .Certificate}}<h2>Master-hash certificate</h2><pre>{{.}}</pre>{{end}}
{{with .Evidence}}<h2>Evidence of equivocation</h2>{{range .}}<p><b>{{.Origin}}</b>: {{.Reason}}</p>{{end}}{{end}}
</body></html>
`))

// serveStatusPage answers GET / with a small human-readable page: the same
// facts as the Status transaction.
func (s *Server) serveStatusPage(w http.ResponseWriter, r *http.Request) {
	fmtTime := func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return "never"
		}
		return t.UTC().Format(time.RFC3339)
	}
	st, err := s.status(r.Context())
	if err != nil {
		s.logger.Error("portal: status for the status page", "err", err)
		http.Error(w, "cannot read the node's status", http.StatusInternalServerError)
		return
	}
	type peer struct{ Origin, Head string }
	started := s.started
	data := struct {
		Service, Path, LastWrite, LastCheckpoint, NextCheckpoint, Started, Checkpoint, Certificate string
		Size                                                                                       uint64
		Peers                                                                                      []peer
		Evidence                                                                                   []Evidence
	}{Service: s.cfg.Service, Path: WellKnownPath, Size: s.log.Size(), LastWrite: fmtTime(st.LastWriteTime),
		LastCheckpoint: fmtTime(st.LastCheckpointTime), NextCheckpoint: fmtTime(st.NextCheckpointTime),
		Started: fmtTime(&started), Checkpoint: st.CheckpointValue, Evidence: st.Evidence}
	if data.Service == "" {
		data.Service = "Mesh portal"
	}
	for _, p := range st.Peers {
		// The first three lines of a checkpoint: origin, size, root.
		head := strings.SplitN(p.Checkpoint, "\n", 4)
		data.Peers = append(data.Peers, peer{Origin: p.Origin, Head: strings.Join(head[:min(3, len(head))], "  ")})
		data.Certificate = p.MasterHash
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := statusPage.Execute(w, data); err != nil {
		s.logger.Warn("portal: writing the status page", "err", err)
	}
}

// PeriodSchedule is a Schedule of wall-clock aligned epochs (DESIGN.md,
// "Epochs and checkpoints"): round r = floor(unix seconds / Period) closes at
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

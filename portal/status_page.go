package portal

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
)

// statusData is what the status page shows and GET /status.json serves:
// the node's own facts (those of the Status transaction) and, in a
// federation, the federation as the node sees it.
type statusData struct {
	Service        string
	Origin         string
	Size           uint64
	LastWrite      *time.Time `json:",omitempty"`
	LastCheckpoint *time.Time `json:",omitempty"`
	NextCheckpoint *time.Time `json:",omitempty"`
	Started        time.Time
	Checkpoint     string
	// MapRoot is the latest checkpoint's map line: the root of the log's
	// verifiable map over its records ("" without one).
	MapRoot string `json:",omitempty"`
	// CommittedCertificate is the certificate whose MasterHash record the
	// latest checkpoint covers, and Peers the checkpoints it covers.
	CommittedCertificate string     `json:",omitempty"`
	Peers                []peerHead `json:",omitempty"`
	Evidence             []Evidence
	Federation           *FederationStatus `json:",omitempty"`
}

// peerHead is the first lines of a member's checkpoint: origin, size, root.
type peerHead struct{ Origin, Head string }

// statusData gathers what the status page and /status.json show.
func (s *Server) statusData(r *http.Request) (*statusData, error) {
	st, err := s.status(r.Context())
	if err != nil {
		return nil, err
	}
	d := &statusData{Service: s.cfg.Service, Origin: s.origin, Size: s.log.Size(), LastWrite: st.LastWriteTime,
		LastCheckpoint: st.LastCheckpointTime, NextCheckpoint: st.NextCheckpointTime, Started: s.started.UTC(),
		Checkpoint: st.CheckpointValue, Evidence: st.Evidence}
	if d.Service == "" {
		d.Service = "Mesh portal"
	}
	body, _, _ := strings.Cut(d.Checkpoint, "\n\n")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, "map "); ok {
			d.MapRoot = v
		}
	}
	for _, p := range st.Peers {
		head := strings.SplitN(p.Checkpoint, "\n", 4)
		d.Peers = append(d.Peers, peerHead{Origin: p.Origin, Head: strings.Join(head[:min(3, len(head))], "  ")})
		d.CommittedCertificate = p.MasterHash
	}
	if fv, ok := s.deps.Peers.(FederationView); ok {
		if d.Federation, err = fv.FederationStatus(r.Context()); err != nil {
			return nil, err
		}
		if d.Federation != nil {
			d.Evidence = d.Federation.Evidence
		}
	}
	return d, nil
}

// serveStatusJSON answers GET /status.json with the status page's data.
func (s *Server) serveStatusJSON(w http.ResponseWriter, r *http.Request) {
	d, err := s.statusData(r)
	if err != nil {
		s.logger.Error("portal: status for /status.json", "err", err)
		http.Error(w, "cannot read the node's status", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(d)
}

// serveStatusPage answers GET / with the status page: rendered on the
// server, no external resources, and a small script that reloads its main
// part every few seconds.
func (s *Server) serveStatusPage(w http.ResponseWriter, r *http.Request) {
	d, err := s.statusData(r)
	if err != nil {
		s.logger.Error("portal: status for the status page", "err", err)
		http.Error(w, "cannot read the node's status", http.StatusInternalServerError)
		return
	}
	refresh := 5 * time.Second
	if f := d.Federation; f != nil {
		refresh = min(max(time.Duration(f.PeriodSeconds*float64(time.Second))/2, time.Second), 10*time.Second)
	}
	page := struct {
		*statusData
		Path          string
		RefreshMillis int64
	}{d, WellKnownPath, refresh.Milliseconds()}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	if err := statusPage.Execute(w, page); err != nil {
		s.logger.Warn("portal: writing the status page", "err", err)
	}
}

// cellText is the text of a grid cell, so that the grid reads without colour.
var cellText = map[string]string{
	CellCertified: "ok", CellMissing: "miss", CellNoQuorum: "noq", CellEvidence: "EVID", CellUnknown: "·",
	CellPending: "…", CellNotMember: "–",
}

var statusFuncs = template.FuncMap{
	"cell": func(rounds []RoundStatus, round, member int) string { return rounds[round].Cells[member] },
	"cellText": func(c string) string {
		if t, ok := cellText[c]; ok {
			return t
		}
		return c
	},
	"time": func(v any) string {
		var t time.Time
		switch v := v.(type) {
		case time.Time:
			t = v
		case *time.Time:
			if v != nil {
				t = *v
			}
		}
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format(time.RFC3339)
	},
	"short":     func(r uint64) string { return fmt.Sprint(r % 1000) },
	"hyphen":    func(s string) string { return strings.ReplaceAll(s, " ", "-") },
	"title":     func(s string) string { return strings.ToUpper(s[:min(1, len(s))]) + s[min(1, len(s)):] },
	"sizeChart": sizeChart,
	"rateChart": rateChart,
	"join":      func(ss []string) string { return strings.Join(ss, ", ") },
}

var statusPage = template.Must(template.New("status").Funcs(statusFuncs).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Service}} — Mesh portal</title>
<style>
body{font-family:sans-serif;margin:2em;color:#222}td,th{padding:.15em .5em}pre{background:#f4f4f4;padding:1em;overflow:auto}
table.grid{border-collapse:collapse;font-size:70%}table.grid td{text-align:center;min-width:2em;border:1px solid #fff}
.c-certified{background:#c8e6c9;color:#1b5e20}.c-missing{background:#e53935;color:#fff}
.c-no-quorum{background:#ffb300;color:#000}.c-evidence{background:#4a148c;color:#fff;font-weight:bold}
.c-unknown{background:#eee;color:#999}.c-pending{background:#fff;color:#999}.c-not-member{background:#fff;color:#ccc}
.health{padding:.5em 1em;font-size:120%}.h-healthy{background:#c8e6c9}.h-degraded{background:#ffe082}.h-no-quorum{background:#e53935;color:#fff}.h-unknown{background:#eee}
.banner{background:#b71c1c;color:#fff;padding:1em;margin:1em 0}.banner pre{color:#222}
svg{background:#fafafa;border:1px solid #ddd}svg polyline{fill:none;stroke:#1565c0;stroke-width:1.5}
svg text{font-size:9px;fill:#555}td.bad{background:#e53935;color:#fff}
</style></head>
<body><main>
<h1>{{.Service}}</h1>
<p>A Mathematical Mesh portal{{with .Origin}} (log <code>{{.}}</code>){{end}}. The protocol is served at <code>POST {{.Path}}</code>;
auditors read <a href="/checkpoint">/checkpoint</a>, operators <a href="/metrics">/metrics</a>;
this page as data: <a href="/status.json">/status.json</a>.</p>
{{with .Evidence}}<div class="banner" id="evidence"><b>Evidence of equivocation.</b>
{{range .}}<p>Member <b class="accused">{{.Origin}}</b> signed two checkpoints that cannot both be true ({{.Reason}}):</p>
<pre>{{index .Notes 0}}</pre><pre>{{index .Notes 1}}</pre>{{end}}</div>{{end}}
{{with .Federation}}{{with .Backdated}}<div class="banner" id="backdated"><b>Backdated federation updates refused.</b>
{{range .}}<p>Version {{.Version}}, signed by {{range $i, $s := .Signers}}{{if $i}}, {{end}}<b class="accused">{{$s}}</b>{{end}}, would be in force from round {{.Effective}},
but this node certified round {{.Round}} under the members before it:</p>
<pre>{{.Update}}</pre><pre>{{.Certificate}}</pre>{{end}}</div>{{end}}{{end}}
<table>
<tr><td>Log size</td><td id="size">{{.Size}} records</td></tr>
<tr><td>Last write</td><td>{{time .LastWrite}}</td></tr>
<tr><td>Last checkpoint</td><td>{{time .LastCheckpoint}}</td></tr>
{{with .MapRoot}}<tr><td title="the root of the log's verifiable map (every profile, escrow and account name, its latest record) as of the latest checkpoint">Map root</td><td id="map"><code>{{.}}</code></td></tr>{{end}}
<tr><td>Next checkpoint</td><td>{{time .NextCheckpoint}}</td></tr>
<tr><td>Up since</td><td>{{time .Started}}</td></tr>
</table>
{{with .Federation}}
<h2>Federation {{.Federation}}</h2>
{{with .Health}}<p id="health" class="health h-{{hyphen .State}}"><b>{{title .State}}</b>{{if .Round}} (round {{.Round}}){{end}}{{if .Missing}}: certified without
{{range $i, $m := .Missing}}{{if $i}}; {{end}}<b>{{$m.Origin}}</b> since round {{$m.SinceRound}} ({{time .Since}}){{end}}{{end}}{{with .Since}}: no certificate since {{time .}}{{end}}.</p>{{end}}
<p>Quorum {{.Quorum}} of {{len .Members}}; rounds of {{.PeriodSeconds}} s; connected to {{.Connected}} members, exchanging gossip with {{.Gossiping}}.
The last {{len .Rounds}} rounds as this node holds them (columns: round number mod 1000):
<span class="c-certified">ok</span> certified with the member's checkpoint,
<span class="c-missing">miss</span> certified without it,
<span class="c-no-quorum">noq</span> no quorum,
<span class="c-evidence">EVID</span> evidence against the member,
<span class="c-unknown">·</span> this node was not running,
<span class="c-pending">…</span> votes still coming in,
<span class="c-not-member">–</span> not a member yet.</p>
<table class="grid" id="grid"><tr><th></th>{{range .Rounds}}<th title="round {{.Round}}, {{.Signatures}} signatures">{{short .Round}}</th>{{end}}</tr>
{{$f := .}}{{range $m, $origin := .Members}}<tr data-member="{{$origin}}"><th>{{$origin}}</th>{{range $r, $round := $f.Rounds}}{{$c := cell $f.Rounds $r $m}}<td class="c-{{$c}}" title="{{$origin}}, round {{$round.Round}}: {{$c}}">{{cellText $c}}</td>{{end}}</tr>
{{end}}</table>
<h3>Replicas</h3>
<p>The map columns are this node's recomputation of each origin's verifiable map from its replica, against which the
origin's checkpoints' map lines are checked: the records it covers, its root over them, and the checkpoints refused since
this node started because their map line was another root. <i>busy</i>: the replica was being worked on (its map recomputed).</p>
<table id="replicas"><tr><th>origin</th><th>records held</th><th>known</th><th>lag (records)</th><th>verified size</th><th>lag (rounds)</th><th>map records</th><th>map root</th><th>map mismatches</th><th></th></tr>
{{range .Replicas}}<tr data-origin="{{.Origin}}"><td>{{.Origin}}</td><td>{{.Size}}</td>{{if .Busy}}<td colspan="6" class="busy"><i>busy</i></td>{{else}}<td>{{.Known}}</td><td>{{.LagRecords}}</td><td>{{.VerifiedSize}}</td><td>{{.LagRounds}}</td>{{if .MapOpened}}<td class="map-size">{{.MapSize}}</td><td class="map-root"><code>{{.MapRoot}}</code></td>{{else}}<td class="map-size" colspan="2"><i>not opened</i></td>{{end}}{{end}}<td class="map-mismatches{{if .MapMismatches}} bad{{end}}">{{.MapMismatches}}</td><td>{{.Untrusted}}</td></tr>
{{end}}</table>
<h3>Log over the last hour</h3>
<p>{{sizeChart .Growth}} {{rateChart .Growth}}</p>
{{with .Certificate}}<h3>Latest certificate: round {{.Round}}</h3>
<p>{{.Checkpoints}} checkpoints, signed by {{join .Signers}}.</p><pre>{{.Note}}</pre>{{end}}
{{end}}
{{with .Checkpoint}}<h2>Latest checkpoint</h2><pre>{{.}}</pre>{{end}}
{{with .Peers}}<h2>Committed to this log</h2><p>The members' checkpoints that the master-hash certificate
committed to this log covers (origin, tree size, root):</p>
<pre>{{range .}}{{.Head}}
{{end}}</pre>{{end}}
{{with .CommittedCertificate}}<h2>Master-hash certificate</h2><pre>{{.}}</pre>{{end}}
</main>
<script>
// Reload the page's main part in place every few seconds.
setInterval(async () => {
  try {
    const r = await fetch(location.pathname, {cache: "no-store"});
    if (!r.ok) return;
    const d = new DOMParser().parseFromString(await r.text(), "text/html");
    const m = d.querySelector("main");
    if (m) document.querySelector("main").replaceWith(m);
  } catch (e) {}
}, {{.RefreshMillis}});
</script>
</body></html>
`))

// Chart size in SVG units.
const chartW, chartH, chartPad = 360.0, 90.0, 14.0

// sizeChart draws the log size over time as an inline SVG line.
func sizeChart(g []GrowthPoint) template.HTML {
	xs, ys := make([]float64, len(g)), make([]float64, len(g))
	for i, p := range g {
		xs[i], ys[i] = float64(p.Time.Unix()), float64(p.Size)
	}
	return lineChart("log size (records)", "size-chart", xs, ys)
}

// rateChart draws the rate at which the log grew (records appended per
// second between the sampled round closes: portal writes, plus one
// master-hash record a round and any evidence) as an inline SVG line.
func rateChart(g []GrowthPoint) template.HTML {
	var xs, ys []float64
	for i := 1; i < len(g); i++ {
		dt := g[i].Time.Sub(g[i-1].Time).Seconds()
		if dt <= 0 || g[i].Size < g[i-1].Size {
			continue
		}
		xs = append(xs, float64(g[i].Time.Unix()))
		ys = append(ys, float64(g[i].Size-g[i-1].Size)/dt)
	}
	return lineChart("records appended per second", "rate-chart", xs, ys)
}

// lineChart renders numbers only (no text from outside), so its output is
// safe HTML.
func lineChart(title, id string, xs, ys []float64) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="%s" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`, id, chartW, chartH, chartW, chartH, title)
	fmt.Fprintf(&b, `<text x="4" y="10">%s</text>`, title)
	if len(xs) < 2 {
		b.WriteString(`<text x="4" y="50">not enough rounds yet</text></svg>`)
		return template.HTML(b.String())
	}
	x0, x1, y1 := xs[0], xs[len(xs)-1], 0.0
	for _, y := range ys {
		y1 = max(y1, y)
	}
	if x1 == x0 {
		x1 = x0 + 1
	}
	if y1 == 0 {
		y1 = 1
	}
	b.WriteString(`<polyline points="`)
	for i := range xs {
		x := chartPad + (xs[i]-x0)/(x1-x0)*(chartW-2*chartPad)
		y := chartH - chartPad - ys[i]/y1*(chartH-2*chartPad-6)
		fmt.Fprintf(&b, "%.1f,%.1f ", x, y)
	}
	fmt.Fprintf(&b, `"/><text x="%.0f" y="10" text-anchor="end">max %.4g</text>`, chartW-4, y1)
	fmt.Fprintf(&b, `<text x="4" y="%.0f">%s</text>`, chartH-3, time.Unix(int64(x0), 0).UTC().Format("15:04"))
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end">%s</text></svg>`, chartW-4, chartH-3, time.Unix(int64(x1), 0).UTC().Format("15:04"))
	return template.HTML(b.String())
}

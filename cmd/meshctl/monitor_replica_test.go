package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/intermesh/intermesh/audit"
	"github.com/intermesh/intermesh/config"
)

// TestScanLogsReadsADownMembersLogFromAReplica: a member that does not
// serve its tiles does not hide its records from the owner's monitor: its
// log is read from another member's replica of it (/replica/<origin>/),
// verified against the same certified checkpoint; a replica that does not
// verify is a warning, and the next member's is read.
func TestScanLogsReadsADownMembersLogFromAReplica(t *testing.T) {
	leaves := func(id string) [][]byte { return threeLeaves(t, id) }
	// replicaOf serves the log at base under /replica/down/.
	replicaOf := func(base string) string {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		s := httptest.NewServer(http.StripPrefix("/replica/down", httputil.NewSingleHostReverseProxy(u)))
		t.Cleanup(s.Close)
		return s.URL
	}
	real, root := tileServer(t, leaves("MID"))
	other, _ := tileServer(t, leaves("SOMEONE-ELSE"))
	down := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(down.Close)
	stale, good := replicaOf(other), replicaOf(real)
	keys := &getVerifier{fed: &config.Federation{Members: []config.Member{
		{Origin: "down", HTTP: down.URL}, {Origin: "stale", HTTP: stale}, {Origin: "good", HTTP: good}}}}
	cert := &audit.Certificate{Checkpoints: []audit.Checkpoint{{Origin: "down", Size: 3, Root: root[:]}}}
	st := &monitorState{}
	var out strings.Builder
	alerts := scanLogs(t.Context(), &out, keys, cert, 7, st, monitorTarget{ids: map[string]bool{"MID": true}, mine: map[string]bool{}})
	for _, want := range []string{
		"warning: stale's replica of down's log:",
		"ALERT: record 1 of down's log, Profile MID",
		"down's log: read records 0 to 2 of its checkpoint at size 3 certified in round 7, through tlog-tiles from good's replica (down did not answer)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the scan does not say %q:\n%s", want, out.String())
		}
	}
	if alerts != 1 || st.Logs["down"] != 3 {
		t.Errorf("%d alerts (want 1: the record without a signed entry), progress %v (want down 3)", alerts, st.Logs)
	}
	// Run again: a log with nothing new is a line, except under --watch.
	for _, quiet := range []bool{false, true} {
		out.Reset()
		scanLogs(t.Context(), &out, keys, cert, 7, st, monitorTarget{ids: map[string]bool{"MID": true}, mine: map[string]bool{}, quiet: quiet})
		if said := strings.Contains(out.String(), "down's log: nothing new"); said == quiet {
			t.Errorf("quiet %v: the second scan said:\n%s", quiet, out.String())
		}
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/loadgen"
	"github.com/intermesh/intermesh/testnet"
)

// loadJSON runs meshctl with --json and decodes its output into v.
func loadJSON(t *testing.T, v any, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(t.Context(), append([]string{"--json"}, args...), strings.NewReader(""), &out, &errb)
	r := result{stdout: out.String(), stderr: errb.String(), code: code}
	if err := json.Unmarshal(out.Bytes(), v); err != nil {
		t.Fatalf("meshctl %v: exit %d, output is not JSON: %v\n%s\n%s", args, code, err, r.stdout, r.stderr)
	}
	return r
}

func TestLoadAcknowledgesSignedWritesAndVerifyFindsEachOneReplicatedAndCertified(t *testing.T) {
	net := startAuditNet(t)
	acks := filepath.Join(t.TempDir(), "acks.jsonl")

	var rep loadgen.Report
	r := loadJSON(t, &rep, "load", "--federation", net.fedPath, "--rate", "60", "--duration", "2s",
		"--accounts", "8", "--acks", acks)
	if r.code != exitOK {
		t.Fatalf("load: exit %d\n%s", r.code, r.stderr)
	}
	if rep.Accounts != 8 || rep.Acknowledged == 0 || len(rep.Refused) != 0 {
		t.Fatalf("load report: %+v", rep)
	}
	if rep.LatencyP50ms <= 0 || rep.LatencyP99ms < rep.LatencyP50ms || rep.LatencyMaxms < rep.LatencyP99ms {
		t.Errorf("latency figures out of order: %+v", rep)
	}
	writes, err := loadgen.ReadAcks(acks)
	if err != nil {
		t.Fatal(err)
	}
	if len(writes) != rep.Accounts+rep.Acknowledged {
		t.Fatalf("%d writes listed, want %d accounts + %d updates", len(writes), rep.Accounts, rep.Acknowledged)
	}
	portals := map[string]bool{}
	for _, w := range writes {
		portals[w.Portal] = true
	}
	if len(portals) != 4 {
		t.Errorf("the load reached %d portals, want all 4", len(portals))
	}

	var ver loadgen.VerifyReport
	r = loadJSON(t, &ver, "load", "--verify", "--federation", net.fedPath, "--acks", acks, "--token", auditToken, "--wait", "60s")
	if r.code != exitOK || !ver.OK {
		t.Fatalf("verify: exit %d: %+v\n%s", r.code, ver, r.stderr)
	}
	if ver.Writes != len(writes) || ver.Served != len(writes) || ver.Replicas != len(writes) || ver.Included != len(writes) {
		t.Errorf("verify counted %+v, want every one of %d writes", ver, len(writes))
	}
	for _, o := range ver.Origins {
		if o.Signers < 3 || o.Size == 0 || o.LogCopied != o.Size {
			t.Errorf("origin %s: %+v", o.Origin, o)
		}
	}

	// A write the portal never acknowledged (a digest it never saw) fails
	// the check, by name.
	forged := writes[len(writes)-1]
	forged.Digest = strings.Repeat("A", 86)
	line, _ := json.Marshal(forged)
	f, err := os.OpenFile(acks, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(append(line, '\n'))
	f.Close()
	r = loadJSON(t, &ver, "load", "--verify", "--federation", net.fedPath, "--acks", acks, "--token", auditToken, "--wait", "2s")
	if r.code != exitFailure || ver.OK {
		t.Fatalf("verify of a write that was never made: exit %d, ok %v", r.code, ver.OK)
	}
	if ver.Served != len(writes) || !strings.Contains(strings.Join(ver.Failures, "\n"), forged.Digest+") acknowledged by "+originOfPortal(net, forged.Portal)+" is not served by it") {
		t.Errorf("the forged write is not named among the failures: %v", ver.Failures)
	}
}

// originOfPortal is the origin of the member whose portal is u.
func originOfPortal(net *auditNet, u string) string {
	for _, m := range net.Federation().Members {
		if strings.TrimRight(m.HTTP, "/") == strings.TrimRight(u, "/") {
			return m.Origin
		}
	}
	return ""
}

func TestLoadRefusesBadFlagsAndVerifyRefusesAnEmptyList(t *testing.T) {
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"a zero rate":            {"load", "--rate", "0"},
		"no accounts":            {"load", "--accounts", "0"},
		"a node that is not URL": {"load", "--node", "ftp://x"},
		"verify without a file":  {"load", "--verify"},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(t.Context(), args, strings.NewReader(""), &out, &errb); code != exitUsage {
				t.Errorf("exit %d, want %d: %s", code, exitUsage, errb.String())
			}
		})
	}
	l := testnet.Layout{Dir: dir, Nodes: 1, HTTPBasePort: 1, P2PBasePort: 2, Period: time.Second}
	if _, err := testnet.Generate(l); err != nil {
		t.Fatal(err)
	}
	fed := filepath.Join(dir, testnet.FederationFile)
	empty := filepath.Join(dir, "acks.jsonl")
	os.WriteFile(empty, nil, 0o644)
	var out, errb bytes.Buffer
	code := run(t.Context(), []string{"load", "--verify", "--federation", fed, "--acks", empty}, strings.NewReader(""), &out, &errb)
	if code != exitFailure || !strings.Contains(out.String(), "lists no acknowledged writes") {
		t.Errorf("verify of an empty list: exit %d (%s%s), want a failure: nothing was checked", code, out.String(), errb.String())
	}
	// Without --acks the list is the one beside the federation file, so a
	// run against another testnet never appends to this one's.
	beside := filepath.Join(dir, "meshctl-load.jsonl")
	os.WriteFile(beside, nil, 0o644)
	out.Reset()
	errb.Reset()
	code = run(t.Context(), []string{"load", "--verify", "--federation", fed}, strings.NewReader(""), &out, &errb)
	if code != exitFailure || !strings.Contains(out.String()+errb.String(), beside) {
		t.Errorf("verify without --acks: exit %d (%s%s), want it to read %s", code, out.String(), errb.String(), beside)
	}
}

func TestLoadCountsWhatAPortalTooSlowToKeepUpWasNeverSent(t *testing.T) {
	p := newTestPortal(t)
	target, err := url.Parse(p.url)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond) // a portal that answers 10 requests a second per connection
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(slow.Close)
	var rep loadgen.Report
	r := loadJSON(t, &rep, "load", "--node", slow.URL, "--rate", "100", "--duration", "1s", "--accounts", "1",
		"--concurrency", "2", "--acks", filepath.Join(t.TempDir(), "acks.jsonl"))
	if r.code != exitOK {
		t.Fatalf("load: exit %d\n%s", r.code, r.stderr)
	}
	refused := 0
	for _, n := range rep.Refused {
		refused += n
	}
	if rep.NotSent == 0 || rep.Acknowledged+refused+rep.NotSent != 100 {
		t.Errorf("of 100 scheduled updates: %d acknowledged, %d refused, %d not sent; want every one accounted for and some not sent", rep.Acknowledged, refused, rep.NotSent)
	}
}

// A portal that is down is named in the report with its refusals, and the
// portal that answered has none.
func TestLoadReportsRefusalsByPortal(t *testing.T) {
	p := newTestPortal(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	acks := filepath.Join(t.TempDir(), "acks.jsonl")
	args := []string{"load", "--node", p.url, "--node", dead, "--rate", "20", "--duration", "1s", "--accounts", "4", "--acks", acks}
	var rep loadgen.Report
	if r := loadJSON(t, &rep, args...); r.code != exitOK {
		t.Fatalf("load: exit %d\n%s", r.code, r.stderr)
	}
	if n := rep.RefusedByPortal[dead]["connection refused"]; n != 2 || n != rep.Refused["connection refused"] {
		t.Errorf("refused by the down portal: %v (all: %v); want its 2 accounts", rep.RefusedByPortal, rep.Refused)
	}
	if len(rep.RefusedByPortal[p.url]) != 0 || rep.Acknowledged == 0 {
		t.Errorf("the live portal: %d acknowledged, refused %v", rep.Acknowledged, rep.RefusedByPortal[p.url])
	}
	var out, errb bytes.Buffer
	if code := run(t.Context(), args, strings.NewReader(""), &out, &errb); code != exitOK {
		t.Fatalf("load: exit %d\n%s", code, errb.String())
	}
	if want := "  by " + dead + ": 2 connection refused\n"; !strings.Contains(out.String(), want) {
		t.Errorf("the human report lacks %q:\n%s", want, out.String())
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/testnet"
)

const (
	// crashKillsEnv sets how many times TestCrashMeshdKilledUnderPublishLoad
	// kills meshd (make test-long sets 100).
	crashKillsEnv     = "INTERMESH_CRASH_KILLS"
	defaultCrashKills = 3
)

func crashKills(t *testing.T) int {
	s := os.Getenv(crashKillsEnv)
	if s == "" {
		return defaultCrashKills
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", crashKillsEnv, s)
	}
	return n
}

// binaries are meshd and meshctl, built once for the package's tests by
// TestMain.
var binaries struct {
	dir string
	err error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "meshd-test-")
	if err == nil {
		binaries.dir = dir
		for _, b := range []struct{ pkg, name string }{{".", "meshd"}, {"../meshctl", "meshctl"}} {
			if out, berr := exec.Command("go", "build", "-o", filepath.Join(dir, b.name), b.pkg).CombinedOutput(); berr != nil {
				binaries.err = fmt.Errorf("go build %s: %w\n%s", b.pkg, berr, out)
				break
			}
		}
	} else {
		binaries.err = err
	}
	code := m.Run()
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
	os.Exit(code)
}

// binary returns the path of the meshd or meshctl binary built by TestMain.
func binary(t *testing.T, name string) string {
	t.Helper()
	if binaries.err != nil {
		t.Fatal(binaries.err)
	}
	return filepath.Join(binaries.dir, name)
}

// buildMeshd returns the meshd binary.
func buildMeshd(t *testing.T) string { t.Helper(); return binary(t, "meshd") }

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// initNode runs `meshd init` for a node directory serving on addr.
func initNode(t *testing.T, bin, addr string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "node")
	if out, err := exec.Command(bin, "init", "--dir", dir, "--http", addr).CombinedOutput(); err != nil {
		t.Fatalf("meshd init: %v\n%s", err, out)
	}
	return dir
}

// daemon is a meshd process under test.
type daemon struct {
	cmd    *exec.Cmd
	url    string
	exited chan struct{} // closed when the process has exited
	err    error         // cmd.Wait's result, once exited is closed
}

// startDaemon runs `meshd run` on dir (with extra arguments and environment)
// and waits until its portal answers. The process is killed when the test
// ends if it still runs.
func startDaemon(t *testing.T, bin, dir, addr string, args []string, env ...string) *daemon {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"run", "--dir", dir, "--http", addr, "--log-level", "warn"}, args...)...)
	cmd.Stderr = os.Stderr
	// The test's own load and checks come from one IP: no rate limit.
	cmd.Env = append(append(os.Environ(), "MESHD_HTTP_RATE_PER_SECOND=0"), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, url: "http://" + addr, exited: make(chan struct{})}
	go func() { d.err = cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.cmd.Process.Kill() // an error means it has exited already
		<-d.exited
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(d.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		select {
		case <-d.exited:
			t.Fatalf("meshd exited before serving: %v", d.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("meshd did not serve within 30s: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // polling a process that is starting
	}
}

// signal sends sig to the daemon, stops the load (if any) from starting
// new requests, and waits until the daemon has exited.
func (d *daemon) signal(t *testing.T, sig syscall.Signal, ld *load) error {
	t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	if ld != nil {
		close(ld.stop)
	}
	select {
	case <-d.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("meshd did not exit within 60s of %v", sig)
	}
	return d.err
}

// request is one transaction of the load: CreateAccount of account bound to
// profile id (which publishes the profile).
type request struct {
	tx, account, id string
}

// load creates accounts, each publishing the profile bound to it, from
// several goroutines until stopped.
type load struct {
	stop chan struct{}
	wg   sync.WaitGroup
	acks atomic.Int64

	mu         sync.Mutex
	acked      []string  // profiles whose CreateAccount was answered with success
	unanswered []request // requests that got no answer at all
	refused    []error   // answers other than success or ServerOverload
}

func startLoad(t *testing.T, url string, workers int) *load {
	t.Helper()
	// Every request gets a fresh connection and a long timeout: an answer
	// that does not come is the server's doing, never the client's.
	c, err := client.New(url, client.WithHTTPClient(&http.Client{
		Transport: &http.Transport{DisableKeepAlives: true},
		Timeout:   time.Minute,
	}))
	if err != nil {
		t.Fatal(err)
	}
	ld := &load{stop: make(chan struct{})}
	for range workers {
		ld.wg.Go(func() {
			for {
				select {
				case <-ld.stop:
					return
				default:
				}
				entry, id, key, err := testnet.NewProfile()
				if err != nil {
					ld.record(request{}, err)
					return
				}
				// CreateAccount registers the account and publishes the profile
				// bound to it in one acknowledged write.
				account := strings.ToLower(id) + "@load.test"
				_, err = testnet.CreateAccountWith(context.Background(), c, account, entry, key)
				if ld.record(request{portal.TxCreateAccount, account, id}, err) {
					ld.mu.Lock()
					ld.acked = append(ld.acked, id)
					ld.mu.Unlock()
					ld.acks.Add(1)
				}
			}
		})
	}
	return ld
}

// record files the outcome of req and reports whether it succeeded.
func (ld *load) record(req request, err error) bool {
	if err == nil {
		return true
	}
	ld.mu.Lock()
	defer ld.mu.Unlock()
	var pe *portal.Error
	switch {
	case errors.As(err, &pe) && pe.Status == portal.ServerOverload: // an answer: shutting down
	case errors.As(err, &pe):
		ld.refused = append(ld.refused, err)
	default:
		ld.unanswered = append(ld.unanswered, req)
	}
	return false
}

// waitAcks waits until n publishes were acknowledged, failing if the daemon
// exits first.
func (ld *load) waitAcks(t *testing.T, d *daemon, n int64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for ld.acks.Load() < n {
		select {
		case <-d.exited:
			t.Fatalf("meshd exited under load: %v", d.err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d publishes acknowledged within 2 minutes", ld.acks.Load(), n)
		}
		time.Sleep(5 * time.Millisecond) // polling a counter of another goroutine
	}
}

// end waits for the load's goroutines, stopped by daemon.signal.
func (ld *load) end(t *testing.T) {
	t.Helper()
	ld.wg.Wait()
	for _, err := range ld.refused {
		t.Errorf("a request was refused: %v", err)
	}
}

// checkServed fails t unless the portal at url returns every identifier.
func checkServed(t *testing.T, url string, ids []string) {
	t.Helper()
	c, err := client.New(url)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		resp, err := c.Get(context.Background(), &portal.GetRequest{Identifier: id})
		if err != nil || len(resp.DataItems) == 0 {
			t.Fatalf("acknowledged profile %s is not served after restart: %v", id, err)
		}
	}
}

// sample returns the identifiers to check after a restart: all of the
// latest round's, and up to 200 of the earlier ones (all are checked at the
// end), so that many kills do not make the test quadratic.
func sample(rng *rand.Rand, earlier, latest []string) []string {
	out := append([]string(nil), latest...)
	for range min(200, len(earlier)) {
		out = append(out, earlier[rng.IntN(len(earlier))])
	}
	return out
}

// meshd is SIGKILLed INTERMESH_CRASH_KILLS times (default 3, make test-long
// 100), each time after a random number of acknowledged publishes; after
// every restart the acknowledged profiles are served.
func TestCrashMeshdKilledUnderPublishLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills meshd processes")
	}
	kills := crashKills(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("kills: %d, seed: %d", kills, seed)
	rng := rand.New(rand.NewPCG(seed, seed>>7))
	bin := buildMeshd(t)
	addr := freeAddr(t)
	dir := initNode(t, bin, addr)
	var earlier, latest []string
	for k := range kills {
		d := startDaemon(t, bin, dir, addr, nil)
		checkServed(t, d.url, sample(rng, earlier, latest))
		earlier = append(earlier, latest...)
		ld := startLoad(t, d.url, 8)
		ld.waitAcks(t, d, int64(5+rng.IntN(60)))
		if err := d.signal(t, syscall.SIGKILL, ld); err == nil {
			t.Fatalf("kill %d: meshd exited cleanly on SIGKILL", k+1)
		}
		ld.end(t)
		latest = ld.acked
		t.Logf("kill %d: %d accounts created (each publishing its profile) acknowledged", k+1, len(latest))
	}
	d := startDaemon(t, bin, dir, addr, nil)
	checkServed(t, d.url, append(earlier, latest...))
	if err := d.signal(t, syscall.SIGTERM, nil); err != nil {
		t.Fatalf("meshd exited with %v on SIGTERM", err)
	}
}

// On SIGTERM under load meshd exits 0, every acknowledged publish is served
// after a restart, and every request it acted on got its answer: a request
// that got none (its connection refused or reset as the listener closed)
// left no trace in the log.
func TestMeshdStopsCleanlyOnSIGTERMUnderLoad(t *testing.T) {
	bin := buildMeshd(t)
	addr := freeAddr(t)
	dir := initNode(t, bin, addr)
	d := startDaemon(t, bin, dir, addr, nil)
	ld := startLoad(t, d.url, 8)
	ld.waitAcks(t, d, 40)
	if err := d.signal(t, syscall.SIGTERM, ld); err != nil {
		t.Fatalf("meshd exited with %v on SIGTERM", err)
	}
	ld.end(t)

	d = startDaemon(t, bin, dir, addr, nil)
	checkServed(t, d.url, ld.acked)
	c, err := client.New(d.url)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, req := range ld.unanswered {
		switch req.tx {
		case portal.TxCreateAccount:
			v, err := c.ValidateAccount(ctx, &portal.ValidateRequest{Account: req.account})
			if err != nil {
				t.Fatal(err)
			}
			if !v.Valid {
				t.Errorf("CreateAccount %s was carried out but never answered", req.account)
			}
		default:
			t.Errorf("the load failed before sending a request")
		}
	}
	t.Logf("%d publishes acknowledged, %d requests unanswered (none carried out) at SIGTERM", len(ld.acked), len(ld.unanswered))
	if err := d.signal(t, syscall.SIGTERM, nil); err != nil {
		t.Fatalf("meshd exited with %v on SIGTERM", err)
	}
}

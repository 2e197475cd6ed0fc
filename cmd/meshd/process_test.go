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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/testnet"
)

// buildMeshd compiles this command into a temporary directory.
func buildMeshd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "meshd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

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

// daemon is a meshd process under test.
type daemon struct {
	cmd  *exec.Cmd
	url  string
	done chan error
}

// startDaemon runs `meshd run` on dir and waits until its portal answers.
func startDaemon(t *testing.T, bin, dir, addr string) *daemon {
	t.Helper()
	cmd := exec.Command(bin, "run", "--dir", dir, "--http", addr, "--log-level", "warn")
	cmd.Stderr = os.Stderr
	// The test's own load and checks come from one IP: no rate limit.
	cmd.Env = append(os.Environ(), "MESHD_HTTP_RATE_PER_SECOND=0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, url: "http://" + addr, done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(d.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		select {
		case err := <-d.done:
			t.Fatalf("meshd exited before serving: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("meshd did not serve within 20s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// publishUntilStopped publishes fresh profiles from several goroutines until
// stop is closed, and returns the identifiers whose Publish was acknowledged.
func publishUntilStopped(url string, stop <-chan struct{}) []string {
	c, _ := client.New(url)
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				entry, id, err := testnet.NewProfile()
				if err != nil {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err = c.CreateAccount(ctx, &portal.CreateRequest{Account: id, Profile: entry})
				cancel()
				if err == nil {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return acked
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

func TestAcknowledgedPublishSurvivesSIGKILLOfMeshd(t *testing.T) {
	bin := buildMeshd(t)
	dir := filepath.Join(t.TempDir(), "node")
	addr := freeAddr(t)
	if out, err := exec.Command(bin, "init", "--dir", dir, "--http", addr).CombinedOutput(); err != nil {
		t.Fatalf("meshd init: %v\n%s", err, out)
	}
	var all []string
	const kills = 3
	for k := 0; k < kills; k++ {
		d := startDaemon(t, bin, dir, addr)
		checkServed(t, d.url, all)
		stop := make(chan struct{})
		got := make(chan []string)
		go func() { got <- publishUntilStopped(d.url, stop) }()
		time.Sleep(time.Duration(200+rand.IntN(400)) * time.Millisecond) // the load runs for a random while
		if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-d.done
		close(stop)
		acked := <-got
		if len(acked) == 0 {
			t.Fatalf("kill %d: no Publish was acknowledged before the kill", k)
		}
		t.Logf("kill %d: %d publishes acknowledged", k, len(acked))
		all = append(all, acked...)
	}
	d := startDaemon(t, bin, dir, addr)
	checkServed(t, d.url, all)
	d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.done
}

func TestMeshdStopsCleanlyOnSIGTERMUnderLoad(t *testing.T) {
	bin := buildMeshd(t)
	dir := filepath.Join(t.TempDir(), "node")
	addr := freeAddr(t)
	if out, err := exec.Command(bin, "init", "--dir", dir, "--http", addr).CombinedOutput(); err != nil {
		t.Fatalf("meshd init: %v\n%s", err, out)
	}
	d := startDaemon(t, bin, dir, addr)
	stop := make(chan struct{})
	got := make(chan []string)
	go func() { got <- publishUntilStopped(d.url, stop) }()
	time.Sleep(300 * time.Millisecond) // let some load build up before the signal
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := <-d.done
	close(stop)
	acked := <-got
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		t.Fatalf("meshd exited with %v on SIGTERM", err)
	} else if err != nil {
		t.Fatal(err)
	}
	d = startDaemon(t, bin, dir, addr)
	checkServed(t, d.url, acked)
	fmt.Fprintf(os.Stderr, "%d publishes acknowledged before SIGTERM\n", len(acked))
	d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.done
}

package testnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/intermesh/intermesh/config"
	"golang.org/x/mod/sumdb/note"
)

// ProcessOptions configure a testnet of separate processes.
type ProcessOptions struct {
	Layout
	// Binary is the meshd executable that runs each member
	// (`meshd run --dir <node dir>`). Required.
	Binary string
	// Env is added to each member's environment (MESHD_* settings).
	Env []string
	// Ready bounds how long a started member may take to serve /healthz.
	// Default 30 s.
	Ready time.Duration
}

// LogFileName is the file in each member's directory that receives the
// member process's log (its standard error), appended to across restarts.
const LogFileName = "meshd.log"

// Processes is a federation whose members each run as their own `meshd
// run` OS process, with their own directory, config, federation file and
// ports, exactly as an operator runs them. It restarts nothing by itself:
// a member that dies stays down until StartMember.
type Processes struct {
	opts  ProcessOptions
	fed   *config.Federation
	vs    note.Verifiers // the members' keys
	mu    sync.Mutex
	procs []*process
}

// process is one running member process.
type process struct {
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{} // closed when the process has exited
	err  error         // its exit status, once done is closed
}

// StartProcesses generates the testnet in opts.Dir if it is not there yet
// (as Generate does; a testnet started again keeps its ports and period),
// gives each member its own copy of the federation file, and starts every
// member process. Stop them with Close.
func StartProcesses(ctx context.Context, opts ProcessOptions) (*Processes, error) {
	if opts.Binary == "" {
		return nil, errors.New("testnet: processes: no meshd binary given")
	}
	if opts.Name == "" {
		opts.Name = "testnet"
	}
	if opts.Ready <= 0 {
		opts.Ready = 30 * time.Second
	}
	fedPath := filepath.Join(opts.Dir, FederationFile)
	var (
		fed *config.Federation
		err error
	)
	if _, statErr := os.Stat(fedPath); statErr == nil {
		fed, err = config.LoadFederation(fedPath)
	} else {
		fed, err = Generate(opts.Layout)
	}
	if err != nil {
		return nil, err
	}
	if len(fed.Members) != opts.Nodes {
		return nil, fmt.Errorf("testnet: %s has %d members, not %d", fedPath, len(fed.Members), opts.Nodes)
	}
	vs, err := fed.Verifiers()
	if err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	opts.Period = fed.EpochPeriod.Duration
	p := &Processes{opts: opts, fed: fed, vs: vs, procs: make([]*process, opts.Nodes)}
	for i := range p.procs {
		if err := p.ownFederationFile(i); err != nil {
			return nil, err
		}
	}
	for i := range p.procs {
		if err := p.StartMember(ctx, i); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

// ownFederationFile writes member i's own copy of the federation file into
// its directory and points its config at it, as on separate machines where
// each operator holds a copy.
func (p *Processes) ownFederationFile(i int) error {
	dir := p.opts.NodeDir(i)
	own := filepath.Join(dir, FederationFile)
	if _, err := os.Stat(own); err == nil {
		return nil
	}
	if err := p.fed.Write(own); err != nil {
		return err
	}
	return setFederation(filepath.Join(dir, config.FileName), FederationFile)
}

// Federation is the testnet's federation.
func (p *Processes) Federation() *config.Federation { return p.fed }

// Size is the number of members.
func (p *Processes) Size() int { return len(p.procs) }

// Period is the epoch period.
func (p *Processes) Period() time.Duration { return p.opts.Period }

// PortalURL is the base URL of member i's portal.
func (p *Processes) PortalURL(i int) string { return p.fed.Members[i].HTTP }

// Account is the account name name@DOMAIN that member i creates: DOMAIN is
// the domain it serves (Layout.Domain), so that i is its home.
func (p *Processes) Account(i int, name string) string {
	return accountAt(p.fed, p.opts.Layout, i, name)
}

// Running reports whether member i's process is running (started and
// not exited).
func (p *Processes) Running(i int) bool {
	p.mu.Lock()
	pr := p.procs[i]
	p.mu.Unlock()
	if pr == nil {
		return false
	}
	select {
	case <-pr.done:
		return false
	default:
		return true
	}
}

// Pid is the process ID of member i, or 0 if it is not running.
func (p *Processes) Pid(i int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.procs[i] == nil {
		return 0
	}
	return p.procs[i].cmd.Process.Pid
}

// StartMember starts member i's process (it must not be running) and waits
// until its portal answers /healthz.
func (p *Processes) StartMember(ctx context.Context, i int) error {
	if p.Running(i) {
		return fmt.Errorf("testnet: member %d is running", i)
	}
	p.mu.Lock()
	dir := p.opts.NodeDir(i)
	logf, err := os.OpenFile(filepath.Join(dir, LogFileName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.mu.Unlock()
		return fmt.Errorf("testnet: member %d: %w", i, err)
	}
	cmd := exec.Command(p.opts.Binary, "run", "--dir", dir)
	cmd.Env = append(os.Environ(), p.opts.Env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C at the terminal reaches the testnet,
	// which stops the members itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		p.mu.Unlock()
		return fmt.Errorf("testnet: member %d: %w", i, err)
	}
	pr := &process{cmd: cmd, log: logf, done: make(chan struct{})}
	go func() {
		pr.err = cmd.Wait()
		logf.Close()
		close(pr.done)
	}()
	p.procs[i] = pr
	p.mu.Unlock()
	return p.waitReady(ctx, i, pr)
}

// waitReady waits until member i serves /healthz, or its process exits.
func (p *Processes) waitReady(ctx context.Context, i int, pr *process) error {
	url := p.PortalURL(i) + "/healthz"
	hc := &http.Client{Timeout: 2 * time.Second}
	exited := false
	err := WaitFor(ctx, p.opts.Ready, fmt.Sprintf("member %d to serve", i), func() bool {
		select {
		case <-pr.done:
			exited = true
			return true
		default:
		}
		resp, err := hc.Get(url)
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if exited {
		p.forget(i, pr)
		return fmt.Errorf("testnet: member %d exited at start (%v); see %s", i, pr.err, filepath.Join(p.opts.NodeDir(i), LogFileName))
	}
	return err
}

// WaitRejoined waits until member i exchanges gossip with every other
// member (Federation.Gossiping in its /status.json), for at most timeout.
func (p *Processes) WaitRejoined(ctx context.Context, i int, timeout time.Duration) error {
	return p.waitGossiping(ctx, i, timeout, func() int { return p.Size() - 1 })
}

// waitGossiping waits until member i exchanges gossip with at least want()
// other members, for at most timeout.
func (p *Processes) waitGossiping(ctx context.Context, i int, timeout time.Duration, want func() int) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := p.PortalURL(i) + "/status.json"
	// /status.json takes 150 ms on an idle 8-member testnet and over 3 s on
	// a member catching up under 500 publishes/s; a short timeout made
	// rejoined members look as if they never came back.
	hc := &http.Client{Timeout: 15 * time.Second}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		var st struct{ Federation struct{ Gossiping int } }
		if resp, err := hc.Get(url); err == nil {
			ok := resp.StatusCode == http.StatusOK && json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&st) == nil
			resp.Body.Close()
			if ok && st.Federation.Gossiping >= want() {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testnet: member %d is not exchanging gossip with %d other members: %w", i, want(), ctx.Err())
		case <-tick.C:
		}
	}
}

// forget clears slot i if it still holds pr.
func (p *Processes) forget(i int, pr *process) {
	p.mu.Lock()
	if p.procs[i] == pr {
		p.procs[i] = nil
	}
	p.mu.Unlock()
}

// Kill sends SIGKILL to member i and waits for the process to die. The
// member is down until StartMember.
func (p *Processes) Kill(i int) error { return p.signal(i, syscall.SIGKILL, 0) }

// StopMember asks member i to stop (SIGTERM), waits up to a minute for it
// to close its store, and kills it if it does not.
func (p *Processes) StopMember(i int) error { return p.signal(i, syscall.SIGTERM, time.Minute) }

func (p *Processes) signal(i int, sig syscall.Signal, grace time.Duration) error {
	p.mu.Lock()
	pr := p.procs[i]
	p.mu.Unlock()
	if pr == nil {
		return nil
	}
	if err := pr.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("testnet: member %d: %w", i, err)
	}
	var err error
	if grace > 0 {
		t := time.NewTimer(grace)
		select {
		case <-pr.done:
			t.Stop()
		case <-t.C:
			pr.cmd.Process.Kill()
			<-pr.done
			err = fmt.Errorf("testnet: member %d did not stop within %s of %v and was killed", i, grace, sig)
		}
	}
	<-pr.done
	p.forget(i, pr)
	if sig == syscall.SIGTERM && err == nil && pr.err != nil {
		err = fmt.Errorf("testnet: member %d: %w", i, pr.err)
	}
	return err
}

// Exited returns the members whose process ended without being asked to,
// with the exit status.
func (p *Processes) Exited() map[int]error {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[int]error{}
	for i, pr := range p.procs {
		if pr == nil {
			continue
		}
		select {
		case <-pr.done:
			out[i] = pr.err
		default:
		}
	}
	return out
}

// Close stops every member gracefully.
func (p *Processes) Close() error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs error
	)
	for i := range p.procs {
		wg.Go(func() {
			if err := p.StopMember(i); err != nil {
				mu.Lock()
				errs = errors.Join(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errs
}

// setFederation rewrites the `federation = "..."` line of a config file
// written by config.Init to name path.
func setFederation(configFile, path string) error {
	b, err := os.ReadFile(configFile)
	if err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	lines := strings.Split(string(b), "\n")
	found := false
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "federation =") {
			lines[i] = fmt.Sprintf("federation = %q", path)
			found = true
		}
	}
	if !found {
		return fmt.Errorf("testnet: %s has no federation setting", configFile)
	}
	if err := os.WriteFile(configFile, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		return fmt.Errorf("testnet: %w", err)
	}
	return nil
}

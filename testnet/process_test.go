package testnet

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/node"
)

// buildMeshd compiles cmd/meshd into a temporary directory.
func buildMeshd(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "meshd")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/meshd").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startProcesses starts n member processes with 1 s rounds on free ports.
func startProcesses(t testing.TB, n int) *Processes {
	t.Helper()
	bin := buildMeshd(t)
	httpBase, err := FreeBasePort(n)
	if err != nil {
		t.Fatal(err)
	}
	p2pBase, err := FreeBasePort(n, httpBase)
	if err != nil {
		t.Fatal(err)
	}
	p, err := StartProcesses(t.Context(), ProcessOptions{
		Layout: Layout{Dir: t.TempDir(), Nodes: n, HTTPBasePort: httpBase, P2PBasePort: p2pBase, Period: time.Second},
		Binary: bin,
		Env:    []string{"MESHD_HTTP_RATE_PER_SECOND=0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("closing the testnet: %v", err)
		}
	})
	return p
}

// waitForProcessAgreement waits until a recent round is reported agreed by
// every running member, with at least covered checkpoints in the
// certificate, and returns its report.
func waitForProcessAgreement(t *testing.T, p *Processes, within time.Duration, covered int) RoundReport {
	t.Helper()
	s := node.Schedule{Period: p.Period()}
	start := s.Round(time.Now())
	var rep RoundReport
	err := WaitFor(t.Context(), within, "a round every running member certified", func() bool {
		now := s.Round(time.Now())
		for r := now - 1; r > start && r+3 > now; r-- {
			rep = p.RoundReport(t.Context(), r)
			if rep.Agreed() && coveredBy(rep) >= covered {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("%v; last report:\n%s", err, rep)
	}
	return rep
}

func TestMembersAsSeparateProcessesCertifyAndSurviveAKill(t *testing.T) {
	p := startProcesses(t, 4)

	// Each member has its own copy of the federation file, and its config
	// names that copy.
	for i := range 4 {
		c, err := config.Load(p.opts.NodeDir(i), nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(p.opts.NodeDir(i), FederationFile); c.FederationPath() != want {
			t.Errorf("member %d uses federation file %s, want its own %s", i, c.FederationPath(), want)
		}
	}

	rep := waitForProcessAgreement(t, p, 30*time.Second, 4)
	if !strings.Contains(rep.String(), "certificate formed and matches on every running node") {
		t.Errorf("the report does not say the round was certified:\n%s", rep)
	}

	// SIGKILL one member: the others go on certifying without it, the
	// report shows it stopped, and nothing restarts it.
	pid := p.Pid(3)
	if err := p.Kill(3); err != nil {
		t.Fatal(err)
	}
	if p.Running(3) {
		t.Fatal("member 3 still counts as running after the kill")
	}
	if err := syscallAlive(pid); err == nil {
		t.Fatalf("process %d is still alive after SIGKILL", pid)
	}
	rep = waitForProcessAgreement(t, p, 30*time.Second, 3)
	if rep.Nodes[3].Running || !strings.Contains(rep.String(), "node3  stopped") {
		t.Errorf("the report does not show member 3 stopped:\n%s", rep)
	}

	// Restarted from its directory, it rejoins: a later certificate covers
	// all four checkpoints again and every member holds it.
	if err := p.StartMember(t.Context(), 3); err != nil {
		t.Fatal(err)
	}
	waitForProcessAgreement(t, p, 60*time.Second, 4)
	if len(p.Exited()) != 0 {
		t.Errorf("members exited on their own: %v", p.Exited())
	}
	if fi, err := os.Stat(filepath.Join(p.opts.NodeDir(3), LogFileName)); err != nil || fi.Size() == 0 {
		t.Errorf("member 3 wrote no log file: %v", err)
	}
}

// syscallAlive returns nil if a process with pid exists.
func syscallAlive(pid int) error { return syscall.Kill(pid, 0) }

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/config"
)

// meshd runs the meshd command line in this process and returns its output.
func meshd(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	root := newRootCommand()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	if err := root.Execute(); err != nil {
		t.Fatalf("meshd %v: %v\n%s", args, err, out.String())
	}
	return out.String()
}

func TestMemberEntriesOfSeparatelyInitializedNodesMakeAValidFederationFile(t *testing.T) {
	base := t.TempDir()
	fed := "name = \"example\"\nepoch_period = \"10s\"\n"
	for i := range 3 {
		dir := filepath.Join(base, fmt.Sprintf("n%d", i))
		meshd(t, "init", "--dir", dir, "--origin", fmt.Sprintf("example.org/n%d", i), "--federation", "../federation.toml")
		args := []string{"member", "--dir", dir, "--addr", fmt.Sprintf("/dns4/n%d.example.org/tcp/4001", i)}
		if i > 0 {
			args = append(args, "--domain", fmt.Sprintf("n%d.example.org,n%d.example.net", i, i))
		}
		fed += "\n" + meshd(t, args...)
	}
	path := filepath.Join(base, "federation.toml")
	if err := os.WriteFile(path, []byte(fed), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := config.LoadFederation(path)
	if err != nil {
		t.Fatalf("the assembled federation file does not load: %v\n%s", err, fed)
	}
	if len(f.Members) != 3 || f.Members[2].Addrs[0] != "/dns4/n2.example.org/tcp/4001" || f.Members[1].HTTP != "http://127.0.0.1:8080" {
		t.Errorf("unexpected members: %+v", f.Members)
	}
	if f.Members[0].Domains != nil || fmt.Sprint(f.Members[2].Domains) != "[n2.example.org n2.example.net]" {
		t.Errorf("domains %q and %q", f.Members[0].Domains, f.Members[2].Domains)
	}
	// Each node starts against the assembled file (its key matches its entry).
	for i := range 3 {
		c, err := config.Load(filepath.Join(base, fmt.Sprintf("n%d", i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.FederationPath() != path {
			t.Errorf("node %d points at %s", i, c.FederationPath())
		}
	}
}

func TestANodeInitializedAgainstAFederationFileTakesItsRoundLength(t *testing.T) {
	base := t.TempDir()
	first := filepath.Join(base, "n0")
	meshd(t, "init", "--dir", first, "--origin", "example.org/n0")
	fed := "name = \"example\"\nepoch_period = \"2s\"\n\n" + meshd(t, "member", "--dir", first)
	if err := os.WriteFile(filepath.Join(base, "federation.toml"), []byte(fed), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "n1")
	meshd(t, "init", "--dir", dir, "--origin", "example.org/n1", "--http", "127.0.0.1:8081", "--federation", "../federation.toml")
	c, err := config.Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Epoch.Period.Duration != 2*time.Second {
		t.Fatalf("epoch.period is %s, not the federation's 2s", c.Epoch.Period.Duration)
	}
}

func TestCommandLineMistakesExitWithTwo(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--no-such-flag"},
		{"no-such-command"},
		{"init", "--dir"},
	} {
		root := newRootCommand()
		root.SetArgs(args)
		root.SetOut(io.Discard)
		root.SetErr(io.Discard)
		err := root.Execute()
		if err == nil || exitCode(err) != 2 {
			t.Errorf("meshd %v: %v, exit %d; want a usage error, exit 2", args, err, exitCode(err))
		}
	}
	if code := exitCode(errors.New("node: epoch.period is 10s but the federation says 2s")); code != 1 {
		t.Errorf("a failure to run exits %d, want 1", code)
	}
}

func TestHintsNameTheBinariesAsTheUserRunsThem(t *testing.T) {
	for _, tc := range []struct{ arg0, self, meshctl string }{
		{"./bin/meshd", "./bin/meshd", "./bin/meshctl"},
		{"bin/meshd", "bin/meshd", "./bin/meshctl"},
		{"/usr/local/bin/meshd", "/usr/local/bin/meshd", "/usr/local/bin/meshctl"},
		{"meshd", "meshd", "meshctl"},
		{"/tmp/go-build1/b001/meshd.test", "meshd", "meshctl"},
	} {
		if got := invokedAs(tc.arg0, "meshd"); got != tc.self {
			t.Errorf("invokedAs(%q) = %q, want %q", tc.arg0, got, tc.self)
		}
		if got := siblingOf(tc.arg0, "meshctl"); got != tc.meshctl {
			t.Errorf("siblingOf(%q) = %q, want %q", tc.arg0, got, tc.meshctl)
		}
	}
}

func TestAMemberEntryWithAnInvalidDomainIsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "n0")
	meshd(t, "init", "--dir", dir, "--origin", "example.org/n0")
	root := newRootCommand()
	root.SetArgs([]string{"member", "--dir", dir, "--domain", "Example.org"})
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(io.Discard)
	err := root.Execute()
	if err == nil || !strings.Contains(err.Error(), `--domain: domain "Example.org" holds 'E'`) || out.Len() != 0 {
		t.Fatalf("member --domain Example.org: %v, printed %q", err, out.String())
	}
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/testnet"
)

// scriptWait bounds how long a 'wait' line retries its command.
const scriptWait = 40 * time.Second

// TestScripts runs the session scripts in testdata/*.txt, each against a
// real federation of its own (4 nodes, 1 s rounds; the devices use node 0's
// portal); each reads like a user's terminal session (the language is
// described at the top of testdata/alice.txt).
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			runScript(t, file)
		})
	}
}

// script is the state of one running session script.
type script struct {
	t       *testing.T
	portal  string
	devices map[string]*user // by device name, each with its own keystore
	vars    map[string]string
	last    result
}

// runScript runs file's lines in order and fails the test at the first
// line that does not hold.
func runScript(t *testing.T, file string) {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	net := startAuditNet(t)
	_, domain, _ := strings.Cut(net.Account(0, "x"), "@")
	s := &script{t: t, portal: net.PortalURL(0), devices: map[string]*user{}, vars: map[string]string{
		"DOMAIN": domain, "FEDERATION": net.fedPath, "WORK": t.TempDir(),
	}}
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		group := []string{line}
		wait := strings.HasPrefix(strings.TrimPrefix(line, "! "), "wait ")
		if wait {
			group = append(group, outputChecks(lines[i+1:])...)
		}
		if err := s.doAll(group, wait); err != nil {
			t.Fatalf("%s:%d: %v", file, i+1, err)
		}
		i += len(group) - 1
	}
}

// outputChecks are the stdout and stderr lines at the start of lines.
func outputChecks(lines []string) []string {
	var checks []string
	for _, line := range lines {
		line = strings.TrimSpace(line)
		verb, _, _ := strings.Cut(strings.TrimPrefix(line, "! "), " ")
		if verb != "stdout" && verb != "stderr" {
			break
		}
		checks = append(checks, line)
	}
	return checks
}

// doAll runs the lines of group in order, and with wait again until they
// all hold (at most scriptWait); it says why the last attempt failed.
func (s *script) doAll(group []string, wait bool) error {
	var err error
	attempt := func() bool {
		for _, line := range group {
			if err = s.do(line); err != nil {
				return false
			}
		}
		return true
	}
	if !wait {
		attempt()
		return err
	}
	_ = testnet.WaitFor(s.t.Context(), scriptWait, group[0], attempt)
	return err
}

// do runs one line of the script and says why it does not hold.
func (s *script) do(line string) error {
	rest, negate := strings.CutPrefix(line, "! ")
	rest, _ = strings.CutPrefix(rest, "wait ")
	device := "laptop"
	if strings.HasPrefix(rest, "@") {
		device, rest, _ = strings.Cut(rest[1:], " ")
	}
	verb, rest, _ := strings.Cut(rest, " ")
	switch verb {
	case "meshctl":
		s.last = s.device(device).run(strings.Fields(s.expand(rest, false))...)
		if (s.last.code != 0) != negate {
			return fmt.Errorf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", line, s.last.code, s.last.stdout, s.last.stderr)
		}
	case "stdout", "stderr":
		text := s.last.stdout
		if verb == "stderr" {
			text = s.last.stderr
		}
		m, err := s.match(rest, text)
		if err != nil {
			return err
		}
		if (m != nil) == negate {
			return fmt.Errorf("%s: %s was:\n%s", line, verb, text)
		}
	case "set":
		name, pattern, _ := strings.Cut(rest, " ")
		m, err := s.match(pattern, s.last.stdout)
		if err != nil {
			return err
		}
		if len(m) < 2 {
			return fmt.Errorf("%s: no match in:\n%s", line, s.last.stdout)
		}
		s.vars[name] = m[1]
	default:
		return fmt.Errorf("unknown command %q", verb)
	}
	return nil
}

// device is the user of the named device, with a keystore of its own.
func (s *script) device(name string) *user {
	u := s.devices[name]
	if u == nil {
		u = &user{t: s.t, home: s.t.TempDir(), portal: s.portal}
		s.devices[name] = u
	}
	return u
}

// match finds the quoted pattern in text; a $NAME in the pattern (or \$NAME)
// stands for the variable's value, taken literally.
func (s *script) match(quoted, text string) ([]string, error) {
	pattern := strings.ReplaceAll(strings.Trim(quoted, "'"), `\$`, "$")
	re, err := regexp.Compile(s.expand(pattern, true))
	if err != nil {
		return nil, fmt.Errorf("the pattern %s: %w", quoted, err)
	}
	return re.FindStringSubmatch(text), nil
}

// expand replaces each $NAME in text by the variable's value, quoted as a
// regular expression if literal.
func (s *script) expand(text string, literal bool) string {
	return os.Expand(text, func(k string) string {
		if literal {
			return regexp.QuoteMeta(s.vars[k])
		}
		return s.vars[k]
	})
}

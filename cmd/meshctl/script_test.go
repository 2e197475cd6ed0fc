package main

import (
	"bufio"
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
	file    string
	lineNo  int
	portal  string
	devices map[string]*user // by device name, each with its own keystore
	vars    map[string]string
	last    result
}

func runScript(t *testing.T, file string) {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	net := startAuditNet(t)
	_, domain, _ := strings.Cut(net.Account(0, "x"), "@")
	s := &script{t: t, file: file, portal: net.PortalURL(0), devices: map[string]*user{}, vars: map[string]string{
		"DOMAIN": domain, "FEDERATION": net.fedPath, "WORK": t.TempDir(),
	}}
	sc := bufio.NewScanner(f)
	for s.lineNo = 1; sc.Scan(); s.lineNo++ {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			s.do(line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

// do runs one line of the script.
func (s *script) do(line string) {
	rest, negate := strings.CutPrefix(line, "! ")
	rest, wait := strings.CutPrefix(rest, "wait ")
	device := "laptop"
	if strings.HasPrefix(rest, "@") {
		device, rest, _ = strings.Cut(rest[1:], " ")
	}
	verb, rest, _ := strings.Cut(rest, " ")
	switch verb {
	case "meshctl":
		s.meshctl(line, device, strings.Fields(s.expand(rest, false)), negate, wait)
	case "stdout", "stderr":
		text := s.last.stdout
		if verb == "stderr" {
			text = s.last.stderr
		}
		if (s.match(rest, text) != nil) == negate {
			s.t.Fatalf("%s:%d: %s: %s was:\n%s", s.file, s.lineNo, line, verb, text)
		}
	case "set":
		name, pattern, _ := strings.Cut(rest, " ")
		m := s.match(pattern, s.last.stdout)
		if len(m) < 2 {
			s.t.Fatalf("%s:%d: %s: no match in:\n%s", s.file, s.lineNo, line, s.last.stdout)
		}
		s.vars[name] = m[1]
	default:
		s.t.Fatalf("%s:%d: unknown command %q", s.file, s.lineNo, verb)
	}
}

// meshctl runs meshctl with device's keystore (once, or with wait until
// it exits as expected, at most scriptWait) and fails the script unless it
// exits 0 (non-zero if negate).
func (s *script) meshctl(line, device string, args []string, negate, wait bool) {
	u := s.devices[device]
	if u == nil {
		u = &user{t: s.t, home: s.t.TempDir(), portal: s.portal}
		s.devices[device] = u
	}
	expected := func() bool {
		s.last = u.run(args...)
		return (s.last.code != 0) == negate
	}
	ok := false
	if wait {
		ok = testnet.WaitFor(s.t.Context(), scriptWait, line, expected) == nil
	} else {
		ok = expected()
	}
	if !ok {
		s.t.Fatalf("%s:%d: %s: exit %d\nstdout:\n%s\nstderr:\n%s", s.file, s.lineNo, line, s.last.code, s.last.stdout, s.last.stderr)
	}
}

// match finds the quoted pattern in text; a $NAME in the pattern (or \$NAME)
// stands for the variable's value, taken literally.
func (s *script) match(quoted, text string) []string {
	pattern := strings.ReplaceAll(strings.Trim(quoted, "'"), `\$`, "$")
	re, err := regexp.Compile(s.expand(pattern, true))
	if err != nil {
		s.t.Fatalf("%s:%d: %v", s.file, s.lineNo, err)
	}
	return re.FindStringSubmatch(text)
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

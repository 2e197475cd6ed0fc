package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestScripts runs the session scripts in testdata/*.txt against a real
// portal; each reads like a user's terminal session (the language is
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

func runScript(t *testing.T, file string) {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := newTestPortal(t)
	devices := map[string]*user{}
	vars := map[string]string{}
	var last result
	expand := func(s string) string { return os.Expand(s, func(k string) string { return vars[k] }) }
	match := func(lineNo int, pattern, text string) []string {
		re, err := regexp.Compile(expand(pattern))
		if err != nil {
			t.Fatalf("%s:%d: %v", file, lineNo, err)
		}
		return re.FindStringSubmatch(text)
	}
	sc := bufio.NewScanner(f)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		negate := strings.HasPrefix(line, "! ")
		line = strings.TrimPrefix(line, "! ")
		device := "laptop"
		if strings.HasPrefix(line, "@") {
			d, rest, _ := strings.Cut(line[1:], " ")
			device, line = d, rest
		}
		verb, rest, _ := strings.Cut(line, " ")
		switch verb {
		case "meshctl":
			u := devices[device]
			if u == nil {
				u = newUser(t, p)
				devices[device] = u
			}
			last = u.run(strings.Fields(expand(rest))...)
			if (last.code != 0) != negate {
				t.Fatalf("%s:%d: %s: exit %d\nstdout:\n%s\nstderr:\n%s", file, lineNo, line, last.code, last.stdout, last.stderr)
			}
		case "stdout", "stderr":
			text := last.stdout
			if verb == "stderr" {
				text = last.stderr
			}
			pattern := strings.Trim(rest, "'")
			pattern = strings.ReplaceAll(pattern, `\$`, "$") // \$NAME in a pattern is the variable
			if (match(lineNo, pattern, text) != nil) == negate {
				t.Fatalf("%s:%d: %s: %s was:\n%s", file, lineNo, line, verb, text)
			}
		case "set":
			name, pattern, _ := strings.Cut(rest, " ")
			m := match(lineNo, strings.Trim(pattern, "'"), last.stdout)
			if len(m) < 2 {
				t.Fatalf("%s:%d: %s: no match in:\n%s", file, lineNo, line, last.stdout)
			}
			vars[name] = m[1]
		default:
			t.Fatalf("%s:%d: unknown command %q", file, lineNo, verb)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

package loadgen_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/loadgen"
	"github.com/intermesh/intermesh/testnet"
)

// newFederation writes a federation of n members (no node runs) and
// returns it.
func newFederation(t *testing.T, n, httpBase int) *config.Federation {
	t.Helper()
	dir := t.TempDir()
	l := testnet.Layout{Dir: dir, Nodes: n, HTTPBasePort: httpBase, P2PBasePort: httpBase + 100, Period: time.Second}
	if _, err := testnet.Generate(l); err != nil {
		t.Fatal(err)
	}
	fed, err := config.LoadFederation(filepath.Join(dir, testnet.FederationFile))
	if err != nil {
		t.Fatal(err)
	}
	return fed
}

// writeAcks writes n acknowledged writes at each of portals.
func writeAcks(t *testing.T, n int, portals ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "acks.jsonl")
	var b strings.Builder
	for _, p := range portals {
		for k := range n {
			line, _ := json.Marshal(loadgen.Write{Portal: p, Kind: loadgen.KindPublish, Account: "a@example.com",
				Identifier: "MB2G-A", Digest: fmt.Sprintf("digest-%d", k), Time: time.Now().UTC()})
			b.Write(append(line, '\n'))
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The newcomer's trap: 'meshctl load' appends to the same acks file by
// default, so after a new testnet the file lists thousands of writes of
// the old one. Verify says so once, with the count and what to do, rather
// than one failure per write.
func TestVerifyOfAnAcksFileOfAnotherFederationSaysSoOnceWithACount(t *testing.T) {
	old := newFederation(t, 2, 18080)
	fed := newFederation(t, 2, 28080)
	acks := writeAcks(t, 1500, old.Members[0].HTTP, old.Members[1].HTTP)

	rep, err := loadgen.Verify(t.Context(), loadgen.VerifyConfig{Federation: fed, Acks: acks, Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.Writes != 3000 || rep.NotMembers != 3000 {
		t.Errorf("ok %v, %d writes, %d not at members; want a failure naming all 3000", rep.OK, rep.Writes, rep.NotMembers)
	}
	if rep.FailureCount != 1 || len(rep.Failures) != 1 {
		t.Fatalf("%d failures, want one: %q", rep.FailureCount, rep.Failures)
	}
	for _, want := range []string{"3000 of 3000 writes in " + acks, "not members of federation", old.Members[0].HTTP + ": 1500",
		"written against another federation", "new acks file", "delete"} {
		if !strings.Contains(rep.Failures[0], want) {
			t.Errorf("the failure does not say %q:\n%s", want, rep.Failures[0])
		}
	}
	var text strings.Builder
	rep.WriteText(&text)
	if n := strings.Count(text.String(), "FAIL "); n != 1 {
		t.Errorf("the report has %d FAIL lines, want 1:\n%s", n, text.String())
	}
}

func TestVerifyOfAnEmptyAcksFileFailsBecauseNothingWasChecked(t *testing.T) {
	fed := newFederation(t, 1, 38080)
	acks := filepath.Join(t.TempDir(), "acks.jsonl")
	os.WriteFile(acks, nil, 0o644)
	rep, err := loadgen.Verify(t.Context(), loadgen.VerifyConfig{Federation: fed, Acks: acks})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || !strings.Contains(strings.Join(rep.Failures, "\n"), "lists no acknowledged writes") {
		t.Errorf("ok %v, failures %q; want a failure: nothing was checked", rep.OK, rep.Failures)
	}
}

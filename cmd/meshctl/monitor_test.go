package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/testnet"
)

// TestMonitorListsTheOwnersVersionsAndAlertsOnOthers: alice's monitor
// proves the complete history of her account's profile and lists each
// version with the key that signed it; a monitor whose keystore lacks the
// signing key raises an ALERT and exits 1, and so does a history that no
// longer starts with the versions it saw.
func TestMonitorListsTheOwnersVersionsAndAlertsOnOthers(t *testing.T) {
	net := startAuditNet(t)
	account := net.Account(0, "alice")
	alice := &user{t: t, home: t.TempDir(), portal: net.PortalURL(0)}
	id := alice.createProfile("alice")
	alice.ok("account", "create", account)
	state := filepath.Join(t.TempDir(), "monitor.json")
	var out string
	err := testnet.WaitFor(t.Context(), 40*time.Second, "a proved history", func() bool {
		r := alice.run("monitor", "--account", account, "--federation", net.fedPath, "--state", state)
		out = r.stdout
		return r.code == 0
	})
	if err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if !strings.Contains(out, "new version: record") || !strings.Contains(out, "(in the keystore)") || !strings.Contains(out, "the complete history as of") ||
		!strings.Contains(out, "is in the certified map") {
		t.Fatalf("monitor's first run:\n%s", out)
	}
	// By identifier, the history is proved in every member's log.
	if out := alice.ok("monitor", "--id", id, "--federation", net.fedPath, "--state", filepath.Join(t.TempDir(), "id.json")); !strings.Contains(out, "new version: record") ||
		!strings.Contains(out, "is absent from the other 3 members' logs") {
		t.Errorf("monitor --id:\n%s", out)
	}
	// A write the home member acknowledged and then left out of its
	// checkpoints: the monitor raises an alarm once two rounds passed.
	withheld(t, alice.home, time.Now().Add(-time.Minute))
	r0 := alice.run("monitor", "--account", account, "--federation", net.fedPath, "--state", state)
	if r0.code != exitFailure || !strings.Contains(r0.stdout, "is not in the certified map of round") {
		t.Errorf("a withheld write: exit %d\n%s", r0.code, r0.stdout)
	}
	clearWrites(t, alice.home)
	// Run again: nothing new.
	if out := alice.ok("monitor", "--account", account, "--federation", net.fedPath, "--state", state); strings.Contains(out, "new version") {
		t.Errorf("a second run reports a new version:\n%s", out)
	}
	// Someone without alice's keys watching: every version is an alert.
	stranger := &user{t: t, home: t.TempDir(), portal: net.PortalURL(0)}
	stranger.createProfile("stranger")
	r := stranger.run("monitor", "--account", account, "--federation", net.fedPath)
	if r.code != exitFailure || !strings.Contains(r.stdout, "ALERT: new version") || !strings.Contains(r.stdout, "which no key in the keystore is") {
		t.Errorf("a monitor without the signing key: exit %d\n%s", r.code, r.stdout)
	}
	// A history that no longer starts with what was seen.
	var st monitorState
	b, err := os.ReadFile(state)
	if err != nil || json.Unmarshal(b, &st) != nil || len(st.Versions) == 0 {
		t.Fatalf("the state file: %v\n%s", err, b)
	}
	st.Versions[0].Index += 1000
	b, _ = json.Marshal(st)
	if err := os.WriteFile(state, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r = alice.run("monitor", "--account", account, "--federation", net.fedPath, "--state", state)
	if r.code != exitFailure || !strings.Contains(r.stdout, "ALERT: the history no longer starts with") {
		t.Errorf("a rewritten history: exit %d\n%s", r.code, r.stdout)
	}
}

// profileStateFile is the state file of the keystore's only profile.
func profileStateFile(t *testing.T, home string) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(home, kindProfiles, "*", fileState))
	if err != nil || len(files) != 1 {
		t.Fatalf("the keystore's profile state: %v %v", files, err)
	}
	return files[0]
}

// withheld records in the keystore a write acknowledged at at whose record
// the home member never certifies.
func withheld(t *testing.T, home string, at time.Time) {
	t.Helper()
	path := profileStateFile(t, home)
	var st profileState
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &st) != nil {
		t.Fatalf("%s: %v", path, err)
	}
	st.Writes = append(st.Writes, profileWrite{Origin: "testnet/node0", Index: 1 << 40, At: at})
	b, _ = json.Marshal(st)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// clearWrites forgets the keystore's remembered writes.
func clearWrites(t *testing.T, home string) {
	t.Helper()
	path := profileStateFile(t, home)
	var st profileState
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &st) != nil {
		t.Fatalf("%s: %v", path, err)
	}
	st.Writes = nil
	b, _ = json.Marshal(st)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

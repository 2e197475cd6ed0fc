package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/intermesh/intermesh/audit"
	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
	"github.com/intermesh/intermesh/testnet"
)

// TestMonitorReadsEveryMembersLogThroughTiles: alice's monitor reads each
// member's own log through tlog-tiles up to its certified checkpoint and
// lists her version in her home member's log; a second run reads only
// what is new since the sizes its state file kept; and a version of her
// profile's identifier that another member logs in its own log, signed by
// a key her keystore does not have, is an ALERT (exit 1), although her
// home member's history never serves it.
func TestMonitorReadsEveryMembersLogThroughTiles(t *testing.T) {
	net := startAuditNet(t)
	account := net.Account(0, "alice")
	alice := &user{t: t, home: t.TempDir(), portal: net.PortalURL(0)}
	id := alice.createProfile("alice")
	alice.ok("account", "create", account)
	state := filepath.Join(t.TempDir(), "monitor.json")
	home := net.Federation().Members[0].Origin
	monitor := func() result {
		return alice.run("monitor", "--account", account, "--federation", net.fedPath, "--state", state)
	}

	// Her account's record, which carries her profile, is her version.
	mine := fmt.Sprintf("of %s's log, Account %s (account %s)", home, id, portal.CanonicalAccount(account))
	var all strings.Builder
	err := testnet.WaitFor(t.Context(), 40*time.Second, "her version seen in "+home+"'s log", func() bool {
		r := monitor()
		all.WriteString(r.stdout)
		return r.code == 0 && strings.Contains(all.String(), "seen: record") &&
			strings.Contains(all.String(), mine) && strings.Contains(all.String(), "(in the keystore)") &&
			everyLogRead(t, state, net.Size())
	})
	if err != nil {
		t.Fatalf("%v:\n%s", err, all.String())
	}
	if !strings.Contains(all.String(), "through tlog-tiles") {
		t.Errorf("monitor does not say it read the logs through tlog-tiles:\n%s", all.String())
	}

	// A second run starts each log where the state file says the first
	// stopped.
	read := monitorLogs(t, state)
	if len(read) != net.Size() {
		t.Fatalf("the state file keeps %d logs' sizes, want %d: %v", len(read), net.Size(), read)
	}
	r := monitor()
	if r.code != 0 {
		t.Fatalf("second run: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for origin, size := range read {
		if size == 0 {
			t.Errorf("the first runs read nothing of %s's log", origin)
		}
		from := fmt.Sprintf("%s's log: read records %d to ", origin, size)
		none := fmt.Sprintf("%s's log: nothing new (read up to %d,", origin, size)
		if !strings.Contains(r.stdout, from) && !strings.Contains(r.stdout, none) {
			t.Errorf("the second run does not start %s's log at %d:\n%s", origin, size, r.stdout)
		}
	}
	if strings.Contains(r.stdout, mine) {
		t.Errorf("the second run reads alice's version again:\n%s", r.stdout)
	}

	// Another member logs a version of alice's profile in its own log: her
	// profile with a key of the forger's added as an online key, signed by
	// it, bound to an account of the member's own (mallory's), its portal
	// entry claiming that alice's offline key signed it. The member's
	// portal would refuse it; a rogue member logs it anyway, and the
	// federation certifies its log, as it checks the map rule, not the
	// signatures of another member's records.
	rogue := net.Federation().Members[2].Origin
	mallory := &user{t: t, home: t.TempDir(), portal: net.PortalURL(2)}
	malloryID := mallory.createProfile("mallory")
	malloryAccount := net.Account(2, "mallory")
	mallory.ok("account", "create", malloryAccount)
	forger := newVersionedProfile(t).key
	updated := time.Now().UTC().Add(time.Hour).Truncate(time.Second)
	payload, err := portal.MarshalPortalEntry(&portal.PortalEntry{Transaction: portal.TxPublish, Type: mesh.TypeProfileMesh,
		Signer: id, OfflineKey: id, ProofSigner: malloryID, Updated: &updated, Entry: forgedVersion(t, alice, id, forger, updated)})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := net.Node(2).Log().Append(t.Context(), log.Record{Kind: portal.KindProfile, Identifier: id,
		Account: portal.CanonicalAccount(malloryAccount), Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	alert := fmt.Sprintf("ALERT: record %d of %s's log, Profile %s (account %s): ", rec.Seq, rogue, id, portal.CanonicalAccount(malloryAccount))
	var last result
	all.Reset()
	err = testnet.WaitFor(t.Context(), 40*time.Second, "an alert on "+rogue+"'s version", func() bool {
		last = monitor()
		all.WriteString(last.stdout)
		return strings.Contains(last.stdout, alert)
	})
	if err != nil {
		t.Fatalf("%v (record %d); the runs:\n%s", err, rec.Seq, all.String())
	}
	signer := forger.Public().UDF().String()
	if last.code != exitFailure || !strings.Contains(last.stdout, "signed by "+signer+", which no key in the keystore is") {
		t.Errorf("the rogue member's version: exit %d, want %d, and the signer %s named\n%s", last.code, exitFailure, signer, last.stdout)
	}
}

// everyLogRead reports whether the monitor's state file says it read some
// records of each of n members' logs.
func everyLogRead(t *testing.T, path string, n int) bool {
	t.Helper()
	read := monitorLogs(t, path)
	for _, size := range read {
		if size == 0 {
			return false
		}
	}
	return len(read) == n
}

// monitorLogs reads the per-member sizes a monitor's state file keeps.
func monitorLogs(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	var st monitorState
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &st) != nil {
		t.Fatalf("the state file %s: %v\n%s", path, err, b)
	}
	return st.Logs
}

// forgedVersion is u's profile id as published, with forger's key added as
// an online key, updated at when and signed by forger: a version whose
// signature verifies by a key only it lists.
func forgedVersion(t *testing.T, u *user, id string, forger *mesh.PrivateKey, when time.Time) []byte {
	t.Helper()
	e, err := mesh.VerifyEntry([]byte(strings.TrimSpace(u.ok("get", "--id", id, "--raw"))), 0)
	if err != nil {
		t.Fatalf("alice's profile: %v", err)
	}
	p, ok := e.Object.(*mesh.ProfileMesh)
	if !ok {
		t.Fatalf("alice's profile is a %T", e.Object)
	}
	p.KeysOnlineSignature = append(p.KeysOnlineSignature, *mesh.NewKeyData(forger.Public()))
	return (&versionedProfile{p: p, key: forger}).versionSignedBy(t, when, forger)
}

// TestScanLogsWarnsOfADownMemberAndAlertsOnALiar: a member whose tiles
// cannot be fetched is a warning, and its progress is kept where it was;
// one whose entries do not verify against its certified root is an ALERT;
// the others are still read, and a record of the monitored identifier
// without a signed entry is an ALERT.
func TestScanLogsWarnsOfADownMemberAndAlertsOnALiar(t *testing.T) {
	leaves := func(id string) [][]byte { return threeLeaves(t, id) }
	good, root := tileServer(t, leaves("MID"))
	liar, _ := tileServer(t, leaves("SOMEONE-ELSE"))
	down := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(down.Close)
	keys := &getVerifier{fed: &config.Federation{Members: []config.Member{
		{Origin: "down", HTTP: down.URL}, {Origin: "liar", HTTP: liar}, {Origin: "good", HTTP: good}}}}
	cert := &audit.Certificate{}
	for _, o := range []string{"down", "liar", "good"} {
		cert.Checkpoints = append(cert.Checkpoints, audit.Checkpoint{Origin: o, Size: 3, Root: root[:]})
	}
	st := &monitorState{Logs: map[string]uint64{"down": 1}}
	var out strings.Builder
	alerts := scanLogs(t.Context(), &out, keys, cert, 7, st, monitorTarget{ids: map[string]bool{"MID": true}, mine: map[string]bool{}})
	for _, want := range []string{
		"warning: down's log could not be read from " + down.URL,
		"ALERT: liar's log does not verify against its checkpoint at size 3 that the certificate of round 7 covers",
		"ALERT: record 1 of good's log, Profile MID: its signature does not verify: the record carries no signed entry",
		"good's log: read records 0 to 2 of its checkpoint at size 3 certified in round 7, through tlog-tiles",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the scan does not say %q:\n%s", want, out.String())
		}
	}
	if alerts != 2 || st.Logs["down"] != 1 || st.Logs["good"] != 3 || st.Logs["liar"] != 0 {
		t.Errorf("%d alerts (want 2), progress %v (want down 1, good 3, liar 0)", alerts, st.Logs)
	}
}

// threeLeaves are the leaves of a log of three Profile records whose
// second names id and carries no signed entry.
func threeLeaves(t *testing.T, id string) [][]byte {
	t.Helper()
	payload, err := portal.MarshalPortalEntry(&portal.PortalEntry{Transaction: portal.TxPublish})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for i := range 3 {
		r := log.Record{Seq: uint64(i), Kind: portal.KindProfile, Identifier: fmt.Sprintf("OTHER-%d", i), Payload: payload}
		if i == 1 {
			r.Identifier = id
		}
		out = append(out, r.MarshalLeaf())
	}
	return out
}

// tileServer serves leaves as a tlog-tiles log and returns its URL and
// its root.
func tileServer(t *testing.T, leaves [][]byte) (string, tlog.Hash) {
	t.Helper()
	var hashes []tlog.Hash
	hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = hashes[x]
		}
		return out, nil
	})
	for i, l := range leaves {
		h, err := tlog.StoredHashes(int64(i), l, hr)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h...)
	}
	n := int64(len(leaves))
	root, err := tlog.TreeHash(n, hr)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, tile := range tlog.NewTiles(torchwood.TileHeight, 0, n) {
		data, err := tlog.ReadTileData(tile, hr)
		if err != nil {
			t.Fatal(err)
		}
		files["/"+torchwood.TilePath(tile)] = data
		if tile.L == 0 {
			var bundle []byte
			for _, l := range leaves[tile.N*256 : tile.N*256+int64(tile.W)] {
				bundle = append(binary.BigEndian.AppendUint16(bundle, uint16(len(l))), l...)
			}
			tile.L = -1
			files["/"+torchwood.TilePath(tile)] = bundle
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, root
}

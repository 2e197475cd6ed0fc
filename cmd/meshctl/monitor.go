package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

// monitorOptions are the flags of 'meshctl monitor'.
type monitorOptions struct {
	getOptions
	state    string
	watch    bool
	interval time.Duration
}

// monitorState is what a monitor remembers between runs (--state): the
// versions of the name it has seen, proved as the complete history.
type monitorState struct {
	// Name is the account or identifier monitored.
	Name string
	// Versions are the versions seen, in log order.
	Versions []monitorVersion
	// Round is the certified round of the last run.
	Round uint64
	// Logs is, per member origin, the size of the member's own log read
	// through tlog-tiles so far: the next run reads from there.
	Logs map[string]uint64 `json:",omitempty"`
}

// monitorVersion is one version of the monitored profile.
type monitorVersion struct {
	Index  uint64
	Origin string
	Signer string
	// Alert says why the version is not the owner's, "" if it is.
	Alert string `json:",omitempty"`
}

// newMonitorCommand is 'meshctl monitor': the owner's watch over the
// versions of a profile the federation serves.
func newMonitorCommand(opts *globalOptions) *cobra.Command {
	var m monitorOptions
	cmd := &cobra.Command{
		Use:   "monitor (--account NAME@DOMAIN | --id UDF) --federation FILE [--state FILE] [--watch]",
		Short: "Watch every version of a profile the federation serves, and alert on one the keystore's keys did not sign",
		Long: `monitor proves, as 'get --all --verify' does, the complete history of the
profile (of an account, at its home member), and compares it with what it saw
before (--state FILE, JSON, created if missing). It prints every new version
with the key that signed it; a version signed by a key that is not in the local
keystore, or a history that no longer starts with the versions seen before, is
an ALERT, and monitor exits 1.

It then reads every member's own log through tlog-tiles at the member's portal
URL in the federation file, from where the state file says it stopped up to the
member's checkpoint in the newest certificate it verifies, checking each entry
against that checkpoint's root, and lists each record of the profile's
identifier or of the account with its member, index and signer: a version
another member logs, signed by a key not in the keystore, is an ALERT too. At
most 65536 records of one log are read per run; the state file keeps the
progress, so a large log is read over several runs. A member that cannot be
read is read from another member's replica of its log instead, and is a
warning if no copy can be read; one whose entries do not verify is an ALERT.

--watch runs again every --interval (default the federation's round) and
prints alerts as they come, until interrupted.`,
		Args:    exactArgs(0, "no arguments (use --id or --account)"),
		PreRunE: accountFlags("account"),
		RunE:    func(cmd *cobra.Command, _ []string) error { return m.run(cmd, opts) },
	}
	f := cmd.Flags()
	f.StringVar(&m.id, "id", "", "identifier (UDF) of the profile")
	f.StringVar(&m.account, "account", "", "account whose profile to monitor")
	f.StringVar(&m.federation, "federation", "", "the federation file whose member keys the proofs are checked with (required)")
	f.StringVar(&m.state, "state", "", "the file the versions seen are kept in")
	f.BoolVar(&m.watch, "watch", false, "keep monitoring, every --interval")
	f.DurationVar(&m.interval, "interval", 0, "how often --watch looks (default: the federation's round)")
	return cmd
}

// run checks the flags and monitors once, or until interrupted.
func (m *monitorOptions) run(cmd *cobra.Command, opts *globalOptions) error {
	if (m.id == "") == (m.account == "") || m.federation == "" {
		return usagef(cmd, "monitor needs exactly one of --id and --account, and --federation FILE")
	}
	keys, err := newGetVerifier(m.federation)
	if err != nil {
		return err
	}
	mine, err := keystoreKeys(opts)
	if err != nil {
		return err
	}
	if m.interval <= 0 {
		m.interval = keys.period
	}
	for {
		alerts, err := m.once(cmd.Context(), cmd.OutOrStdout(), opts, keys, mine)
		if err != nil {
			return err
		}
		if !m.watch {
			if alerts > 0 {
				return &exitError{code: exitFailure}
			}
			return nil
		}
		select {
		case <-cmd.Context().Done():
			return nil
		case <-time.After(m.interval):
		}
	}
}

// once proves the complete history, reports what is new since the state
// file, saves it, and returns how many alerts it raised.
func (m *monitorOptions) once(ctx context.Context, w io.Writer, opts *globalOptions, keys *getVerifier, mine map[string]bool) (int, error) {
	c, err := opts.client()
	if err != nil {
		return 0, err
	}
	g := m.getOptions
	g.all, g.full, g.verify = true, true, true
	req := &portal.GetRequest{Identifier: g.id, Account: g.account, Full: true, Multiple: true}
	fetch := g.fetchHistory // an account's home member
	if g.account == "" {
		fetch = g.fetchEveryOriginHistory // an identifier, in every member's log
	}
	items, checks, err := fetch(ctx, c, keys, req, "monitoring")
	if err != nil {
		return 0, err
	}
	st, err := loadMonitorState(m.state, m.id+m.account)
	if err != nil {
		return 0, err
	}
	failed, round := historyVerdict(checks)
	alerts := 0
	if failed != "" {
		fmt.Fprintf(w, "ALERT: the history could not be proved: %s\n", failed)
		alerts++
	} else {
		alerts += st.update(w, items, mine)
		fmt.Fprintf(w, "%s: %s, the complete history as of round %d\n", st.Name, countVersions(len(st.Versions)), round)
		if g.account == "" && len(checks) > 1 { // what every member's log holds
			fmt.Fprintln(w, strings.Join(checks[len(checks)-1].Proved, "\n"))
		}
	}
	alerts += m.scanMembers(ctx, w, opts, c, keys, st, items, mine)
	if err := saveMonitorState(m.state, st); err != nil {
		return alerts, err
	}
	if failed != "" {
		return alerts, nil
	}
	late, err := m.checkWrites(w, opts, keys, items, round)
	return alerts + late, err
}

// historyVerdict is what the checks of a history proved: the first
// failure ("" if none), and the certified round the last check (the
// summary, when there is one per member log) holds as of.
func historyVerdict(checks []getVerification) (failed string, round uint64) {
	for _, v := range checks {
		if v.Failed != "" {
			return v.Failed, 0
		}
	}
	return "", checks[len(checks)-1].Round
}

// scanMembers reads every member's own log through tlog-tiles up to the
// newest certificate (monitor_tiles.go) and reports the records of the
// monitored profile (the identifiers of the proved history, --id, the
// keystore's profile of --account) and of the account; it returns the
// alerts. Without a verified certificate nothing is read: a warning.
func (m *monitorOptions) scanMembers(ctx context.Context, w io.Writer, opts *globalOptions, c *portalClient, keys *getVerifier, st *monitorState, items []getItem, mine map[string]bool) int {
	t := monitorTarget{ids: map[string]bool{}, mine: mine, quiet: m.watch}
	if m.id != "" {
		t.ids[m.id] = true
	}
	if m.account != "" {
		t.account = portal.CanonicalAccount(m.account)
		if ks, err := opts.keystore(); err == nil {
			if p, err := ks.ProfileOfAccount(m.account); err == nil {
				t.ids[p.State.Identifier] = true
			}
		}
	}
	for _, it := range items {
		if it.Identifier != "" {
			t.ids[it.Identifier] = true
		}
	}
	req := &portal.GetRequest{Identifier: m.id, Account: m.account, Full: true}
	cert, round, err := newestCertificate(ctx, c, keys, m.account, req)
	if err != nil {
		fmt.Fprintf(w, "warning: no certificate verified, the members' logs are not read: %v\n", err)
		return 0
	}
	return scanLogs(ctx, w, keys, cert, round, st, t)
}

// checkWrites compares the writes the keystore remembers for the monitored
// profile (acknowledged by a portal, with the record they appended) with
// the latest record of the proved history: a write the certified map has
// reached is forgotten; one appended during round w that a certificate of
// round w+2 or later still does not reach is an ALERT (its origin
// acknowledged it and left it out of its checkpoints).
func (m *monitorOptions) checkWrites(w io.Writer, opts *globalOptions, keys *getVerifier, items []getItem, round uint64) (int, error) {
	ks, err := opts.keystore()
	if err != nil {
		return 0, err
	}
	var p *localProfile
	if m.account != "" {
		p, err = ks.ProfileOfAccount(m.account)
	} else {
		p, err = ks.FindProfile(m.id)
	}
	if err != nil || len(p.State.Writes) == 0 {
		return 0, nil // not the keystore's profile: no writes of its own to follow
	}
	var latest *getItem
	if len(items) > 0 {
		latest = &items[len(items)-1]
	}
	alerts, kept := 0, p.State.Writes[:0]
	for _, wr := range p.State.Writes {
		reached := latest != nil && latest.Origin == wr.Origin && *latest.Index >= wr.Index
		written := uint64(wr.At.Unix()) / uint64(keys.period.Seconds())
		switch {
		case reached:
			fmt.Fprintf(w, "write record %d of %s is in the certified map\n", wr.Index, wr.Origin)
			continue
		case round >= written+freshRounds:
			alerts++
			fmt.Fprintf(w, "ALERT: the write %s acknowledged as record %d at %s is not in the certified map of round %d, %d rounds later\n",
				wr.Origin, wr.Index, wr.At.Format(time.RFC3339), round, round-written)
		default:
			fmt.Fprintf(w, "write record %d of %s: waiting for its certificate\n", wr.Index, wr.Origin)
		}
		kept = append(kept, wr)
	}
	p.State.Writes = kept
	return alerts, p.SaveState()
}

// update compares the proved history items with the versions seen, prints
// each new one, and returns the alerts. The items hold each member log's
// history in log order (one log for an account, every member's for an
// identifier), and what was seen of each log must still start it.
func (st *monitorState) update(w io.Writer, items []getItem, mine map[string]bool) int {
	seen, served := map[string][]monitorVersion{}, map[string][]getItem{}
	for _, v := range st.Versions {
		seen[v.Origin] = append(seen[v.Origin], v)
	}
	for _, it := range items {
		served[it.Origin] = append(served[it.Origin], it)
	}
	for origin, vs := range seen {
		for i, v := range vs {
			if got := served[origin]; i >= len(got) || *got[i].Index != v.Index {
				fmt.Fprintf(w, "ALERT: the history no longer starts with the %d versions of %s's log seen before (version %d was record %d)\n",
					len(vs), origin, i+1, v.Index)
				return 1
			}
		}
	}
	alerts, counted := 0, map[string]int{}
	for _, it := range items {
		if counted[it.Origin]++; counted[it.Origin] <= len(seen[it.Origin]) {
			continue
		}
		v := monitorVersion{Index: *it.Index, Origin: it.Origin, Signer: entrySigner(it)}
		v.Alert = versionAlert(v.Signer, it.VerifyError, mine)
		if v.Alert != "" {
			alerts++
			fmt.Fprintf(w, "ALERT: new version, record %d of %s: %s\n", v.Index, v.Origin, v.Alert)
		} else {
			fmt.Fprintf(w, "new version: record %d of %s, signed by %s (in the keystore)\n", v.Index, v.Origin, v.Signer)
		}
		st.Versions = append(st.Versions, v)
	}
	return alerts
}

// versionAlert says why a version is not the owner's: signed by signer
// ("" if its signature does not verify, for the reason why), it is the
// owner's if signer is a key in the keystore (mine). "" if it is.
func versionAlert(signer, why string, mine map[string]bool) string {
	switch {
	case signer == "":
		return "its signature does not verify: " + why
	case !mine[signer]:
		return "signed by " + signer + ", which no key in the keystore is"
	}
	return ""
}

// entrySigner is the UDF of the key whose signature over the item's entry
// verifies, or "".
func entrySigner(it getItem) string {
	signer, _ := signerOf(it.Entry)
	return signer
}

// signerOf is the UDF of the key whose signature over entry verifies, or
// "" and why not.
func signerOf(entry []byte) (string, string) {
	if len(entry) == 0 {
		return "", "the record carries no signed entry"
	}
	e, err := mesh.VerifyEntry(entry, 0)
	if err != nil {
		return "", err.Error()
	}
	return e.Signer.String(), ""
}

// keystoreKeys returns the UDFs of every private key in the keystore.
func keystoreKeys(opts *globalOptions) (map[string]bool, error) {
	ks, err := opts.keystore()
	if err != nil {
		return nil, err
	}
	mine := map[string]bool{}
	err = filepath.WalkDir(ks.Dir(), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".key") {
			return err
		}
		k, err := loadKey(filepath.Dir(path), strings.TrimSuffix(filepath.Base(path), ".key"))
		if err != nil {
			return nil // not a key this keystore wrote: not the owner's
		}
		mine[k.Public().UDF().String()] = true
		return nil
	})
	return mine, err
}

// loadMonitorState reads the state file, or starts one for name.
func loadMonitorState(path, name string) (*monitorState, error) {
	st := &monitorState{Name: name}
	if path == "" {
		return st, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if st.Name != name {
		return nil, fmt.Errorf("%s monitors %s, not %s", path, st.Name, name)
	}
	return st, nil
}

// saveMonitorState writes the state file, if there is one.
func saveMonitorState(path string, st *monitorState) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// countVersions says "1 version" or "n versions".
func countVersions(n int) string {
	if n == 1 {
		return "1 version"
	}
	return fmt.Sprintf("%d versions", n)
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"filippo.io/torchwood"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/intermesh/intermesh/audit"
	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal"
)

// What 'meshctl monitor' reads beyond the home member's proved history
// (docs/cli.md, "monitor"): every member's own log, served as tlog-tiles
// at the member's portal URL (docs/formats.md, "tlog-tiles"), up to the
// size of its checkpoint that the newest verified certificate covers. A
// record in any of them that names the monitored identifier or account is
// reported with its signer, so that a member logging a version of alice's
// profile in its own log, which her home member never serves, is seen.

// maxMonitorEntries bounds the records read from one member's log in one
// run; the state file keeps where the run stopped, so that a large log is
// read across runs.
const maxMonitorEntries = 1 << 16

// monitorMemberTimeout bounds the time spent reading one member's log.
const monitorMemberTimeout = 30 * time.Second

// monitorTarget is what the logs are scanned for: the identifiers of the
// monitored profile and the account's canonical name ("" for --id).
type monitorTarget struct {
	ids     map[string]bool
	account string
	mine    map[string]bool
	// quiet leaves out the line of a log with nothing new (--watch, where
	// it would repeat every round).
	quiet bool
}

// matches reports whether rec is a version of the target's profile or a
// change of its account.
func (t monitorTarget) matches(rec log.Record) bool {
	switch rec.Kind {
	case portal.KindProfile:
		return t.ids[rec.Identifier]
	case portal.KindAccount:
		return t.ids[rec.Identifier] || (t.account != "" && rec.Account == t.account)
	}
	return false
}

// newestCertificate asks the home member (or the portal) about req, and
// returns the newest certificate it or another member offers, verified as
// 'get --verify' verifies it (certifiedOf, newerCertificate,
// verifyCertificateProof): each member's checkpoint it lists is one a
// quorum signed.
func newestCertificate(ctx context.Context, c *portalClient, keys *getVerifier, account string, req *portal.GetRequest) (*audit.Certificate, uint64, error) {
	c, err := homeClient(keys, account, c)
	if err != nil {
		return nil, 0, err
	}
	resp, err := getProved(ctx, c, req, "monitoring")
	if err != nil {
		return nil, 0, err
	}
	cert, err := certifiedOf(keys, resp)
	if err != nil {
		return nil, 0, err
	}
	if newer, ok := newerCertificate(ctx, keys, req, cert); ok {
		cert = newer
	}
	var v getVerification
	return verifyCertificateProof(keys, cert.proof, &v)
}

// scanLogs reads every member's own log with a portal URL in the
// federation file, from the size st says it read up to the size of the
// member's checkpoint that cert covers (at most maxMonitorEntries), reports
// each record of the target, and returns the alerts. A member that cannot
// be read is a warning; entries that do not verify against the certified
// checkpoint are an alert.
func scanLogs(ctx context.Context, w io.Writer, keys *getVerifier, cert *audit.Certificate, round uint64, st *monitorState, t monitorTarget) int {
	if st.Logs == nil {
		st.Logs = map[string]uint64{}
	}
	alerts := 0
	for _, m := range keys.fed.Members {
		if m.HTTP == "" {
			continue
		}
		i := cert.Index(m.Origin)
		if i < 0 {
			fmt.Fprintf(w, "warning: the certificate of round %d covers no checkpoint of %s: its log is not read\n", round, m.Origin)
			continue
		}
		cp := cert.Checkpoints[i]
		from := st.Logs[m.Origin]
		if cp.Size <= from {
			st.Logs[m.Origin] = from
			if t.quiet {
				continue
			}
			fmt.Fprintf(w, "%s's log: nothing new (read up to %d, certified size %d in round %d)\n", m.Origin, from, cp.Size, round)
			continue
		}
		to := min(cp.Size, from+maxMonitorEntries)
		n, via, err := scanOriginLog(ctx, w, keys, m.Origin, m.HTTP, cp, from, to, t)
		alerts += n
		var down *memberDownError
		switch {
		case errors.As(err, &down):
			fmt.Fprintf(w, "warning: %s's log could not be read from %s nor from another member's replica: %v\n", m.Origin, m.HTTP, down.err)
			continue
		case err != nil:
			alerts++
			fmt.Fprintf(w, "ALERT: %s's log does not verify against its checkpoint at size %d that the certificate of round %d covers: %v\n",
				m.Origin, cp.Size, round, err)
			continue
		}
		st.Logs[m.Origin] = to
		more := ""
		if to < cp.Size {
			more = fmt.Sprintf("; %d more next run", cp.Size-to)
		}
		fmt.Fprintf(w, "%s's log: read records %d to %d of its checkpoint at size %d certified in round %d, through tlog-tiles%s%s\n",
			m.Origin, from, to-1, cp.Size, round, via, more)
	}
	return alerts
}

// scanOriginLog reads origin's log (scanMemberLog) from its own member at
// base, or, if that member cannot be read, from the replica of it that
// another member serves (/replica/<origin>/), verified against the same
// certified checkpoint: a member that withholds its tiles does not hide
// its records. A replica that cannot be read, or that does not verify (it
// may lag or be under repair), is a warning and the next one is tried. It
// returns the alerts, " from <member>'s replica" when one was read, and
// the error of the member's own log if no copy could be read.
func scanOriginLog(ctx context.Context, w io.Writer, keys *getVerifier, origin, base string, cp audit.Checkpoint, from, to uint64, t monitorTarget) (int, string, error) {
	alerts, err := scanMemberLog(ctx, w, base, cp, from, to, t)
	var down *memberDownError
	if !errors.As(err, &down) {
		return alerts, "", err
	}
	for _, o := range keys.fed.Members {
		if o.Origin == origin || o.HTTP == "" {
			continue
		}
		n, rerr := scanMemberLog(ctx, w, strings.TrimSuffix(o.HTTP, "/")+"/replica/"+origin+"/", cp, from, to, t)
		alerts += n
		if rerr == nil {
			return alerts, fmt.Sprintf(" from %s's replica (%s did not answer)", o.Origin, origin), nil
		}
		fmt.Fprintf(w, "warning: %s's replica of %s's log: %v\n", o.Origin, origin, rerr)
	}
	return alerts, "", err
}

// memberDownError is a member's log that could not be fetched, as opposed
// to one that was fetched and does not verify.
type memberDownError struct{ err error }

func (e *memberDownError) Error() string { return e.err.Error() }
func (e *memberDownError) Unwrap() error { return e.err }

// fetchMarker is a tile reader that remembers whether fetching failed.
type fetchMarker struct {
	torchwood.TileReader
	failed error
}

// ReadTiles fetches tiles, remembering a failure.
func (f *fetchMarker) ReadTiles(ctx context.Context, tiles []tlog.Tile) ([][]byte, error) {
	data, err := f.TileReader.ReadTiles(ctx, tiles)
	if err != nil {
		f.failed = err
	}
	return data, err
}

// scanMemberLog reads records from to to-1 of the log served at base as
// tlog-tiles, with torchwood's client, which checks every entry and tile
// against cp's root, and reports the target's records. It returns the
// alerts raised, and a *memberDownError if the tiles could not be fetched.
func scanMemberLog(ctx context.Context, w io.Writer, base string, cp audit.Checkpoint, from, to uint64, t monitorTarget) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, monitorMemberTimeout)
	defer cancel()
	if len(cp.Root) != tlog.HashSize {
		return 0, fmt.Errorf("a root of %d bytes", len(cp.Root))
	}
	tree := tlog.Tree{N: int64(cp.Size), Hash: tlog.Hash(cp.Root)}
	f, err := torchwood.NewTileFetcher(strings.TrimSuffix(base, "/") + "/")
	if err != nil {
		return 0, &memberDownError{err}
	}
	fm := &fetchMarker{TileReader: f}
	c, err := torchwood.NewClient(fm)
	if err != nil {
		return 0, &memberDownError{err}
	}
	alerts, next := 0, int64(from)
	for next < int64(to) {
		before := next
		for i, leaf := range c.Entries(ctx, tree, next) {
			if i != next {
				return alerts, fmt.Errorf("entry %d came as %d", next, i)
			}
			n, err := reportRecord(w, cp.Origin, uint64(i), leaf, t)
			if err != nil {
				return alerts, err
			}
			alerts += n
			if next++; next == int64(to) {
				break
			}
		}
		if err := c.Err(); err != nil {
			if fm.failed != nil || ctx.Err() != nil {
				return alerts, &memberDownError{err}
			}
			return alerts, err
		}
		if next == before {
			return alerts, &memberDownError{fmt.Errorf("no entries from %d", next)}
		}
	}
	return alerts, nil
}

// reportRecord decodes leaf i of origin's log and, if it is a record of
// the target, prints it with its signer; it returns 1 if that is an alert.
// A leaf that does not decode, or whose sequence number is not its index,
// is an error: its log certified it.
func reportRecord(w io.Writer, origin string, i uint64, leaf []byte, t monitorTarget) (int, error) {
	rec, err := log.UnmarshalLeaf(leaf)
	if err != nil {
		return 0, fmt.Errorf("record %d: %w", i, err)
	}
	if rec.Seq != i {
		return 0, fmt.Errorf("record %d says it is record %d", i, rec.Seq)
	}
	if !t.matches(rec) {
		return 0, nil
	}
	what := fmt.Sprintf("record %d of %s's log, %s %s", i, origin, rec.Kind, rec.Identifier)
	if rec.Account != "" {
		what += " (account " + rec.Account + ")"
	}
	pe, err := portal.UnmarshalPortalEntry(rec.Payload)
	if err != nil {
		fmt.Fprintf(w, "ALERT: %s: its portal entry does not decode: %v\n", what, err)
		return 1, nil
	}
	if len(pe.Entry) == 0 && rec.Kind == portal.KindAccount && pe.Status == portal.AccountClosed {
		fmt.Fprintf(w, "seen: %s: the account is closed (a DeleteAccount carries no signed entry)\n", what)
		return 0, nil
	}
	signer, why := signerOf(pe.Entry)
	if alert := versionAlert(signer, why, t.mine); alert != "" {
		fmt.Fprintf(w, "ALERT: %s: %s\n", what, alert)
		return 1, nil
	}
	fmt.Fprintf(w, "seen: %s, signed by %s (in the keystore)\n", what, signer)
	return 0, nil
}

package portal_test

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
	"github.com/intermesh/intermesh/vmap"
)

// mapRuleLog is a real portal's log of creates, updates, an escrow entry
// and an account deletion, read back whole.
func mapRuleLog(t testing.TB) []log.Record {
	t.Helper()
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{})
	fill(t, p, 0, 2)
	bob := newUser(t, "bob@example.com")
	_, err := p.client.CreateAccount(ctx, consented(t, "bob", entryOf(t, bob.profileAccount, bob.acctOffline), bob.acctOffline))
	mustStatus(t, err, portal.SuccessOK)
	escrow, _, err := mesh.Escrow(rand.Reader, []byte("secret key bytes"), 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	mustStatus(t, publishFor(t, p.client, "bob", escrowEntry(t, escrow), bob.acctOnline), portal.SuccessOK)
	del := &portal.DeleteRequest{Account: "bob", Proof: entryOf(t, &portal.DeleteProof{Account: "bob", Signed: time.Now()}, bob.acctOffline)}
	_, err = p.client.DeleteAccount(ctx, del)
	mustStatus(t, err, portal.SuccessOK)
	recs := make([]log.Record, p.log.Size())
	for i := range recs {
		if recs[i], err = p.log.Get(uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	return recs
}

// checkLogRules applies portal.CheckMapRecord to every record of recs, in
// order, against the record that set each name before, and returns the
// first refusal.
func checkLogRules(recs []log.Record) error {
	return checkLogWith(portal.CheckMapRecord, recs)
}

// checkLogWith is checkLogRules with another rule.
func checkLogWith(rule func(vmap.Name, *log.Record, *log.Record) error, recs []log.Record) error {
	prev := map[vmap.Name]*log.Record{}
	for i := range recs {
		for _, n := range vmap.Sets(&recs[i]) {
			if err := rule(n, prev[n], &recs[i]); err != nil {
				return err
			}
			prev[n] = &recs[i]
		}
	}
	return nil
}

// TestAnHonestPortalLogKeepsTheMapRules: every record a portal logs keeps
// the rules members check while they recompute its map, and a deletion no
// longer names the profile.
func TestAnHonestPortalLogKeepsTheMapRules(t *testing.T) {
	recs := mapRuleLog(t)
	if err := checkLogRules(recs); err != nil {
		t.Fatal(err)
	}
	last := recs[len(recs)-1]
	if last.Kind != portal.KindAccount || last.Identifier != "" || last.Account != "bob" {
		t.Fatalf("the deletion is logged as %s %q of %q, want an Account record with no identifier", last.Kind, last.Identifier, last.Account)
	}
}

// TestRecordsThatBreakTheMapRulesAreRefused: a log a lying portal wrote
// (records of an honest log moved, repeated or relabelled) breaks a rule,
// and CheckMapRecord says which.
func TestRecordsThatBreakTheMapRulesAreRefused(t *testing.T) {
	recs := mapRuleLog(t)
	// user0: 0 CreateAccount, 1 Publish of its mesh profile, 2 update of
	// the account profile, 3 ConnectStart; user1: 4–7; bob: 8 create, 9
	// escrow, 10 delete.
	find := func(i int, kind log.Kind) log.Record {
		if recs[i].Kind != kind {
			t.Fatalf("record %d is %s, want %s", i, recs[i].Kind, kind)
		}
		return recs[i]
	}
	create, update, escrow := find(0, portal.KindAccount), find(2, portal.KindProfile), find(9, portal.KindEscrow)
	// A closing as DeleteAccount wrote it before the map, naming the
	// profile: taken as it is; but its payload under a Profile record is
	// no profile.
	legacyClosing := find(10, portal.KindAccount)
	legacyClosing.Identifier = update.Identifier
	closingAsProfile := legacyClosing
	closingAsProfile.Kind = portal.KindProfile
	asProfile := create
	asProfile.Kind = portal.KindProfile
	notProfile := escrow
	notProfile.Kind, notProfile.Identifier = portal.KindProfile, update.Identifier
	relabelled := find(1, portal.KindProfile)
	relabelled.Identifier = update.Identifier
	cases := []struct {
		name      string
		log       []log.Record
		wantWords string
	}{
		{"an older version after a newer", []log.Record{create, update, asProfile}, "signed Updated order"},
		{"the same version published twice", []log.Record{create, update, update}, "signed Updated order"},
		{"an escrow entry set twice", []log.Record{escrow, escrow}, "set again"},
		{"a profile record without a profile", []log.Record{notProfile}, "not a profile"},
		{"another profile's identifier", []log.Record{relabelled}, "KeyOfflineSignature makes it"},
		{"a closing's payload as a profile", []log.Record{create, legacyClosing, closingAsProfile}, "not a profile"},
	}
	for _, c := range cases {
		for i := range c.log {
			c.log[i].Seq = uint64(i)
		}
		// The rule as members run it, with its cache warmed by the honest
		// log, must refuse the same.
		cached := portal.NewMapRule(64)
		if err := checkLogWith(cached, recs); err != nil {
			t.Fatal(err)
		}
		for name, rule := range map[string]func(vmap.Name, *log.Record, *log.Record) error{"": portal.CheckMapRecord, " (cached)": cached} {
			err := checkLogWith(rule, c.log)
			if !errors.Is(err, portal.ErrMapRule) {
				t.Errorf("%s%s: got %v, want ErrMapRule", c.name, name, err)
				continue
			}
			if !strings.Contains(err.Error(), c.wantWords) {
				t.Errorf("%s%s: %v does not say %q", c.name, name, err, c.wantWords)
			}
		}
	}
	// CreateAccount may bind the registered version again.
	rebind := []log.Record{create, create}
	rebind[1].Seq = 1
	if err := checkLogRules(rebind); err != nil {
		t.Errorf("binding the registered version again: %v", err)
	}
}

// BenchmarkCheckMapRecord is what a member spends per profile update of
// another member's log on the map's rules: both versions' profiles
// decoded (the record read from the replica is not counted).
func BenchmarkCheckMapRecord(b *testing.B) {
	recs := mapRuleLog(b)
	prev, rec := recs[0], recs[2] // user0's account profile, then its update
	name := vmap.Name{Namespace: vmap.Profile, Name: rec.Identifier}
	if err := portal.CheckMapRecord(name, &prev, &rec); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := portal.CheckMapRecord(name, &prev, &rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMapRuleCached is BenchmarkCheckMapRecord as a member runs it
// (NewMapRule): the version before was read when the map took it.
func BenchmarkMapRuleCached(b *testing.B) {
	recs := mapRuleLog(b)
	rule := portal.NewMapRule(1024)
	name := vmap.Name{Namespace: vmap.Profile, Name: recs[2].Identifier}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		rec := recs[2]
		rec.Payload = append([]byte(nil), rec.Payload...)
		for j := i; j > 0; j >>= 1 { // i in white space: another record each time, not cached
			rec.Payload = append(rec.Payload, " \n"[j&1])
		}
		b.StartTimer()
		if err := rule(name, &recs[0], &rec); err != nil {
			b.Fatal(err)
		}
	}
}

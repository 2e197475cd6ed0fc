package vmap

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/log"
)

func TestLogMapFromVectors(t *testing.T) {
	var v logVectors
	loadVectors(t, "log.json", &v)
	if len(v.Roots) != len(v.Records)+1 {
		t.Fatalf("%d roots for %d records", len(v.Roots), len(v.Records))
	}
	m := NewLogMap()
	check := func(size int) {
		t.Helper()
		want := v.Roots[size]
		if want.Size != size || int(m.Size()) != size {
			t.Fatalf("size %d: vector size %d, map size %d", size, want.Size, m.Size())
		}
		if m.Tree().Len() != want.Keys {
			t.Errorf("size %d: %d keys, want %d", size, m.Tree().Len(), want.Keys)
		}
		if got := m.Root(); got != hash32(t, want.Root) {
			t.Errorf("size %d: root %x, want %s", size, got, want.Root)
		}
	}
	check(0)
	for i, rec := range v.Records {
		leaf := unhex(t, rec.Leaf)
		r, err := log.UnmarshalLeaf(leaf)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		wantRec := log.Record{Seq: rec.Seq, Time: time.Unix(0, rec.Time).UTC(), Kind: log.Kind(rec.Kind),
			Identifier: rec.Identifier, Account: rec.Account, Origin: rec.Origin, Payload: []byte(rec.Payload)}
		if !reflect.DeepEqual(r, wantRec) || rec.Index != uint64(i) || rec.Seq != uint64(i) {
			t.Errorf("record %d decodes as %+v, want %+v", i, r, wantRec)
		}
		var sets []Name
		for _, s := range rec.Sets {
			sets = append(sets, Name(s))
		}
		if got := Sets(&r); !reflect.DeepEqual(got, sets) {
			t.Errorf("record %d (%s): sets %v, want %v", i, rec.Kind, got, sets)
		}
		if err := m.Append(leaf); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		check(i + 1)
	}
	for _, k := range v.Keys {
		got, ok := m.Tree().Get(Key(hash32(t, k.Key)))
		if !ok || hex.EncodeToString(got.Marshal()) != k.Value {
			t.Errorf("%s %q: value %x (%v), want %s", k.Namespace, k.Name, got.Marshal(), ok, k.Value)
		}
	}
	if m.Tree().Len() != len(v.Keys) {
		t.Errorf("%d keys, want %d", m.Tree().Len(), len(v.Keys))
	}
	t.Logf("%d sizes reproduced", len(v.Roots))
}

func TestLogMapRefuses(t *testing.T) {
	good := log.Record{Seq: 0, Time: time.Unix(0, 1).UTC(), Kind: "Profile", Identifier: "X", Origin: "o", Payload: []byte("{}")}
	for _, c := range []struct {
		name string
		leaf []byte
		why  string
	}{
		{"not a leaf", []byte{9, 9}, "malformed leaf"},
		{"seq not its position", with(good, func(r *log.Record) { r.Seq = 1 }).MarshalLeaf(), "seq 1"},
		{"identifier not UTF-8", with(good, func(r *log.Record) { r.Identifier = "\xff" }).MarshalLeaf(), "UTF-8"},
		{"account not UTF-8", with(good, func(r *log.Record) { r.Account = "a\xc3" }).MarshalLeaf(), "UTF-8"},
	} {
		m := NewLogMap()
		before := m.Root()
		err := m.Append(c.leaf)
		if err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s: Append = %v, want an error saying %q", c.name, err, c.why)
		}
		if m.Size() != 0 || m.Root() != before {
			t.Errorf("%s: a refused leaf changed the map", c.name)
		}
	}
	m := NewLogMap()
	if err := m.Append(good.MarshalLeaf()); err != nil || m.Size() != 1 || m.Tree().Len() != 1 {
		t.Errorf("good leaf: %v, size %d, %d keys", err, m.Size(), m.Tree().Len())
	}
}

// with returns a copy of r changed by f.
func with(r log.Record, f func(*log.Record)) *log.Record {
	r.Payload = bytes.Clone(r.Payload)
	f(&r)
	return &r
}

// TestLogMapStoreErrors checks that Append returns the Store's errors and,
// when the Store fails to read, leaves the map as it was.
func TestLogMapStoreErrors(t *testing.T) {
	s := &failingStore{}
	tr, err := OpenTree(s, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	m := OpenLogMap(tr)
	rec := log.Record{Seq: 0, Time: time.Unix(0, 1).UTC(), Kind: "Account", Identifier: "X", Account: "a", Origin: "o", Payload: []byte("{}")}
	s.fail = true
	if err := m.Append(rec.MarshalLeaf()); !errors.Is(err, errStore) || m.Size() != 0 || m.Tree().Len() != 0 {
		t.Errorf("Append with the store down: %v, size %d, %d keys", err, m.Size(), m.Tree().Len())
	}
	s.fail = false
	if err := m.Append(rec.MarshalLeaf()); err != nil || m.Size() != 1 || m.Tree().Len() != 2 {
		t.Errorf("Append retried: %v, size %d, %d keys", err, m.Size(), m.Tree().Len())
	}
	s.fail = true
	if _, err := m.Commit(); !errors.Is(err, errStore) || tr.Version() != 0 {
		t.Errorf("Commit with the store down: %v, version %d", err, tr.Version())
	}
}

// TestLogMapOverBadger builds the map of the vectors' log in a
// BadgerStore, committing it at every few sizes and reopening it from the
// database now and then, and checks each size's root against the vectors.
func TestLogMapOverBadger(t *testing.T) {
	var v logVectors
	loadVectors(t, "log.json", &v)
	db := openBadger(t, 0)
	s := NewBadgerStore(db, StorePrefix("local"))
	open := func() *LogMap {
		t.Helper()
		tr, err := s.Open(2)
		if err != nil {
			t.Fatal(err)
		}
		return OpenLogMap(tr)
	}
	m := open()
	for i, rec := range v.Records {
		if err := m.Append(unhex(t, rec.Leaf)); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if i%3 != 0 {
			continue
		}
		root, err := m.Commit()
		if err != nil || root != hash32(t, v.Roots[i+1].Root) || m.Tree().Version() != uint64(i+1) {
			t.Fatalf("size %d: Commit = %x, %v, version %d; want %s", i+1, root, err, m.Tree().Version(), v.Roots[i+1].Root)
		}
		if again, err := m.Commit(); err != nil || again != root {
			t.Errorf("size %d: Commit again = %x, %v", i+1, again, err)
		}
		if i%2 == 0 {
			m = open()
			if m.Size() != uint64(i+1) || m.Root() != root {
				t.Fatalf("size %d: reopened at size %d, root %x", i+1, m.Size(), m.Root())
			}
		}
	}
	if got, want := m.Root(), hash32(t, v.Roots[len(v.Records)].Root); got != want {
		t.Errorf("final root %x, want %x", got, want)
	}
}

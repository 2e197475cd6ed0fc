package keyspace

import (
	"bytes"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func TestPrefixesDoNotOverlap(t *testing.T) {
	names := map[string]bool{}
	for i, a := range Prefixes {
		if a.Name == "" || len(a.Prefix) == 0 || a.Owner == "" || a.Holds == "" {
			t.Errorf("entry %d (%q) has an empty field", i, a.Name)
		}
		if names[a.Name] {
			t.Errorf("name %q is listed twice", a.Name)
		}
		names[a.Name] = true
		for j, b := range Prefixes {
			if i == j {
				continue
			}
			if bytes.HasPrefix(b.Prefix, a.Prefix) && a.Owner != b.Owner {
				t.Errorf("%s (%x, %s) is a prefix of %s (%x, %s)", a.Name, a.Prefix, a.Owner, b.Name, b.Prefix, b.Owner)
			}
			if bytes.Equal(a.Prefix, b.Prefix) {
				t.Errorf("%s and %s claim the same prefix %x", a.Name, b.Name, a.Prefix)
			}
		}
	}
}

func TestOwnersAreKnown(t *testing.T) {
	known := map[string]bool{OwnerLog: true, OwnerMerkle: true, OwnerPortal: true, OwnerWitness: true, OwnerInterMesh: true, OwnerNode: true, OwnerMap: true}
	for _, p := range Prefixes {
		if !known[p.Owner] {
			t.Errorf("%s: owner %q is not an Owner constant", p.Name, p.Owner)
		}
	}
}

func TestTreeNamesAreDistinct(t *testing.T) {
	if strings.HasPrefix(TreeLocal, TreeReplica) || strings.HasPrefix(TreeReplica, TreeLocal) {
		t.Errorf("tree names %q and %q overlap", TreeLocal, TreeReplica)
	}
}

func TestOwner(t *testing.T) {
	for _, tc := range []struct {
		key   []byte
		owner string
		ok    bool
	}{
		{[]byte{'L', 0, 0, 'h'}, OwnerLog, true},
		{[]byte{'t', 5, 'l', 'o', 'c', 'a', 'l', 's'}, OwnerMerkle, true},
		{[]byte{'c'}, OwnerMerkle, true},
		{[]byte("sa:alice"), OwnerPortal, true},
		{[]byte("wlorigin"), OwnerWitness, true},
		{[]byte("xm"), OwnerInterMesh, true},
		{[]byte{'F', 0, 0, 0, 0, 0, 0, 0, 1}, OwnerNode, true},
		{[]byte{'m', 5, 'l', 'o', 'c', 'a', 'l', 'b', 0, 1}, OwnerMap, true},
		{[]byte("z"), "", false},
		{nil, "", false},
	} {
		owner, ok := Owner(tc.key)
		if owner != tc.owner || ok != tc.ok {
			t.Errorf("Owner(%x) = %q, %v; want %q, %v", tc.key, owner, ok, tc.owner, tc.ok)
		}
	}
}

func TestCheckOwner(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := CheckOwner(db, OwnerLog); err == nil {
		t.Error("CheckOwner of an empty database: no error")
	}
	set := func(key string) {
		t.Helper()
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(key), nil) }); err != nil {
			t.Fatal(err)
		}
	}
	set("L\x00\x00h")
	if err := CheckOwner(db, OwnerLog); err != nil {
		t.Errorf("CheckOwner(log) of a log key: %v", err)
	}
	set("t\x01Ls")
	if err := CheckOwner(db, OwnerLog); err == nil {
		t.Error("CheckOwner(log) of a merkle key: no error")
	}
	if err := CheckOwner(db, OwnerLog, OwnerMerkle); err != nil {
		t.Errorf("CheckOwner(log, merkle): %v", err)
	}
	n, err := Count(db)
	if err != nil {
		t.Fatal(err)
	}
	if n[OwnerLog] != 1 || n[OwnerMerkle] != 1 || len(n) != 2 {
		t.Errorf("Count = %v, want one log and one merkle key", n)
	}
	set("?")
	if err := CheckOwner(db, OwnerLog, OwnerMerkle); err == nil {
		t.Error("CheckOwner of a key no entry owns: no error")
	}
}

// TestBytesAreTheOnDiskOnes pins every prefix to the byte docs/formats.md
// and the stores on disk use: changing one is a change of the format.
func TestBytesAreTheOnDiskOnes(t *testing.T) {
	want := map[string]string{"Log": "L", "MerkleTree": "t", "MerkleCheckpoint": "c", "PortalState": "s",
		"Witness": "w", "InterMesh": "x", "Federation": "F", "Map": "m"}
	if len(Prefixes) != len(want) {
		t.Errorf("%d prefixes, want %d", len(Prefixes), len(want))
	}
	for _, p := range Prefixes {
		if string(p.Prefix) != want[p.Name] {
			t.Errorf("%s is %q, want %q", p.Name, p.Prefix, want[p.Name])
		}
	}
	if TreeLocal != "local" || TreeReplica != "replica/" {
		t.Errorf("tree names %q and %q, want \"local\" and \"replica/\"", TreeLocal, TreeReplica)
	}
}

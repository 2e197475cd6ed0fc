package portal

import (
	"strconv"
	"sync"
	"testing"

	"github.com/intermesh/intermesh/portal/mesh"
)

// keysMarked returns a key map that says which record it was read from:
// it holds seq+1 keys (their values are not looked at).
func keysMarked(seq uint64) map[mesh.UDF]mesh.PublicKey {
	m := make(map[mesh.UDF]mesh.PublicKey, seq+1)
	for i := range seq + 1 {
		m[mesh.MustUDFSHA2("text/plain", []byte(strconv.FormatUint(i, 10)))] = mesh.PublicKey{}
	}
	return m
}

// The cache answers only for the record it read the keys from, and a
// late put of an older record does not replace a newer one.
func TestTheKeyCacheAnswersOnlyForTheSameRecord(t *testing.T) {
	c := newKeyCache(8)
	c.put("P", 5, keysMarked(5))
	if k, ok := c.get("P", 5); !ok || len(k) != 6 {
		t.Fatalf("get(P, 5) = %d keys, %t; want 6 keys", len(k), ok)
	}
	for _, seq := range []uint64{4, 6} {
		if _, ok := c.get("P", seq); ok {
			t.Errorf("get(P, %d) hit the keys of record 5", seq)
		}
	}
	c.put("P", 9, keysMarked(9))
	c.put("P", 5, keysMarked(5))
	if _, ok := c.get("P", 5); ok {
		t.Error("an older record's keys replaced a newer one's")
	}
	if k, ok := c.get("P", 9); !ok || len(k) != 10 {
		t.Errorf("get(P, 9) = %d keys, %t; want 10 keys", len(k), ok)
	}
	var none *keyCache
	none.put("P", 1, keysMarked(1))
	if _, ok := none.get("P", 1); ok {
		t.Error("a nil cache answered")
	}
}

// However many account profiles are looked up, the state's cache holds at
// most keyCacheSize of them, the most recently used.
func TestTheKeyCacheStaysWithinItsBound(t *testing.T) {
	c := NewState().keys
	one := keysMarked(0)
	for i := range 3 * keyCacheSize {
		c.put("P"+strconv.Itoa(i), uint64(i), one)
		if n := c.len(); n > keyCacheSize {
			t.Fatalf("after %d profiles the cache holds %d, over %d", i+1, n, keyCacheSize)
		}
	}
	if n := c.len(); n != keyCacheSize {
		t.Errorf("the cache holds %d profiles, want %d", n, keyCacheSize)
	}
	last := 3*keyCacheSize - 1
	if _, ok := c.get("P"+strconv.Itoa(last), uint64(last)); !ok {
		t.Error("the profile looked up last is not cached")
	}
	if _, ok := c.get("P0", 0); ok {
		t.Error("the profile looked up first is still cached")
	}
}

// Concurrent gets and puts of many profiles and records never answer the
// keys of another record than the one asked for (run with -race).
func TestTheKeyCacheIsSafeForConcurrentUse(t *testing.T) {
	c := newKeyCache(16)
	marked := make([]map[mesh.UDF]mesh.PublicKey, 8)
	for i := range marked {
		marked[i] = keysMarked(uint64(i))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				udf := "P" + strconv.Itoa((i*7+g)%40)
				seq := uint64((i + g) % len(marked))
				if k, ok := c.get(udf, seq); ok && len(k) != int(seq)+1 {
					t.Errorf("get(%s, %d) answered the keys of record %d", udf, seq, len(k)-1)
					return
				}
				c.put(udf, seq, marked[seq])
				if i%500 == 0 {
					c.purge()
				}
			}
		})
	}
	wg.Wait()
	if n := c.len(); n > 16 {
		t.Errorf("the cache holds %d profiles, over 16", n)
	}
}

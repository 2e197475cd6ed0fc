package portal

import (
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/intermesh/intermesh/portal/mesh"
)

// keyCacheSize is the most account profiles whose keys a keyCache holds:
// an entry is a few hundred bytes, so a full cache stays near a megabyte
// however many accounts clients create.
const keyCacheSize = 4096

// keyCache holds the authority keys (offline and online signature keys) of
// registered account profiles, as read from the log record that holds the
// registered version, so that an AccountProof is checked without reading
// and parsing that record again. An entry is keyed by the profile's UDF and
// remembers the record's sequence number: it answers only a lookup for
// that same record, so a newer version of the profile (a new record) is
// never served the keys of an older one. Records never change, so the keys
// of a record never go stale. It holds at most its size of profiles, the
// least recently used going first. It is safe for concurrent use; the maps
// it returns are shared and must not be modified.
type keyCache struct {
	mu  sync.Mutex
	lru *simplelru.LRU[string, cachedKeys]
}

// cachedKeys are the authority keys of the version of a profile held in
// the log record seq.
type cachedKeys struct {
	seq  uint64
	keys map[mesh.UDF]mesh.PublicKey
}

// newKeyCache returns an empty keyCache of at most size profiles (size > 0).
func newKeyCache(size int) *keyCache {
	l, err := simplelru.NewLRU[string, cachedKeys](size, nil)
	if err != nil {
		panic("portal: key cache: " + err.Error()) // only for size <= 0
	}
	return &keyCache{lru: l}
}

// get returns the keys of profile udf cached from record seq, if the cache
// holds them (and not another record's). A nil cache holds nothing.
func (c *keyCache) get(udf string, seq uint64) (map[mesh.UDF]mesh.PublicKey, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lru.Get(udf)
	if !ok || e.seq != seq {
		return nil, false
	}
	return e.keys, true
}

// put caches keys, read from record seq, as the keys of profile udf,
// unless the cache holds those of a later record of it already (a request
// that read an older version finished after one that read a newer). A nil
// cache caches nothing.
func (c *keyCache) put(udf string, seq uint64, keys map[mesh.UDF]mesh.PublicKey) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.lru.Peek(udf); ok && e.seq > seq {
		return
	}
	c.lru.Add(udf, cachedKeys{seq: seq, keys: keys})
}

// len returns how many profiles the cache holds.
func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// purge empties the cache (a nil one too).
func (c *keyCache) purge() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Purge()
}

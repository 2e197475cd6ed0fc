package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"unicode/utf8"
)

// The auditor's own computation of a log's verifiable map (docs/formats.md,
// "Map lookup proofs", and the vmap package doc it points to for which
// records set which keys), written from the documentation and not shared
// with the node's vmap package, so that a bug there cannot hide behind the
// same bug here. Tests check it against vmap's conformance vectors.
//
//	key        = SHA-256("intermesh/map/v1/<namespace>" || 0x00 || name)
//	value      = uint64 latest_index || latest_leaf_hash || uint64 count || history
//	C_k        = SHA-256("intermesh/map/v1/history" || 0x00 || C_(k-1) || uint64 index_k || leaf_hash_k)
//	value_hash = SHA-256("intermesh/map/v1/value" || 0x00 || value)
//	h(P)       = 32 zero bytes | SHA-256(0x02 || key || value_hash) | SHA-256(0x03 || h(P0) || h(P1))

// The map's namespaces, and the record kinds that set keys.
const (
	mapProfile = "profile"
	mapEscrow  = "escrow"
	mapAccount = "account"
)

// mapKey is the key of name in namespace ns.
func mapKey(ns, name string) [32]byte {
	h := sha256.New()
	h.Write([]byte("intermesh/map/v1/" + ns))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return [32]byte(h.Sum(nil))
}

// mapKeysOf returns the keys a record sets, in the order profile, escrow,
// account: a Profile record's identifier (profile); an Account record's
// identifier (profile) and account (account); an Escrow record's identifier
// (escrow); each only when not empty. Other kinds set nothing.
func mapKeysOf(l *Leaf) [][32]byte {
	var keys [][32]byte
	switch l.Kind {
	case "Profile", "Account":
		if l.Identifier != "" {
			keys = append(keys, mapKey(mapProfile, l.Identifier))
		}
		if l.Kind == "Account" && l.Account != "" {
			keys = append(keys, mapKey(mapAccount, l.Account))
		}
	case "Escrow":
		if l.Identifier != "" {
			keys = append(keys, mapKey(mapEscrow, l.Identifier))
		}
	}
	return keys
}

// mapRefusal says why the map of a log holding the leaf at index is
// refused ("" if it is not): the leaf must parse (ParseLeaf, which the
// caller ran), its text fields must be UTF-8, and its seq must be its index.
func mapRefusal(l *Leaf, index uint64) string {
	if l.Seq != index {
		return fmt.Sprintf("entry %d has seq %d", index, l.Seq)
	}
	for _, f := range []string{l.Kind, l.Identifier, l.Account, l.Origin} {
		if !utf8.ValidString(f) {
			return fmt.Sprintf("entry %d: a text field is not UTF-8: %q", index, f)
		}
	}
	return ""
}

// logMap collects, while a log is read entry by entry, what its map at
// any size needs: the distinct keys, and for every record that sets a key
// (in log order) its index and which key. The values themselves come
// later (rootsAt), from these events and the log copy's leaf hashes, so
// the map can be recomputed at the size of a checkpoint the audit learns
// of only after reading past it (a certificate in a later record, another
// node's Status). Memory: 32 bytes and a Go map slot per key, 16 bytes per
// key set, next to the 32 bytes per entry the copy keeps anyway.
type logMap struct {
	ids    map[[32]byte]uint32
	keys   [][32]byte
	events []mapEvent
	// refused is why the map is refused from entry refusedAt on ("" if
	// it is not): the map is defined only at sizes up to refusedAt.
	refused   string
	refusedAt uint64
}

// mapEvent is a record at index setting the key keys[key].
type mapEvent struct {
	index uint64
	key   uint32
}

// add takes the record at index (nil: its leaf did not parse, why says
// how).
func (m *logMap) add(index uint64, l *Leaf, why string) {
	if m.refused != "" {
		return
	}
	if l != nil && why == "" {
		why = mapRefusal(l, index)
	}
	if why != "" {
		m.refused, m.refusedAt = why, index
		return
	}
	for _, k := range mapKeysOf(l) {
		id, ok := m.ids[k]
		if !ok {
			if m.ids == nil {
				m.ids = map[[32]byte]uint32{}
			}
			id = uint32(len(m.keys))
			m.ids[k] = id
			m.keys = append(m.keys, k)
		}
		m.events = append(m.events, mapEvent{index: index, key: id})
	}
}

// mapValue is a key's value: what the map holds for it.
type mapValue struct {
	latestIndex uint64
	latestLeaf  [32]byte
	count       uint64
	history     [32]byte
}

// set adds the record at index, whose leaf hash is leafHash, to v.
func (v *mapValue) set(index uint64, leafHash []byte) {
	h := sha256.New()
	h.Write([]byte("intermesh/map/v1/history"))
	h.Write([]byte{0})
	h.Write(v.history[:])
	h.Write(binary.BigEndian.AppendUint64(nil, index))
	h.Write(leafHash)
	v.history = [32]byte(h.Sum(nil))
	v.latestIndex = index
	v.latestLeaf = [32]byte(leafHash)
	v.count++
}

// hash is the value's hash, over its 80-byte encoding.
func (v *mapValue) hash() [32]byte {
	b := make([]byte, 0, 23+80)
	b = append(b, "intermesh/map/v1/value\x00"...)
	b = binary.BigEndian.AppendUint64(b, v.latestIndex)
	b = append(b, v.latestLeaf[:]...)
	b = binary.BigEndian.AppendUint64(b, v.count)
	b = append(b, v.history[:]...)
	return sha256.Sum256(b)
}

// mapPair is a key and its value hash, a leaf of the prefix tree.
type mapPair struct {
	key, valueHash [32]byte
}

// mapRoot is h(P) of pairs sorted by key, all sharing their first depth
// bits.
func mapRoot(pairs []mapPair, depth int) [32]byte {
	switch len(pairs) {
	case 0:
		return [32]byte{}
	case 1:
		var b [65]byte
		b[0] = 2
		copy(b[1:], pairs[0].key[:])
		copy(b[33:], pairs[0].valueHash[:])
		return sha256.Sum256(b[:])
	}
	// Sorted by key, the pairs whose bit depth is 1 follow those whose
	// bit is 0. Distinct keys part by bit 255, so depth stays below 256.
	split, _ := slices.BinarySearchFunc(pairs, 1, func(p mapPair, _ int) int {
		return int(p.key[depth/8]>>(7-depth%8)&1) - 1
	})
	return mapInner(mapRoot(pairs[:split], depth+1), mapRoot(pairs[split:], depth+1))
}

// mapInner is an interior node over two subtrees.
func mapInner(l, r [32]byte) [32]byte {
	var b [65]byte
	b[0] = 3
	copy(b[1:], l[:])
	copy(b[33:], r[:])
	return sha256.Sum256(b[:])
}

// mapTopBits is how many key bits the top of the tree rootsAt keeps
// covers: it keeps the hash and key count of every subtree down to depth
// 16 (65,536 buckets, 5 MiB), and at each size hashes again only the
// buckets where a key changed and their paths to the root.
const mapTopBits = 16

// mapTopNode is a subtree of the top: its hash and how many keys it holds.
type mapTopNode struct {
	hash  [32]byte
	count int
}

// rootsAt returns the map's root at each of sizes that the log copy holds
// (leafHashes are its entries' leaf hashes) and at which the map is not
// refused. It walks the events once, in log order, and at each distinct
// size where some key changed since the last one it hashes again the
// buckets of the changed keys (keys sorted once, by their first 16 bits)
// and their paths up the top: O(changed keys × (bucket size + 16)) hashes
// per size, so checking every certified checkpoint of a long log costs
// about as much as the log's records, not the map's size per checkpoint.
func (m *logMap) rootsAt(leafHashes [][]byte, sizes []uint64) map[uint64][32]byte {
	limit := uint64(len(leafHashes))
	if m.refused != "" {
		limit = min(limit, m.refusedAt)
	}
	var want []uint64
	for _, s := range sizes {
		if s <= limit {
			want = append(want, s)
		}
	}
	slices.Sort(want)
	want = slices.Compact(want)
	order := make([]uint32, len(m.keys))
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortFunc(order, func(a, b uint32) int { return bytes.Compare(m.keys[a][:], m.keys[b][:]) })
	const buckets = 1 << mapTopBits
	bucketOf := func(id uint32) int { return int(binary.BigEndian.Uint16(m.keys[id][:2])) }
	// start[b] is where bucket b's keys begin in order.
	start := make([]int, buckets+1)
	for _, id := range order {
		start[bucketOf(id)+1]++
	}
	for b := range buckets {
		start[b+1] += start[b]
	}
	values := make([]mapValue, len(m.keys))
	hashes := make([][32]byte, len(m.keys))
	top := make([]mapTopNode, 2*buckets) // node i has children 2i, 2i+1; buckets from index buckets
	var dirty []int
	roots := map[uint64][32]byte{}
	next := 0
	var pairs []mapPair
	for _, size := range want {
		for ; next < len(m.events) && m.events[next].index < size; next++ {
			e := m.events[next]
			values[e.key].set(e.index, leafHashes[e.index])
			hashes[e.key] = values[e.key].hash()
			dirty = append(dirty, buckets+bucketOf(e.key))
		}
		slices.Sort(dirty)
		dirty = slices.Compact(dirty)
		for _, i := range dirty {
			pairs = pairs[:0]
			for _, id := range order[start[i-buckets]:start[i-buckets+1]] {
				if values[id].count > 0 {
					pairs = append(pairs, mapPair{key: m.keys[id], valueHash: hashes[id]})
				}
			}
			top[i] = mapTopNode{hash: mapRoot(pairs, mapTopBits), count: len(pairs)}
		}
		for len(dirty) > 0 && dirty[0] > 1 {
			parents := dirty[:0]
			for _, i := range dirty {
				if p := i / 2; len(parents) == 0 || parents[len(parents)-1] != p {
					parents = append(parents, p)
				}
			}
			for _, p := range parents {
				l, r := top[2*p], top[2*p+1]
				switch c := l.count + r.count; {
				case c == 0:
					top[p] = mapTopNode{}
				case c == 1 && l.count == 1:
					top[p] = l // a subtree of one key is its leaf
				case c == 1:
					top[p] = r
				default:
					top[p] = mapTopNode{hash: mapInner(l.hash, r.hash), count: c}
				}
			}
			dirty = parents
		}
		dirty = dirty[:0]
		roots[size] = top[1].hash
	}
	return roots
}

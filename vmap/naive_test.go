package vmap

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

func TestTreeAgainstNaiveRoot(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tr, values := NewTree(), map[Key]Value{}
	var keys []Key
	for i := range 300 {
		var k Key
		if len(keys) > 0 && rng.IntN(3) == 0 {
			k = keys[rng.IntN(len(keys))] // an update
		} else {
			k = randomKey(rng, keys)
			keys = append(keys, k)
		}
		v := values[k].Append(uint64(i), Hash{byte(i), byte(i >> 8)})
		tr.Set(k, v)
		values[k] = v
		root := tr.Root()
		if want := refRoot(values); root != want {
			t.Fatalf("step %d: root %x, reference %x", i, root, want)
		}
		probe := randomKey(rng, keys)
		for _, q := range []Key{k, probe} {
			got, present, err := Verify(root, q, tr.Prove(q))
			want, ok := values[q]
			if err != nil || present != ok || got != want {
				t.Fatalf("step %d key %x: Verify = %+v, %v, %v; want %+v, %v", i, q, got, present, err, want, ok)
			}
		}
	}
}

// randomKey returns a random key, often sharing a long prefix with one of keys
// so that deep subtrees occur.
func randomKey(rng *rand.Rand, keys []Key) Key {
	var k Key
	for i := 0; i < 32; i += 8 {
		binary.BigEndian.PutUint64(k[i:], rng.Uint64())
	}
	if len(keys) > 0 && rng.IntN(2) == 0 {
		base := keys[rng.IntN(len(keys))]
		n := rng.IntN(256) // bits shared with base
		for i := range n {
			mask := byte(0x80 >> (i % 8))
			k[i/8] = k[i/8]&^mask | base[i/8]&mask
		}
	}
	return k
}

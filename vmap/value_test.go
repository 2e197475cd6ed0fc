package vmap

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

func TestKeysAndValuesFromTreeVectors(t *testing.T) {
	var v treeVectors
	loadVectors(t, "tree.json", &v)
	n := 0
	for _, seq := range v.Sequences {
		history := map[Key]Value{}
		for _, st := range seq.Steps {
			key, err := KeyOf(st.Namespace, st.Name)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(key[:]); got != st.Key {
				t.Errorf("%s step %d: key %s, want %s", seq.Name, st.Step, got, st.Key)
			}
			val := st.Value.toValue(t)
			enc := val.Marshal()
			if got := hex.EncodeToString(enc); got != st.ValueHex {
				t.Errorf("%s step %d: value %s, want %s", seq.Name, st.Step, got, st.ValueHex)
			}
			back, err := ParseValue(enc)
			if err != nil || back != val {
				t.Errorf("%s step %d: ParseValue = %+v, %v; want %+v", seq.Name, st.Step, back, err, val)
			}
			if got := val.Hash(); got != hash32(t, st.ValueHash) {
				t.Errorf("%s step %d: value hash %x, want %s", seq.Name, st.Step, got, st.ValueHash)
			}
			// Each step extends the key's history by one record: the
			// value's latest one.
			next := history[key].Append(val.LatestIndex, val.LatestLeafHash)
			if next != val {
				t.Errorf("%s step %d: Append gives %+v, want %+v", seq.Name, st.Step, next, val)
			}
			history[key] = val
			n++
		}
	}
	t.Logf("%d steps", n)
}

func TestHistoryFromLogVectors(t *testing.T) {
	var v logVectors
	loadVectors(t, "log.json", &v)
	for _, k := range v.Keys {
		key, err := KeyOf(k.Namespace, k.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(key[:]); got != k.Key {
			t.Errorf("%s %q: key %s, want %s", k.Namespace, k.Name, got, k.Key)
		}
		var val Value
		for _, i := range k.Indices {
			val = val.Append(i, hash32(t, v.Records[i].LeafHash))
		}
		if val != k.vecValue.toValue(t) {
			t.Errorf("%s %q: value %+v, want %+v", k.Namespace, k.Name, val, k.vecValue)
		}
		if got := hex.EncodeToString(val.Marshal()); got != k.Value {
			t.Errorf("%s %q: encoding %s, want %s", k.Namespace, k.Name, got, k.Value)
		}
		if got := val.Hash(); got != hash32(t, k.ValueHash) {
			t.Errorf("%s %q: value hash %x, want %s", k.Namespace, k.Name, got, k.ValueHash)
		}
	}
}

func TestKeyOf(t *testing.T) {
	names := map[Key]Namespace{}
	for _, ns := range []Namespace{Profile, Escrow, Account} {
		k, err := KeyOf(ns, "same-name")
		if err != nil {
			t.Fatal(err)
		}
		if prev, ok := names[k]; ok {
			t.Errorf("%s and %s give the same key", prev, ns)
		}
		names[k] = ns
	}
	for _, ns := range []Namespace{"", "Profile", "profile ", "accounts"} {
		if _, err := KeyOf(ns, "x"); err == nil {
			t.Errorf("KeyOf(%q) accepted an unknown namespace", ns)
		}
	}
}

func TestParseValueRefusesOtherLengths(t *testing.T) {
	good := Value{LatestIndex: 7, Count: 1}.Marshal()
	for _, n := range []int{0, 1, 79, 81, 160} {
		b := make([]byte, n)
		copy(b, good)
		_, err := ParseValue(b)
		if !errors.Is(err, ErrMalformedValue) {
			t.Errorf("ParseValue(%d bytes) = %v, want ErrMalformedValue", n, err)
		}
	}
	if _, err := ParseValue(good); err != nil {
		t.Errorf("ParseValue(80 bytes) = %v", err)
	}
	if !bytes.Equal(Value{}.Marshal(), make([]byte, ValueSize)) {
		t.Error("the zero value does not encode as 80 zero bytes")
	}
}

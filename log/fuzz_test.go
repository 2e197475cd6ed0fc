package log

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestLeafEncodingVector pins the leaf encoding documented on
// Record.MarshalLeaf.
func TestLeafEncodingVector(t *testing.T) {
	rec := Record{Seq: 1, Time: time.Unix(0, 2).UTC(), Kind: "Account", Account: "a", Payload: []byte("{}"), Origin: "n"}
	want, _ := hex.DecodeString("01" + "0000000000000001" + "0000000000000002" +
		"0007" + hex.EncodeToString([]byte("Account")) + "0000" + "0001" + "61" + "0001" + "6e" + "00000002" + "7b7d")
	got := rec.MarshalLeaf()
	if !bytes.Equal(got, want) {
		t.Fatalf("MarshalLeaf = %x, want %x", got, want)
	}
	back, err := UnmarshalLeaf(got)
	if err != nil || !sameRecord(back, rec) {
		t.Fatalf("UnmarshalLeaf = %+v, %v; want %+v", back, err, rec)
	}
}

// TestPageKeyVector pins the page key documented in pagekey.go.
func TestPageKeyVector(t *testing.T) {
	if got := encodePageKey(1000); got != "AQAAAAAAAAPoqVhzyg" {
		t.Errorf("encodePageKey(1000) = %q", got)
	}
	if seq, err := decodePageKey("AQAAAAAAAAPoqVhzyg"); err != nil || seq != 1000 {
		t.Errorf("decodePageKey = %d, %v; want 1000", seq, err)
	}
	// The base64 decoder skips CR and LF: a key of the right length made
	// partly or wholly of them decodes short and must be refused, not
	// indexed past its end.
	for _, key := range []string{strings.Repeat("\n", 18), "AQAAAAAAAAPoqVhz\r\n", "\nAQAAAAAAAAPoqVhz"} {
		if seq, err := decodePageKey(key); !errors.Is(err, ErrInvalidPageKey) {
			t.Errorf("decodePageKey(%q) = %d, %v; want ErrInvalidPageKey", key, seq, err)
		}
	}
}

func FuzzUnmarshalLeaf(f *testing.F) {
	for _, r := range []Record{
		{Seq: 1, Time: time.Unix(0, 2).UTC(), Kind: "Account", Account: "a", Payload: []byte("{}"), Origin: "n"},
		{Seq: 1 << 40, Time: time.Date(2030, 1, 1, 0, 0, 0, 7, time.UTC), Kind: "Profile", Identifier: "MB2G-XXXX", Payload: []byte(`{"ProfileMesh":{}}`)},
		{Kind: "x"},
	} {
		f.Add(r.MarshalLeaf())
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := UnmarshalLeaf(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedLeaf) {
				t.Fatalf("UnmarshalLeaf error %v does not wrap ErrMalformedLeaf", err)
			}
			return
		}
		if again := rec.MarshalLeaf(); !bytes.Equal(again, b) {
			t.Fatalf("UnmarshalLeaf(%x) = %+v, which encodes as %x", b, rec, again)
		}
	})
}

func FuzzPageKey(f *testing.F) {
	f.Add(encodePageKey(0))
	f.Add(encodePageKey(1000))
	f.Add(encodePageKey(^uint64(0)))
	f.Add("")
	f.Add("AQAAAAAAAAPoqVhzyh")
	f.Add("AQAAAAAAAAPoqVhzyg==")
	f.Add(strings.Repeat("\n", 18))
	f.Add("AQAAAAAAAAPoqVhz\n\n")
	f.Fuzz(func(t *testing.T, key string) {
		seq, err := decodePageKey(key)
		if err != nil {
			if !errors.Is(err, ErrInvalidPageKey) {
				t.Fatalf("decodePageKey error %v does not wrap ErrInvalidPageKey", err)
			}
			return
		}
		if again := encodePageKey(seq); again != key {
			t.Fatalf("decodePageKey(%q) = %d, which encodes as %q", key, seq, again)
		}
	})
}

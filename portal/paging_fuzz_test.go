package portal

import (
	"encoding/base64"
	"testing"
)

// A page key decodes only as issued: any one-byte change of an issued key
// is refused, and arbitrary input never panics nor yields a cursor of
// another transaction.
func FuzzDecodePageKey(f *testing.F) {
	s := &Server{pageSecret: []byte("fuzz page key secret")}
	issued := s.encodeCursor(cursor{Tx: TxConnectPending, Name: "alice", Next: 7})
	f.Add(issued)
	f.Add("")
	f.Add("garbage")
	f.Add(issued[:len(issued)/2] + "\n" + issued[len(issued)/2:])
	f.Add(base64.RawURLEncoding.EncodeToString([]byte(`{"t":"ConnectPending","n":"bob","s":0}`)))
	f.Fuzz(func(t *testing.T, key string) {
		c, err := s.decodeCursor("f", TxConnectPending, key)
		if err != nil {
			return
		}
		if c.Tx != TxConnectPending || s.encodeCursor(c) != key {
			t.Fatalf("accepted %q as %+v, which this server did not issue", key, c)
		}
	})
}

func TestAnEditedPageKeyIsRefused(t *testing.T) {
	s := &Server{pageSecret: []byte("page key secret")}
	issued := s.encodeCursor(cursor{Tx: TxGet, Name: "MAAA", Next: 3})
	if c, err := s.decodeCursor("f", TxGet, issued); err != nil || c.Name != "MAAA" || c.Next != 3 {
		t.Fatalf("the issued key: %+v, %v", c, err)
	}
	if _, err := s.decodeCursor("f", TxConnectPending, issued); err == nil {
		t.Fatal("a Get page key continued ConnectPending")
	}
	other := &Server{pageSecret: []byte("another node's secret")}
	if _, err := other.decodeCursor("f", TxGet, issued); err == nil {
		t.Fatal("another secret accepted the key")
	}
	for _, spelled := range []string{issued[:5] + "\n" + issued[5:], issued + "\r\n", "\n" + issued} {
		if _, err := s.decodeCursor("f", TxGet, spelled); err == nil {
			t.Fatalf("the issued key spelled %q was accepted", spelled)
		}
	}
	raw, _ := base64.RawURLEncoding.DecodeString(issued)
	for i := range raw {
		edited := []byte(string(raw))
		edited[i] ^= 0x20
		if _, err := s.decodeCursor("f", TxGet, base64.RawURLEncoding.EncodeToString(edited)); err == nil {
			t.Fatalf("a key with byte %d changed was accepted", i)
		}
	}
}

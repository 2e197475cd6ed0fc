package mesh

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"
)

func TestEscrowRecoverFromAnyThresholdShares(t *testing.T) {
	secret := []byte("the offline signature key, say")
	entry, shares, err := Escrow(rand.Reader, secret, 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(shares) != 5 {
		t.Fatalf("%d shares", len(shares))
	}
	for _, s := range shares {
		if !strings.HasPrefix(s, "S") {
			t.Fatalf("share %s does not start with S", s)
		}
	}
	find := func(id UDF) (*OfflineEscrowEntry, error) {
		if UDFEqual(id.String(), entry.Identifier) {
			return entry, nil
		}
		return nil, errors.New("no such entry")
	}
	// Every 3-subset of the 5 shares recovers; so do all 5, in any order and
	// in lower case without dashes.
	for a := 0; a < 5; a++ {
		for b := a + 1; b < 5; b++ {
			for c := b + 1; c < 5; c++ {
				got, err := Recover([]string{shares[c], shares[a], shares[b]}, find)
				if err != nil || string(got) != string(secret) {
					t.Fatalf("shares %d,%d,%d: %q, %v", a, b, c, got, err)
				}
			}
		}
	}
	sloppy := make([]string, len(shares))
	for i, s := range shares {
		sloppy[i] = strings.ToLower(strings.ReplaceAll(s, "-", ""))
	}
	if got, err := Recover(sloppy, find); err != nil || string(got) != string(secret) {
		t.Fatalf("all shares, lower case: %v", err)
	}

	// The entry travels as an unsigned envelope and verifies as an entry.
	env, _ := Sign(mustPayload(t, entry))
	raw, _ := MarshalEntry(TypeOfflineEscrowEntry, env)
	e, err := VerifyEntry(raw, 0)
	if err != nil {
		t.Fatal(err)
	}
	if e.Identifier.String() != entry.Identifier {
		t.Fatalf("entry identifier %s, want %s", e.Identifier, entry.Identifier)
	}
	if err := MayReplace(e, e); !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("escrow replaced: %v", err)
	}
}

func mustPayload(t *testing.T, o Object) []byte {
	p, err := EncodePayload(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEscrowRecoverFailsClearly(t *testing.T) {
	entry, shares, err := Escrow(rand.Reader, []byte("data"), 3, 5)
	if err != nil {
		t.Fatal(err)
	}
	_, other, _ := Escrow(rand.Reader, []byte("other"), 3, 5)
	find := func(id UDF) (*OfflineEscrowEntry, error) {
		if UDFEqual(id.String(), entry.Identifier) {
			return entry, nil
		}
		return nil, errors.New("no such entry")
	}
	// A share with one character changed: a different share value.
	wrong := []byte(shares[2])
	if wrong[40] == 'A' {
		wrong[40] = 'B'
	} else {
		wrong[40] = 'A'
	}
	tests := []struct {
		name   string
		shares []string
		want   error
	}{
		{"no shares", nil, ErrThreshold},
		{"fewer shares than the threshold", shares[:2], ErrThreshold},
		{"the same share three times", []string{shares[0], shares[0], shares[0]}, ErrThreshold},
		{"a wrong share", []string{shares[0], shares[1], string(wrong)}, ErrBadShare},
		{"a share of another escrow", []string{shares[0], shares[1], other[2]}, ErrBadShare},
		{"not a share", []string{shares[0], shares[1], "MDDK-7N6A-727A-JZNO-STRX-XKS7-DJAF"}, ErrBadShare},
		{"garbage", []string{"hello"}, ErrBadShare},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Recover(tc.shares, find)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	if _, _, err := Escrow(rand.Reader, nil, 4, 3); !errors.Is(err, ErrMalformed) {
		t.Fatalf("threshold above share count: %v", err)
	}
	key, _ := RecoverEscrowKey(shares[:3])
	tampered := *entry
	tampered.EncryptedData = append([]byte(nil), entry.EncryptedData...)
	tampered.EncryptedData[20] ^= 1
	if _, err := tampered.Decrypt(key); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered ciphertext: %v", err)
	}
}

package mesh

import (
	"errors"
	"strings"
	"testing"
)

// The UDF vectors of docs/design.md, "UDF".
func TestUDFVectors(t *testing.T) {
	tests := []struct {
		name        string
		typ         UDFType
		contentType string
		data        string
		bits        int
		want        string
	}{
		{"SHA-2 at 100 bits", UDFTypeSHA2, "text/plain", "UDF Data Value", 100, "MDDK-7N6A-727A-JZNO-STRX"},
		{"SHA-2 at the default 140 bits", UDFTypeSHA2, "text/plain", "UDF Data Value", DefaultUDFBits, "MDDK-7N6A-727A-JZNO-STRX-XKS7-DJAF"},
		{"SHA-2 at 260 bits", UDFTypeSHA2, "text/plain", "UDF Data Value", 260, "MDDK-7N6A-727A-JZNO-STRX-XKS7-DJAF-XI6O-ZSLU-2VOA-TZQ6-JMHP-TSXP"},
		{"SHA-3 at the default 140 bits", UDFTypeSHA3, "text/plain", "UDF Data Value", DefaultUDFBits, "KCFI-NCQG-DRKG-47R7-OVPT-TCHZ-7UXY"},
		{"a phone number", UDFTypeSHA2, "phone", "+491722346123", DefaultUDFBits, "MCIT-HW7U-5AKU-JLLF-44ZK-QXF4-QKHJ"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := NewUDF(tc.typ, tc.contentType, []byte(tc.data), tc.bits)
			if err != nil {
				t.Fatal(err)
			}
			if u.String() != tc.want {
				t.Fatalf("got %s, want %s", u, tc.want)
			}
			if u.Type() != tc.typ {
				t.Errorf("type 0x%02x, want 0x%02x", byte(u.Type()), byte(tc.typ))
			}
			p, err := ParseUDF(tc.want)
			if err != nil || !p.Equal(u) {
				t.Fatalf("ParseUDF(%s) = %v, %v", tc.want, p, err)
			}
		})
	}
}

func TestUDFLengths(t *testing.T) {
	for bits := MinUDFBits; bits <= MaxUDFBits; bits++ {
		u, err := NewUDF(UDFTypeSHA2, "text/plain", []byte("x"), bits)
		if err != nil {
			t.Fatalf("%d bits: %v", bits, err)
		}
		if n := len(u.Compact()); n != (bits+4)/5 {
			t.Fatalf("%d bits: %d characters, want %d", bits, n, (bits+4)/5)
		}
		if !strings.HasPrefix(u.String(), "M") {
			t.Fatalf("%d bits: %s does not start with M", bits, u)
		}
	}
	for _, bits := range []int{0, 99, 441, 1000} {
		if _, err := NewUDF(UDFTypeSHA2, "text/plain", nil, bits); !errors.Is(err, ErrMalformed) {
			t.Errorf("%d bits: err %v, want ErrMalformed", bits, err)
		}
	}
}

func TestUDFComparisonIgnoresCaseAndDashes(t *testing.T) {
	const canonical = "MDDK-7N6A-727A-JZNO-STRX-XKS7-DJAF"
	for _, s := range []string{
		canonical,
		strings.ToLower(canonical),
		"MDDK7N6A727AJZNOSTRXXKS7DJAF",
		"mddk7n6a-727ajzno-strxxks7-djaf",
		"MdDk-7n6A-727a-JZNO-STRX-XKS7-DJAF",
	} {
		if !UDFEqual(s, canonical) {
			t.Errorf("%q should equal %s", s, canonical)
		}
		u, err := ParseUDF(s)
		if err != nil || u.String() != canonical {
			t.Errorf("ParseUDF(%q) = %v, %v; want %s", s, u, err, canonical)
		}
	}
	for _, s := range []string{"MDDK-7N6A-727A-JZNO-STRX-XKS7-DJAA", "MDDK-7N6A-727A-JZNO-STRX-XKS7", ""} {
		if UDFEqual(s, canonical) {
			t.Errorf("%q should not equal %s", s, canonical)
		}
	}
}

func TestParseUDFRejectsHostileInput(t *testing.T) {
	tests := map[string]string{
		"empty":                   "",
		"too short (95 bits)":     "MDDK-7N6A-727A-JZNO-STR",
		"too long (445 bits)":     strings.Repeat("A", 89),
		"far too long":            strings.Repeat("A", 10000),
		"digit 1 is not Base32":   "MDDK-7N6A-727A-JZNO-STR1",
		"digit 0 is not Base32":   "MDDK-7N6A-727A-JZNO-STR0",
		"padding":                 "MDDK-7N6A-727A-JZNO-STRX====",
		"space":                   "MDDK 7N6A-727A-JZNO-STRX",
		"leading dash":            "-MDDK-7N6A-727A-JZNO-STRX",
		"trailing dash":           "MDDK-7N6A-727A-JZNO-STRX-",
		"double dash":             "MDDK--7N6A-727A-JZNO-STRX",
		"non-ASCII":               "MDDK-7N6A-727A-JZNO-STRÄ",
		"NUL":                     "MDDK-7N6A-727A-JZNO-STR\x00",
		"only dashes":             "----",
		"lowercase non-alphabet ": "mddk-7n6a-727a-jzno-str!",
	}
	for name, s := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseUDF(s)
			if err == nil {
				t.Fatalf("ParseUDF(%q) succeeded", s)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err %v is neither ErrMalformed nor ErrTooLarge", err)
			}
		})
	}
}

func TestUDFBytesRoundTrip(t *testing.T) {
	u, _ := NewUDF(UDFTypeSHA2, "text/plain", []byte("UDF Data Value"), 260)
	v, err := UDFFromBinary(u.Bytes(), u.Bits())
	if err != nil || !v.Equal(u) {
		t.Fatalf("UDFFromBinary(Bytes()) = %v, %v; want %v", v, err, u)
	}
	var w UDF
	if err := w.UnmarshalText([]byte(strings.ToLower(u.String()))); err != nil || !w.Equal(u) {
		t.Fatalf("UnmarshalText = %v, %v", w, err)
	}
}

func FuzzParseUDF(f *testing.F) {
	for _, s := range []string{"MDDK-7N6A-727A-JZNO-STRX", "mddk7n6a727ajznostrxxks7djaf", "KCFI-NCQG-DRKG-47R7-OVPT-TCHZ-7UXY", "-", "S"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUDF(s)
		if err != nil {
			return
		}
		// Whatever parses has a canonical form that parses to itself.
		v, err := ParseUDF(u.String())
		if err != nil || !v.Equal(u) {
			t.Fatalf("canonical form %q of %q does not round-trip: %v", u, s, err)
		}
		if !UDFEqual(s, u.String()) {
			t.Fatalf("UDFEqual(%q, %q) is false", s, u)
		}
		_ = u.Bytes()
		_ = u.Type()
	})
}

package portal

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// decodeCases are bodies whose verdict DecodeRequest must keep: the usual
// forms, which take the one-pass path, and the unusual ones the general
// decoder has always accepted or refused.
var decodeCases = []struct {
	body, tx string // tx "" means refused
}{
	{`{"HelloRequest":{}}`, TxHello},
	{" \r\n\t{ \"HelloRequest\" : { } } \n", TxHello},
	{`{"Status":{"StatusRequest":{}}}`, TxStatus},
	{`{"Status" : { "StatusRequest" : {} } }`, TxStatus},
	{`{"Hello\u0052equest":{}}`, TxHello},                      // an escaped name
	{`{"HelloRequest":{"x":1},"HelloRequest":{}}`, ""},         // a repeated name is two members
	{`{"HelloRequest":5,"HelloRequest":{}}`, ""},               // the same
	{`{"HelloRequest":{}} x`, ""},                              // data after the object
	{`{"HelloRequest":{}} }`, ""},                              // the same
	{"{\"HelloRequest\":{}}\f", ""},                            // form feed is not JSON white space
	{`{"Status":{"StatusRequest":{},"StatusRequest":{}}}`, ""}, // a repeated name inside the wrapping
	{`{"HelloRequest":{}} 1`, ""},
	{`{"HelloRequest":{}} {}`, ""},
	{`{"HelloRequest":{}} "`, ""},
	{`{"HelloRequest":{},"StatusRequest":{}}`, ""},
	{`{"HelloRequest":null}`, ""},
	{`{"HelloRequest":[]}`, ""},
	{`{"helloRequest":{}}`, ""},
	{`{"Status":{"HelloRequest":{}}}`, ""},
	{`{"Status":{"StatusRequest":{}},"X":{}}`, ""},
	{`{"Status":{"StatusRequest":{}, "X":{}}}`, ""},
	{`{"Status":{"StatusRequest":null}}`, ""},
	{`{"TransferRequest":{"From":"x"}}`, ""},
	{`{"HelloRequest":{}`, ""},
	{`{"HelloRequest":}`, ""},
	{`{"HelloRequest":{}}}`, ""},
	{`null`, ""},
	{``, ""},
}

// TestDecodeRequestVerdicts: DecodeRequest accepts and refuses the bodies
// of decodeCases as the general decoder does, with the same request or
// the same error.
func TestDecodeRequestVerdicts(t *testing.T) {
	for _, tc := range decodeCases {
		buf := []byte(tc.body)
		tx, req, err := DecodeRequest(buf)
		clear(buf) // the request must not share the body's bytes
		if tx2 := map[bool]string{true: tx, false: ""}[err == nil]; tx2 != tc.tx {
			t.Errorf("%q: transaction %q (err %v), want %q", tc.body, tx2, err, tc.tx)
		}
		checkSameAsSlow(t, []byte(tc.body), tx, req, err)
	}
}

// checkSameAsSlow fails t unless decodeRequestSlow gives body the same
// transaction, request and error as DecodeRequest gave.
func checkSameAsSlow(t *testing.T, body []byte, tx string, req any, err error) {
	t.Helper()
	tx2, req2, err2 := decodeRequestSlow(body)
	if tx != tx2 || !reflect.DeepEqual(req, req2) || (err == nil) != (err2 == nil) ||
		err != nil && err.Error() != err2.Error() {
		t.Fatalf("%q: one pass gives %q %#v %v; the general decoder %q %#v %v", body, tx, req, err, tx2, req2, err2)
	}
}

// FuzzDecodeRequestOnePass: DecodeRequest (one pass for the usual forms)
// agrees with the general decoder on every body.
func FuzzDecodeRequestOnePass(f *testing.F) {
	for _, tc := range decodeCases {
		f.Add([]byte(tc.body))
	}
	f.Add([]byte(`{"PublishRequest":{"Entry":{"ProfileMesh":[{"dig":"SHA2"},"e30",{"signatures":[]}]},"AccountID":"a"}}`))
	f.Add([]byte(`{"Publish":{"PublishRequest":{"AccountID":"a","Proof":null}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		buf := bytes.Clone(body)
		tx, req, err := DecodeRequest(buf)
		clear(buf) // the request must not share the body's bytes
		checkSameAsSlow(t, body, tx, req, err)
	})
}

// TestDecodeRequestFastTakesUsualForms: the bodies clients send are
// decoded in one pass, not by the general decoder.
func TestDecodeRequestFastTakesUsualForms(t *testing.T) {
	for _, body := range []string{
		`{"HelloRequest":{}}`,
		" { \"Status\" : {\"StatusRequest\":{}} }\n",
		`{"PublishRequest":{"Entry":{"ProfileMesh":[{"dig":"SHA2"},"e30",{"signatures":[]}]},"AccountID":"a"}}`,
	} {
		if _, _, ok := decodeRequestFast([]byte(body)); !ok {
			t.Errorf("%q went to the general decoder", body)
		}
	}
}

// TestDecodeRequestNestingLimit: a request nested as deep as encoding/json
// allows is refused once the wrapping takes the body past the limit, as
// the general decoder refuses it, though the request alone would decode.
func TestDecodeRequestNestingLimit(t *testing.T) {
	for _, tc := range []struct {
		arrays  int
		wrapped bool
		ok      bool
	}{{9998, false, true}, {9999, false, false}, {9997, true, true}, {9998, true, false}} {
		body := `{"HelloRequest":{"x":` + strings.Repeat("[", tc.arrays) + strings.Repeat("]", tc.arrays) + `}}`
		if tc.wrapped {
			body = `{"Hello":` + body + `}`
		}
		tx, req, err := DecodeRequest([]byte(body))
		if (err == nil) != tc.ok {
			t.Errorf("%d arrays, wrapped %v: err %v, want ok %v", tc.arrays, tc.wrapped, err, tc.ok)
		}
		checkSameAsSlow(t, []byte(body), tx, req, err)
	}
}

// A request body is one object of one member and nothing after it: a name
// given twice, or data after the object, is refused saying so (which of
// two members counts would otherwise be the decoder's choice).
func TestDecodeRequestRefusesRepeatedNamesAndTrailingData(t *testing.T) {
	for body, want := range map[string]string{
		`{"HelloRequest":{"x":1},"HelloRequest":{}}`:         "exactly one member naming the message, got 2 members",
		`{"Status":{"StatusRequest":{},"StatusRequest":{}}}`: "exactly one member naming the message, got 2 members",
		`{"HelloRequest":{}} x`:                              "data after the object",
		"{\"HelloRequest\":{}}\f":                            "data after the object",
	} {
		if _, _, err := DecodeRequest([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error saying %q", body, err, want)
		}
	}
}

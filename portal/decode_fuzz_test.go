package portal

import (
	"errors"
	"testing"
)

// FuzzDecodeRequest: the request decoder never panics, and every error is an
// *Error with a 4xx status and a description.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"ValidateRequest":{"Account":"alice@example.com","Language":["en-uk"]}}`,
		`{"ValidateAccount":{"ValidateRequest":{"Account":"alice"}}}`,
		`{"PublishRequest":{"Entry":{"ProfileMesh":[{"dig":"SHA2"},"e30",{"signatures":[]}]}}}`,
		`{"GetRequest":{"Identifier":"MCOZ-GIZ3-34VQ-GQ6J-FCS7-BJIU-JCOY","SearchConstraints":{"MaxEntries":3,"NotBefore":"2020-01-01T00:00:00Z"}}}`,
		`{"TransferRequest":{"From":5}}`, `{"ConnectStartRequest":{"SignedRequest":[1],"AccountID":"a"}}`,
		`{}`, `[]`, `{"X":{}}`, `{"HelloRequest":{}} x`, `{"Status":{"StatusRequest":{}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		tx, req, err := DecodeRequest(body)
		if err == nil {
			if req == nil || RequestName(tx) == "" {
				t.Fatalf("success without a request: %q %v", tx, req)
			}
			return
		}
		var pe *Error
		if !errors.As(err, &pe) || pe.Status < 400 || pe.Status > 499 || pe.Description == "" {
			t.Fatalf("error %v is not a described 4xx", err)
		}
	})
}

package portal_test

import (
	"context"
	"slices"
	"testing"

	"github.com/intermesh/intermesh/portal"
)

func TestHelloGivesAServiceURIOnlyForAHostName(t *testing.T) {
	for _, tc := range []struct {
		service string
		uri     []string
	}{
		{"portal.example.com", []string{"https://portal.example.com" + portal.WellKnownPath}},
		{"testnet/node0", nil}, // a log origin names the portal, not a host
	} {
		t.Run(tc.service, func(t *testing.T) {
			p := newTestPortal(t, portal.Config{Service: tc.service})
			hello, err := p.client.Hello(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(hello.Version.URI, tc.uri) {
				t.Errorf("URI %q, want %q", hello.Version.URI, tc.uri)
			}
			if tc.service != "" && hello.Service != tc.service {
				t.Errorf("Service %q, want %q", hello.Service, tc.service)
			}
		})
	}
}

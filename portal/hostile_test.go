package portal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/mesh"
)

func wire(t testing.TB, name string, v any) []byte {
	b, err := json.Marshal(map[string]any{name: v})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every transaction refuses hostile input with the right status and a
// StatusDescription that says what was wrong, and nothing is written.
func TestHostileInputIsRefusedAndWritesNothing(t *testing.T) {
	ctx := context.Background()
	p := newTestPortal(t, portal.Config{MaxBodyBytes: 256 << 10, MaxEntryBytes: 16 << 10, TransferToken: "secret-token"})
	alice := newUser(t, "alice@example.com")
	_, err := p.client.CreateAccount(ctx, consented(t, "alice", entryOf(t, alice.profileAccount, alice.acctOffline), alice.acctOffline))
	mustStatus(t, err, portal.SuccessOK)
	devEnv, devKey := newDevice(t, "ring")
	request := &mesh.ConnectionRequest{ParentUDF: alice.accountUDF(), Device: devEnv}
	_, err = p.client.ConnectStart(ctx, &portal.ConnectStartRequest{SignedRequest: entryOf(t, request, devKey), AccountID: "alice"})
	mustStatus(t, err, portal.SuccessOK)

	stranger := newKey(t, mesh.CurveEd448)
	// An update listing a new online key and signed by it: it verifies on
	// its own, but the registered version does not list that key.
	hijack := *alice.profileAccount
	hijack.KeysOnlineSignature = []mesh.KeyData{*mesh.NewKeyData(stranger.Public())}
	otherParent := &mesh.ConnectionRequest{ParentUDF: stranger.UDF().String(), Device: devEnv}
	result := &mesh.ConnectionResult{ConnectionRequest: *request, Result: mesh.ResultAccepted}
	tampered := []byte(string(entryOf(t, alice.profileMesh, alice.meshOffline)))
	tampered[len(tampered)/2] ^= 1
	big := strings.Repeat("x", 20<<10)

	cases := []struct {
		name   string
		body   []byte
		header http.Header
		status int
		says   string
	}{
		{"malformed JSON", []byte(`{"PublishRequest":`), nil, 400, "malformed JSON"},
		{"empty body", nil, nil, 400, "empty body"},
		{"not an object", []byte(`[1,2]`), nil, 400, "malformed JSON"},
		{"two messages", []byte(`{"HelloRequest":{},"StatusRequest":{}}`), nil, 400, "exactly one member"},
		{"trailing data", []byte(`{"HelloRequest":{}} {}`), nil, 400, "data after"},
		{"unknown transaction", []byte(`{"FrobnicateRequest":{}}`), nil, 400, "unknown transaction"},
		{"wrapped in the wrong transaction", []byte(`{"ValidateAccount":{"CreateRequest":{}}}`), nil, 400, "want \"ValidateRequest\""},
		{"request that is not an object", []byte(`{"HelloRequest":"hi"}`), nil, 400, "must be a JSON object"},
		{"oversized body", wire(t, "ValidateRequest", map[string]string{"Account": strings.Repeat("a", 300<<10)}), nil, 413, "over the limit"},
		{"Hello with a wrong type", []byte(`{"HelloRequest":{"Portal":7}}`), nil, 400, "field Portal"},
		{"ValidateAccount with a wrong type", []byte(`{"ValidateRequest":{"Account":5}}`), nil, 400, "field Account"},
		{"CreateAccount without a profile", wire(t, "CreateRequest", map[string]any{"Account": "bob"}), nil, 400, "CreateRequest.Profile is missing"},
		{"CreateAccount with an invalid name", wire(t, "CreateRequest", map[string]any{"Account": "bob{}", "Profile": entryOf(t, alice.profileAccount, alice.acctOffline)}), nil, 400, "not allowed"},
		{"CreateAccount of a duplicate account", wire(t, "CreateRequest", map[string]any{"Account": "ALICE", "Profile": entryOf(t, newUser(t, "x").profileAccount, newKey(t, mesh.CurveEd448))}), nil, 401, "CreateRequest.Profile"},
		{"CreateAccount of a taken name", wire(t, "CreateRequest", consented(t, "ALICE", entryOf(t, alice.profileAccount, alice.acctOffline), alice.acctOffline)), nil, 409, "already exists"},
		{"CreateAccount with a device profile", wire(t, "CreateRequest", map[string]any{"Account": "carol", "Profile": json.RawMessage(mustMarshalEntry(t, "ProfileDevice", devEnv))}), nil, 400, "want one of"},
		{"CreateAccount with a wrong type", []byte(`{"CreateRequest":{"Account":"bob","Profile":[1]}}`), nil, 400, "Mesh entry"},
		{"DeleteAccount of an unknown account", wire(t, "DeleteRequest", map[string]any{"Account": "bob"}), nil, 404, "does not exist"},
		{"DeleteAccount without proof", wire(t, "DeleteRequest", map[string]any{"Account": "alice"}), nil, 401, "Proof is missing"},
		{"DeleteAccount with a stranger's proof", wire(t, "DeleteRequest", map[string]any{"Account": "alice", "Proof": entryOf(t, &portal.DeleteProof{Account: "alice", Signed: time.Now()}, stranger)}), nil, 401, "DeleteRequest.Proof"},
		{"DeleteAccount with a proof for another account", wire(t, "DeleteRequest", map[string]any{"Account": "alice", "Proof": entryOf(t, &portal.DeleteProof{Account: "bob", Signed: time.Now()}, alice.acctOnline)}), nil, 401, "not \"alice\""},
		{"DeleteAccount with a wrong type", []byte(`{"DeleteRequest":{"Account":["alice"]}}`), nil, 400, "field Account"},
		{"Get without a key", wire(t, "GetRequest", map[string]any{}), nil, 400, "needs an Identifier or an Account"},
		{"Get of an unknown account", wire(t, "GetRequest", map[string]any{"Account": "bob"}), nil, 404, "does not exist"},
		{"Get of an unknown identifier", wire(t, "GetRequest", map[string]any{"Identifier": stranger.UDF().String()}), nil, 404, "no entry"},
		{"Get of a non-UDF", wire(t, "GetRequest", map[string]any{"Identifier": "not a udf!"}), nil, 400, "not a UDF"},
		{"Get with a forged page key", []byte(`{"GetRequest":{"SearchConstraints":{"PageKey":"garbage"}}}`), nil, 400, "PageKey"},
		{"Get with negative MaxEntries", []byte(`{"GetRequest":{"Account":"alice","SearchConstraints":{"MaxEntries":-1}}}`), nil, 400, "negative"},
		{"Get with a wrong type", []byte(`{"GetRequest":{"Multiple":"yes"}}`), nil, 400, "field Multiple"},
		{"Publish without an entry", wire(t, "PublishRequest", map[string]any{}), nil, 400, "Entry is missing"},
		{"Publish of an oversized entry", wire(t, "PublishRequest", map[string]any{"Entry": map[string]any{"ProfileMesh": []any{map[string]string{"dig": big}}}}), nil, 413, "over the limit"},
		{"Publish with a bad signature", wire(t, "PublishRequest", map[string]any{"Entry": json.RawMessage(tampered)}), nil, 0, "PublishRequest.Entry"},
		{"Publish of an unauthorized update", wire(t, "PublishRequest", map[string]any{"Entry": entryOf(t, &hijack, stranger), "AccountID": "alice"}), nil, 401, "neither its offline key nor one of its online keys"},
		{"Publish signed by a stranger", wire(t, "PublishRequest", map[string]any{"Entry": entryOf(t, alice.profileMesh, stranger)}), nil, 401, "PublishRequest.Entry"},
		{"Publish of a connection request", wire(t, "PublishRequest", map[string]any{"Entry": entryOf(t, request, devKey)}), nil, 400, "want one of"},
		{"Publish with a wrong type", []byte(`{"PublishRequest":{"Entry":"ProfileMesh"}}`), nil, 400, "Mesh entry"},
		{"Status with a wrong type", []byte(`{"StatusRequest":{"Portal":false}}`), nil, 400, "field Portal"},
		{"ConnectStart to an unknown account", wire(t, "ConnectStartRequest", map[string]any{"AccountID": "bob", "SignedRequest": entryOf(t, request, devKey)}), nil, 404, "does not exist"},
		{"ConnectStart signed by another key", wire(t, "ConnectStartRequest", map[string]any{"AccountID": "alice", "SignedRequest": entryOf(t, request, stranger)}), nil, 401, "SignedRequest"},
		{"ConnectStart to another profile", wire(t, "ConnectStartRequest", map[string]any{"AccountID": "alice", "SignedRequest": entryOf(t, otherParent, devKey)}), nil, 400, "is bound to profile"},
		{"ConnectStart already pending", wire(t, "ConnectStartRequest", map[string]any{"AccountID": "alice", "SignedRequest": entryOf(t, request, devKey)}), nil, 409, "already has a pending"},
		{"ConnectStart with a wrong type", []byte(`{"ConnectStartRequest":{"AccountID":1}}`), nil, 400, "field AccountID"},
		{"ConnectStatus of an unknown device", wire(t, "ConnectStatusRequest", map[string]any{"AccountID": "alice", "DeviceID": stranger.UDF().String()}), nil, 404, "no connection request"},
		{"ConnectStatus without a device", wire(t, "ConnectStatusRequest", map[string]any{"AccountID": "alice"}), nil, 400, "DeviceID is missing"},
		{"ConnectPending of an unknown account", wire(t, "ConnectPendingRequest", map[string]any{"AccountID": "bob"}), nil, 404, "does not exist"},
		{"ConnectPending with a wrong type", []byte(`{"ConnectPendingRequest":{"SearchConstraints":{"MaxEntries":"ten"}}}`), nil, 400, "MaxEntries"},
		{"ConnectComplete signed by the device", wire(t, "ConnectCompleteRequest", map[string]any{"AccountID": "alice", "Result": entryOf(t, result, devKey)}), nil, 401, "Result"},
		{"ConnectComplete signed by a stranger", wire(t, "ConnectCompleteRequest", map[string]any{"AccountID": "alice", "Result": entryOf(t, result, stranger)}), nil, 401, "Result"},
		{"ConnectComplete for an unknown account", wire(t, "ConnectCompleteRequest", map[string]any{"AccountID": "bob", "Result": entryOf(t, result, alice.acctOnline)}), nil, 404, "does not exist"},
		{"ConnectComplete with a wrong type", []byte(`{"ConnectCompleteRequest":{"Result":true}}`), nil, 400, "Mesh entry"},
		{"Transfer without a token", wire(t, "TransferRequest", map[string]any{}), nil, 401, "Authorization: Bearer"},
		{"Transfer with a wrong token", wire(t, "TransferRequest", map[string]any{}), http.Header{"Authorization": {"Bearer guess"}}, 401, "needs authorization"},
		{"Transfer with a forged page key", []byte(`{"TransferRequest":{"SearchConstraints":{"PageKey":"AAAA"}}}`), http.Header{"Authorization": {"Bearer secret-token"}}, 400, "PageKey"},
		{"Transfer with a wrong type", []byte(`{"TransferRequest":{"From":-3}}`), nil, 400, "field From"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := p.log.Size()
			code, resp := p.post(t, tc.body, tc.header)
			if tc.status != 0 && resp.Status != tc.status {
				t.Errorf("Status %d (%s), want %d", resp.Status, resp.StatusDescription, tc.status)
			}
			if resp.Status < 400 || resp.Status > 499 {
				t.Errorf("Status %d (%s), want a 4xx", resp.Status, resp.StatusDescription)
			}
			if code != resp.Status {
				t.Errorf("HTTP status %d does not mirror Status %d", code, resp.Status)
			}
			if !strings.Contains(resp.StatusDescription, tc.says) {
				t.Errorf("StatusDescription %q does not say %q", resp.StatusDescription, tc.says)
			}
			if p.log.Size() != before {
				t.Errorf("the log grew from %d to %d records", before, p.log.Size())
			}
		})
	}
}

func mustMarshalEntry(t testing.TB, typ string, env *mesh.Envelope) []byte {
	b, err := mesh.MarshalEntry(typ, env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Both request wrappings are accepted, and the HTTP status is 200 for a 2xx.
func TestBothRequestWrappingsAreAccepted(t *testing.T) {
	p := newTestPortal(t, portal.Config{})
	for _, body := range []string{
		`{"ValidateRequest":{"Account":"alice@example.com"}}`,
		`{"ValidateAccount":{"ValidateRequest":{"Account":"alice@example.com"}}}`,
	} {
		code, resp := p.post(t, []byte(body), nil)
		if code != http.StatusOK || resp.Status != portal.SuccessOK || resp.StatusDescription != "Operation completed successfully" {
			t.Errorf("%s: HTTP %d, %+v", body, code, resp)
		}
	}
}

// A client over its rate gets 429 and nothing is written.
func TestRateLimitRefusesTheBurstOverflow(t *testing.T) {
	p := newTestPortal(t, portal.Config{RateLimit: 0.001, RateBurst: 3})
	body := []byte(`{"HelloRequest":{}}`)
	for i := range 3 {
		if _, resp := p.post(t, body, nil); resp.Status != portal.SuccessOK {
			t.Fatalf("request %d within the burst: %+v", i, resp)
		}
	}
	code, resp := p.post(t, body, nil)
	if code != 429 || resp.Status != portal.TooManyRequests || !strings.Contains(resp.StatusDescription, "too many requests") {
		t.Fatalf("request over the burst: HTTP %d %+v", code, resp)
	}
	if p.log.Size() != 0 {
		t.Fatal("the log grew")
	}
}

// The operator endpoints answer.
func TestOperatorEndpoints(t *testing.T) {
	p := newTestPortal(t, portal.Config{})
	get := func(path string) (int, string) {
		resp, err := http.Get(p.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, _ := get("/checkpoint"); code != 404 {
		t.Errorf("/checkpoint before any epoch: HTTP %d, want 404", code)
	}
	p.post(t, []byte(`{"HelloRequest":{}}`), nil)
	note := p.closeEpoch(t, 1)
	if code, body := get("/checkpoint"); code != 200 || body != string(note) {
		t.Errorf("/checkpoint: HTTP %d %q", code, body)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: HTTP %d %q", code, body)
	}
	code, body := get("/metrics")
	for _, want := range []string{`intermesh_portal_requests_total{status="201",transaction="Hello"} 1`, "intermesh_log_size 0", "intermesh_portal_request_seconds_bucket", "intermesh_epoch"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, body := get("/"); code != 200 || !strings.Contains(body, "portal.test") || !strings.Contains(body, testOrigin) {
		t.Errorf("status page: HTTP %d", code)
	}
}

package portal

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/log"
)

// newInternalServer is a portal on a real log, for the tests that look at
// its limits from inside.
func newInternalServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	state := NewState()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := log.Open(context.Background(), log.Options{Dir: t.TempDir(), Logger: quiet, Indexers: []log.Indexer{state}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s, err := New(cfg, Deps{Log: l, State: state, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serveReal serves s with its own HTTP server and connection cap on a
// loopback port, and returns the base URL.
func serveReal(t *testing.T, s *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := s.HTTPServer(nil)
	go hs.Serve(s.LimitListener(l))
	t.Cleanup(func() { hs.Close() })
	return "http://" + l.Addr().String()
}

func TestTheRateLimiterRemembersABoundedNumberOfClients(t *testing.T) {
	rl, err := newRateLimiter(1, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	// An attacker rotating through 10,000 IPv6 /64s, and as many IPv4
	// addresses, leaves at most 100 buckets behind.
	for i := range 10000 {
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i), 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
		rl.allow(clientPrefix(a), now)
		rl.allow(clientPrefix(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1})), now)
	}
	if n := rl.remembered(); n != 100 {
		t.Fatalf("the limiter remembers %d clients, want its bound of 100", n)
	}
}

func TestAddressesOfOneIPv6SlashSixtyFourShareABucket(t *testing.T) {
	rl, err := newRateLimiter(0.001, 3, 1000)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	allowed := 0
	for i := range 50 {
		// Rotating through the low 64 bits of one /64.
		a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 7, byte(i), 0, 0, 0, 0, 0, 0, byte(i)})
		if rl.allow(clientPrefix(a), now) {
			allowed++
		}
	}
	if allowed != 3 {
		t.Fatalf("one /64 made %d requests at a burst of 3", allowed)
	}
	// Another /64 has its own bucket; IPv4 addresses each have theirs,
	// also when written as IPv4-mapped IPv6.
	other := netip.MustParseAddr("2001:db8:0:8::1")
	if !rl.allow(clientPrefix(other), now) {
		t.Fatal("another /64 was limited by the first")
	}
	v4, mapped := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("::ffff:192.0.2.1")
	if clientPrefix(v4) != clientPrefix(mapped) || clientPrefix(v4) == clientPrefix(netip.MustParseAddr("192.0.2.2")) {
		t.Fatalf("IPv4 keys: %v %v", clientPrefix(v4), clientPrefix(mapped))
	}
}

func TestTheClientAddressComesFromTheProxyHeaderOnlyFromATrustedProxy(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("2001:db8:ffff::1/128")}
	tests := []struct {
		name, header, remote string
		values               []string
		want                 string
	}{
		{"no proxy configured means the peer", "", "198.51.100.7:5000", []string{"203.0.113.9"}, "198.51.100.7/32"},
		{"an untrusted peer's header is ignored", "X-Forwarded-For", "198.51.100.7:5000", []string{"203.0.113.9"}, "198.51.100.7/32"},
		{"a trusted proxy names the client", "X-Forwarded-For", "10.0.0.5:5000", []string{"203.0.113.9"}, "203.0.113.9/32"},
		{"the rightmost untrusted hop is the client, not what the client wrote", "X-Forwarded-For", "10.0.0.5:5000", []string{"1.2.3.4, 203.0.113.9, 10.0.0.7"}, "203.0.113.9/32"},
		{"several header lines form one list", "X-Forwarded-For", "10.0.0.5:5000", []string{"1.2.3.4", "203.0.113.9"}, "203.0.113.9/32"},
		{"an IPv6 client is its /64", "X-Forwarded-For", "[2001:db8:ffff::1]:443", []string{"2001:db8:1:2:3:4:5:6"}, "2001:db8:1:2::/64"},
		{"garbage in the header means the peer", "X-Forwarded-For", "10.0.0.5:5000", []string{"203.0.113.9, not-an-ip"}, "10.0.0.5/32"},
		{"no header means the peer", "X-Forwarded-For", "10.0.0.5:5000", nil, "10.0.0.5/32"},
		{"a one-address header", "X-Real-IP", "10.0.0.5:5000", []string{" 203.0.113.9 "}, "203.0.113.9/32"},
		{"an unparsable peer is the zero key", "X-Forwarded-For", "pipe", nil, "invalid Prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{cfg: Config{ProxyHeader: tt.header}}
			if tt.header != "" {
				s.cfg.TrustedProxies = proxies
			} else {
				s.cfg.ProxyHeader = "X-Forwarded-For"
			}
			r, _ := http.NewRequest(http.MethodPost, "http://portal.test/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.values {
				r.Header.Add(s.cfg.ProxyHeader, v)
			}
			if got := s.client(r).String(); got != tt.want {
				t.Fatalf("client %s, want %s", got, tt.want)
			}
		})
	}
}

// Past MaxInFlight a protocol request, and an operator endpoint, are
// answered 503 ServerOverload with a JSON body, and served again once a
// slot is free.
func TestRequestsPastTheInFlightCapGetServerOverload(t *testing.T) {
	const capacity = 4
	s := newInternalServer(t, Config{MaxInFlight: capacity})
	url := serveReal(t, s)
	for range capacity { // requests being handled hold every slot
		if !s.inFlight.enter() {
			t.Fatal("the gate is full too early")
		}
	}
	post := func() (*http.Response, map[string]MeshResponse) {
		t.Helper()
		resp, err := http.Post(url+WellKnownPath, "application/json", strings.NewReader(`{"HelloRequest":{}}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]MeshResponse
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("the answer is not JSON: %v", err)
		}
		return resp, body
	}
	resp, body := post()
	if resp.StatusCode != http.StatusServiceUnavailable || body["HelloResponse"].Status != ServerOverload ||
		!strings.Contains(body["HelloResponse"].StatusDescription, "handling 4 requests") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("past the cap: HTTP %d %+v", resp.StatusCode, body)
	}
	cp, err := http.Get(url + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	cp.Body.Close()
	if cp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET /checkpoint past the cap: HTTP %d", cp.StatusCode)
	}
	s.inFlight.leave()
	if resp, body := post(); resp.StatusCode != http.StatusOK || body["HelloResponse"].Status != SuccessOK {
		t.Fatalf("with a free slot: HTTP %d %+v", resp.StatusCode, body)
	}
}

// Through the capped listener, a request refused before its body was read
// (here: over MaxBodyBytes) still gets its JSON answer, again and again.
func TestARefusedLargeBodyIsAnsweredThroughTheCappedListener(t *testing.T) {
	s := newInternalServer(t, Config{MaxBodyBytes: 4096, MaxConnections: 64})
	url := serveReal(t, s)
	body := `{"HelloRequest":{"Pad":"` + strings.Repeat("x", 1<<20) + `"}}`
	for range 5 {
		resp, err := http.Post(url+WellKnownPath, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("no answer to an oversized body: %v", err)
		}
		var answer map[string]MeshResponse
		err = json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge || answer["MeshResponse"].Status != TooLarge {
			t.Fatalf("oversized body: HTTP %d %+v %v", resp.StatusCode, answer, err)
		}
	}
}

// FuzzClientAddress: whatever a client writes into the proxy header, the
// rate-limiting key is the peer's own prefix, or, only when the peer is a
// trusted proxy, the prefix of an address written in the header that is
// not itself a trusted proxy (or the leftmost one if all are).
func FuzzClientAddress(f *testing.F) {
	f.Add("10.0.0.5:5000", "203.0.113.9")
	f.Add("10.0.0.5:5000", "1.2.3.4, 203.0.113.9, 10.0.0.7")
	f.Add("198.51.100.7:5000", "203.0.113.9")
	f.Add("[2001:db8::1]:443", "2001:db8:1:2:3:4:5:6,::ffff:10.0.0.9")
	f.Add("10.0.0.5:5000", ",,, ,")
	f.Add("pipe", "10.0.0.1")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("2001:db8::/64")}
	f.Fuzz(func(t *testing.T, remote, header string) {
		s := &Server{cfg: Config{TrustedProxies: trusted, ProxyHeader: "X-Forwarded-For"}}
		r, _ := http.NewRequest(http.MethodGet, "http://portal.test/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", header)
		got := s.client(r)
		ap, err := netip.ParseAddrPort(remote)
		if err != nil {
			if got.IsValid() {
				t.Fatalf("an unparsable peer %q gave %v", remote, got)
			}
			return
		}
		peer := ap.Addr().Unmap()
		if got == clientPrefix(peer) {
			return
		}
		if !s.trustedProxy(peer) {
			t.Fatalf("untrusted peer %v: the header %q chose %v", peer, header, got)
		}
		for _, hop := range strings.Split(header, ",") {
			if a, err := netip.ParseAddr(strings.TrimSpace(hop)); err == nil && clientPrefix(a) == got {
				return
			}
		}
		t.Fatalf("peer %v, header %q: %v is neither the peer nor in the header", peer, header, got)
	})
}

package portal

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// rateLimiter keeps one token bucket per client, in an LRU of at most
// maxClients entries: memory stays bounded (about 200 bytes a client) however
// many addresses a client rotates through. A client is an IPv4 address or
// an IPv6 /64, the block one subscriber usually holds, so rotating through
// the addresses of one /64 gains nothing. A client forgotten because the
// LRU is full starts again with a full burst; only the least recently seen
// clients are forgotten, so an active client keeps its bucket.
type rateLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	clients *simplelru.LRU[netip.Prefix, *rate.Limiter]
}

// newRateLimiter returns a limiter of perSecond requests per client with the
// given burst, remembering at most maxClients clients; perSecond 0 allows
// everything.
func newRateLimiter(perSecond float64, burst, maxClients int) (*rateLimiter, error) {
	lru, err := simplelru.NewLRU[netip.Prefix, *rate.Limiter](maxClients, nil)
	if err != nil {
		return nil, fmt.Errorf("portal: rate limiter of %d clients: %w", maxClients, err)
	}
	return &rateLimiter{limit: rate.Limit(perSecond), burst: burst, clients: lru}, nil
}

// allow reports whether client may make a request at now.
func (rl *rateLimiter) allow(client netip.Prefix, now time.Time) bool {
	if rl.limit == 0 {
		return true
	}
	rl.mu.Lock()
	defer rl.mu.Unlock()
	lim, ok := rl.clients.Get(client)
	if !ok {
		lim = rate.NewLimiter(rl.limit, rl.burst)
		rl.clients.Add(client, lim)
	}
	return lim.AllowN(now, 1)
}

// remembered is the number of clients the limiter holds.
func (rl *rateLimiter) remembered() int {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return rl.clients.Len()
}

// clientPrefix is the rate-limiting key of an address: the address itself
// for IPv4 (and IPv4-mapped IPv6), its /64 for IPv6.
func clientPrefix(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64) // a is a valid IPv6 address: no error
	return p
}

// client is the rate-limiting key of a request: the prefix of the peer's
// address, or, when the peer is a trusted proxy, of the client its
// ProxyHeader names. An unparsable peer address (not a TCP connection) is
// the zero prefix, one client for all of them.
func (s *Server) client(r *http.Request) netip.Prefix {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Prefix{}
	}
	peer := ap.Addr().Unmap()
	if s.trustedProxy(peer) {
		if a, ok := s.forwardedClient(r.Header.Values(s.cfg.ProxyHeader)); ok {
			return clientPrefix(a)
		}
	}
	return clientPrefix(peer)
}

func (s *Server) trustedProxy(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedClient reads the client's address from the values of the proxy
// header. X-Forwarded-For is a list that every proxy appends to: walking
// from the right, the first address that is not a trusted proxy is the
// client (anything left of it was written by the client and proves
// nothing). Other headers hold one address. A value that does not parse
// makes the header useless: ok is false and the peer is the client.
func (s *Server) forwardedClient(values []string) (netip.Addr, bool) {
	if len(values) == 0 {
		return netip.Addr{}, false
	}
	if !strings.EqualFold(s.cfg.ProxyHeader, "X-Forwarded-For") {
		a, err := netip.ParseAddr(strings.TrimSpace(values[len(values)-1]))
		return a.Unmap(), err == nil
	}
	hops := strings.Split(strings.Join(values, ","), ",")
	var last netip.Addr
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}, false
		}
		last = a.Unmap()
		if !s.trustedProxy(last) {
			return last, true
		}
	}
	return last, true // every hop is a trusted proxy: the first is the client
}

// Account names. A name is case-insensitive (seed 001 §8.1.2): it is stored
// and compared in lower case. It may hold ASCII letters and digits and the
// punctuation in accountPunctuation, must start with a letter or a digit, and
// may hold at most one '@' (names like alice@example.com are accepted).
const accountPunctuation = ".-_+@"

// invalidAccountCharacters is what ValidateAccount reports as
// InvalidCharacters (plus any other offending character of the name).
const invalidAccountCharacters = " ,:;{}()[]<>?|\\\"'#/%*!&=^`~$"

// CanonicalAccount returns the form of an account name the portal stores
// and compares: lower case.
func CanonicalAccount(name string) string { return strings.ToLower(name) }

// checkAccountName returns why name is not an acceptable account name, and
// the offending characters, or "" if it is acceptable.
func (s *Server) checkAccountName(name string) (reason, invalid string) {
	var bad strings.Builder
	for _, r := range name {
		ok := r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(accountPunctuation, r))
		if !ok && !strings.ContainsRune(bad.String(), r) {
			bad.WriteRune(r)
		}
	}
	invalid = invalidAccountCharacters
	for _, r := range bad.String() {
		if !strings.ContainsRune(invalid, r) {
			invalid += string(r)
		}
	}
	n := len(name)
	switch {
	case n < s.cfg.AccountMinLength:
		return fmt.Sprintf("the account name is %d characters long, the minimum is %d", n, s.cfg.AccountMinLength), invalid
	case n > s.cfg.AccountMaxLength:
		return fmt.Sprintf("the account name is %d characters long, the maximum is %d", n, s.cfg.AccountMaxLength), invalid
	case bad.Len() > 0:
		return fmt.Sprintf("the account name contains characters that are not allowed: %q", bad.String()), invalid
	case strings.Count(name, "@") > 1:
		return "the account name contains more than one '@'", invalid
	case strings.ContainsRune(accountPunctuation, rune(name[0])):
		return "the account name must start with a letter or a digit", invalid
	}
	return "", invalid
}

// account validates an account name from a request and returns its
// canonical form, or a ClientBadRequest naming the field.
func (s *Server) account(field, name string) (string, error) {
	if name == "" {
		return "", Errorf(ClientBadRequest, "%s is missing", field)
	}
	if reason, _ := s.checkAccountName(name); reason != "" {
		return "", Errorf(ClientBadRequest, "%s %q: %s", field, name, reason)
	}
	return CanonicalAccount(name), nil
}

// checkEntry checks that a required entry of a request is present and within
// the size limit.
func (s *Server) checkEntry(field string, e Entry) error {
	if len(e) == 0 {
		return Errorf(ClientBadRequest, "%s is missing", field)
	}
	if len(e) > s.cfg.MaxEntryBytes {
		return Errorf(TooLarge, "%s is %d bytes, over the limit of %d", field, len(e), s.cfg.MaxEntryBytes)
	}
	return nil
}

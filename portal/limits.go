package portal

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rateLimiter keeps one token bucket per client IP. Buckets idle for longer
// than idleAfter are dropped during a sweep, which runs inline at most once
// per sweepEvery, so the limiter needs no goroutine.
type rateLimiter struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex
	clients   map[string]*clientBucket
	lastSweep time.Time
}

type clientBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

const (
	sweepEvery = time.Minute
	idleAfter  = 5 * time.Minute
)

// newRateLimiter returns a limiter of perSecond requests per client with the
// given burst; perSecond 0 allows everything.
func newRateLimiter(perSecond float64, burst int) *rateLimiter {
	return &rateLimiter{limit: rate.Limit(perSecond), burst: burst, clients: map[string]*clientBucket{}}
}

// allow reports whether client may make a request at now.
func (rl *rateLimiter) allow(client string, now time.Time) bool {
	if rl.limit == 0 {
		return true
	}
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if now.Sub(rl.lastSweep) > sweepEvery {
		for k, c := range rl.clients {
			if now.Sub(c.seen) > idleAfter {
				delete(rl.clients, k)
			}
		}
		rl.lastSweep = now
	}
	c := rl.clients[client]
	if c == nil {
		c = &clientBucket{lim: rate.NewLimiter(rl.limit, rl.burst)}
		rl.clients[client] = c
	}
	c.seen = now
	return c.lim.AllowN(now, 1)
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

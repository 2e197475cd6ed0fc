package loadgen

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/intermesh/intermesh/config"
)

// ErrInvalidConfig is wrapped by the errors of Run and Verify that come
// from their configuration, before any request is sent.
var ErrInvalidConfig = errors.New("loadgen: invalid configuration")

// Config configures a load run.
type Config struct {
	// Portals are the base URLs (http://host:port) to load; accounts are
	// spread over them round robin. Required.
	Portals []string
	// Domains are the account domains of the portals, in the order of
	// Portals: the accounts created at Portals[i] are NAME@Domains[i], the
	// domain its member serves (a member creates accounts of its own
	// domains only; PortalDomains reads them from the federation file).
	// Optional: every account is NAME@example.com.
	Domains []string
	// Rate is the number of update requests per second. Required.
	Rate float64
	// Duration is how long updates are sent, after the accounts are
	// created. Zero creates the accounts only.
	Duration time.Duration
	// Accounts is the number of accounts created first. At least 1.
	Accounts int
	// Concurrency is the most requests in flight (and connections kept
	// open per portal). At least 1.
	Concurrency int
	// Timeout is the time limit of one request. Required.
	Timeout time.Duration
	// Acks is the file the acknowledged writes are appended to. Required.
	Acks string
	// Token is sent as the bearer token with every request. Optional.
	Token string
	// Progress, if set, gets a line every second, each starting with a
	// carriage return (meant for a terminal), and a cleared line at the
	// end. Optional.
	Progress io.Writer
}

func (c *Config) validate() error {
	var err error
	switch {
	case len(c.Portals) == 0:
		err = errors.New("no Portals")
	case c.Rate <= 0:
		err = fmt.Errorf("Rate must be positive (got %g)", c.Rate)
	case c.Duration < 0:
		err = fmt.Errorf("Duration must not be negative (got %s)", c.Duration)
	case c.Accounts < 1:
		err = fmt.Errorf("Accounts must be at least 1 (got %d)", c.Accounts)
	case c.Concurrency < 1:
		err = fmt.Errorf("Concurrency must be at least 1 (got %d)", c.Concurrency)
	case c.Timeout <= 0:
		err = fmt.Errorf("Timeout must be positive (got %s)", c.Timeout)
	case c.Acks == "":
		err = errors.New("Acks must name a file")
	case len(c.Domains) != 0 && len(c.Domains) != len(c.Portals):
		err = fmt.Errorf("%d Domains for %d Portals: want one domain per portal, or none", len(c.Domains), len(c.Portals))
	}
	for _, d := range c.Domains {
		if err != nil {
			break
		}
		if derr := config.CheckDomain(d); derr != nil {
			err = fmt.Errorf("Domains: %w", derr)
		}
	}
	for _, p := range c.Portals {
		if err != nil {
			break
		}
		if u, perr := url.Parse(p); perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			err = fmt.Errorf("portal %q is not a portal URL: want http://host:port or https://host", p)
		}
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

// DefaultDomain is the account domain of a portal without a domain.
const DefaultDomain = "example.com"

// PortalDomains returns the account domain of each portal, for
// Config.Domains: the first domain of the federation member whose http
// URL is the portal, or DefaultDomain for a portal that is no member's or
// whose member lists none (it serves every name). A nil federation gives
// nil (every account is NAME@DefaultDomain).
func PortalDomains(fed *config.Federation, portals []string) []string {
	if fed == nil {
		return nil
	}
	out := make([]string, len(portals))
	for i, p := range portals {
		out[i] = DefaultDomain
		for _, m := range fed.Members {
			if strings.TrimSuffix(m.HTTP, "/") == strings.TrimSuffix(p, "/") && len(m.Domains) > 0 {
				out[i] = m.Domains[0]
				break
			}
		}
	}
	return out
}

// domain is the account domain of portal i.
func (c *Config) domain(i int) string {
	if len(c.Domains) == 0 {
		return DefaultDomain
	}
	return c.Domains[i]
}

// VerifyConfig configures Verify.
type VerifyConfig struct {
	// Federation gives the members' portals and verifier keys. Required.
	Federation *config.Federation
	// Acks is the file of acknowledged writes to check. Required.
	Acks string
	// Token is sent as the bearer token with every request (Transfer may
	// need it). Optional.
	Token string
	// Wait is how long to wait for the replicas to serve every write and
	// for a certificate to cover the latest ones.
	Wait time.Duration
}

func (c *VerifyConfig) validate() error {
	var err error
	switch {
	case c.Federation == nil:
		err = errors.New("no Federation")
	case c.Acks == "":
		err = errors.New("Acks must name a file")
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

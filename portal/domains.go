package portal

import (
	"errors"
	"fmt"
	"strings"
)

// Domains. An account's home is the member that serves the account's
// domain, the part of NAME@DOMAIN after '@' (the federation file lists
// each member's domains). A portal with Config.Domains creates accounts
// of those domains only, and reports other names as not valid here; one
// without (a solo node, a federation file without domains) creates
// accounts of any acceptable name.

// ErrDomainNotServed is the cause of a CreateAccount refused because this
// portal is not the home of the account's domain (or the name has none).
var ErrDomainNotServed = errors.New("the account's domain is not served by this portal")

// checkDomains checks Config.Domains: lower-case DNS names, each once.
func checkDomains(domains []string) error {
	seen := map[string]bool{}
	for _, d := range domains {
		switch {
		case !isDNSName(d) || d != strings.ToLower(d):
			return fmt.Errorf("portal: Domains: %q is not a lower-case DNS name", d)
		case seen[d]:
			return fmt.Errorf("portal: Domains: %q is listed twice", d)
		}
		seen[d] = true
	}
	return nil
}

// domainReason returns why this portal does not create the account (an
// acceptable name in canonical form), or "" if it does: with Domains set,
// the name must be NAME@DOMAIN with DOMAIN one of them.
func (s *Server) domainReason(account string) string {
	if len(s.cfg.Domains) == 0 {
		return ""
	}
	served := strings.Join(s.cfg.Domains, ", ")
	_, domain, ok := strings.Cut(account, "@")
	if !ok {
		return fmt.Sprintf("the account name has no domain: this portal creates accounts NAME@DOMAIN of the domains it serves (%s)", served)
	}
	for _, d := range s.cfg.Domains {
		if d == domain {
			return ""
		}
	}
	if home, ok := s.cfg.DomainHomes[domain]; ok {
		return fmt.Sprintf("the domain %q is not served by this portal, which serves %s: it is served by member %s, create the account there", domain, served, home)
	}
	return fmt.Sprintf("the domain %q is not served by this portal, which serves %s: an account is created at the member that serves its domain", domain, served)
}

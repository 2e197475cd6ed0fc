package loadgen

import (
	"strings"

	"github.com/intermesh/intermesh/audit"
	"github.com/intermesh/intermesh/config"
)

// federationKeys are the verifier keys of a federation's members, and
// where their portals are.
type federationKeys struct {
	keys    *audit.Keys
	name    string
	origins []string          // in file order
	http    map[string]string // member origin → portal URL
}

func newFederationKeys(fed *config.Federation) (*federationKeys, error) {
	keys, err := audit.NewKeys(fed)
	if err != nil {
		return nil, err
	}
	k := &federationKeys{keys: keys, name: fed.Name, http: map[string]string{}}
	for _, m := range fed.Members {
		k.origins = append(k.origins, m.Origin)
		k.http[m.Origin] = m.HTTP
	}
	return k, nil
}

// originOf is the origin of the member whose http URL is u, or "".
func (k *federationKeys) originOf(u string) string {
	for _, o := range k.origins {
		if k.http[o] != "" && sameURL(k.http[o], u) {
			return o
		}
	}
	return ""
}

// sameURL compares two base URLs, ignoring a trailing slash.
func sameURL(a, b string) bool { return strings.TrimRight(a, "/") == strings.TrimRight(b, "/") }

// checkpointOf returns the checkpoint of origin in a certificate.
func checkpointOf(c *audit.Certificate, origin string) (audit.Checkpoint, bool) {
	for _, cp := range c.Checkpoints {
		if cp.Origin == origin {
			return cp, true
		}
	}
	return audit.Checkpoint{}, false
}

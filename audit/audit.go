package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/portal/client"
)

// Config is what one audit needs.
type Config struct {
	// Federation is the federation file: its members, their keys and the
	// quorum. Required.
	Federation *config.Federation
	// Nodes are the portal URLs of the nodes to audit. Optional: by
	// default, every member's http URL in the federation file and in the
	// verified updates after it.
	Nodes []string
	// Token is the bearer token Transfer needs, unless the nodes make it
	// public. Optional.
	Token string
	// Cache is a directory keeping the entries fetched, per node and log,
	// so that a later audit fetches only the new ones (and an interrupted
	// one resumes). Optional: by default nothing is kept.
	Cache string
	// SkipReplicas leaves out the replicas each node serves (Transfer with
	// Origin); by default they are fetched and their roots checked.
	SkipReplicas bool
	// Progress, if set, is called before each log is fetched, with a name
	// for it ("node1 entries", "node1 replica of node2"), the entries
	// already held (from the cache) and the size the node's checkpoint
	// announces (0 if unknown). The Progress it returns hears of each
	// entry fetched. Optional.
	Progress func(what string, have, total uint64) Progress
}

// Progress follows the fetching of one log.
type Progress interface {
	// Add is called once per entry fetched.
	Add()
	// Finish is called once the log is fetched, or its fetching failed.
	Finish()
}

// ErrNoNodes is returned by [Run] when there is nothing to audit: no node
// is named and no member of the federation file has an http URL.
var ErrNoNodes = errors.New("audit: no node to audit")

// auditor runs one audit.
type auditor struct {
	cfg Config
	// allMembers adds the portals of members that joined by updates.
	allMembers bool
	keys       *Keys
	report     *Report
	nodes      []*nodeAudit
	// chain is the federation's verified chain of versions (the file
	// first), chainNotes the signed updates after it.
	chain      []*config.FederationVersion
	chainNotes [][]byte
	// mapReplicas are, per origin, the first replica kept whose map is
	// collected, to check the origin's map lines when its own node's log
	// was not fetched (one per origin, to bound the memory).
	mapReplicas map[string]replicaCopy
}

// replicaCopy is a replica and the node that served it.
type replicaCopy struct {
	node *nodeAudit
	copy *logCopy
}

// Run audits every node in turn, then compares what they showed. A failed
// check is not an error: it is in the report, whose OK is then false. Run
// returns an error only when it could not audit at all (a federation file
// whose keys do not parse, no node to audit, ctx done).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Federation == nil {
		return nil, errors.New("audit: Config.Federation is nil")
	}
	keys, err := NewKeys(cfg.Federation)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	a := &auditor{
		cfg: cfg, keys: keys,
		report: &Report{Federation: cfg.Federation.Name, Quorum: keys.quorum, Failures: []Failure{}},
	}
	var urls []string
	addURL := func(u string) {
		if u != "" && !slices.ContainsFunc(urls, func(v string) bool { return sameURL(u, v) }) {
			urls = append(urls, u)
		}
	}
	if len(cfg.Nodes) == 0 {
		a.allMembers = true
		for _, m := range cfg.Federation.Members {
			addURL(m.HTTP)
		}
		if len(urls) == 0 {
			return nil, fmt.Errorf("%w: no member of federation %s has an http URL", ErrNoNodes, cfg.Federation.Name)
		}
	}
	for _, u := range cfg.Nodes {
		addURL(u)
	}
	chain, badChains := a.loadFederationChain(ctx, urls)
	a.chain = chain
	if err := keys.setChain(chain); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	a.report.FederationVersion = chain[len(chain)-1].Version
	if a.allMembers {
		for _, v := range chain[1:] {
			for _, m := range v.Members {
				addURL(m.HTTP)
			}
		}
	}
	for _, u := range urls {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("audit: %w", err)
		}
		n := a.auditNode(ctx, u)
		if err, bad := badChains[u]; bad {
			a.report.fail(n.rep, CheckFederationRecords, "GET /federation/updates: %v", err)
		}
		a.nodes = append(a.nodes, n)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	a.checkCertificatesAgree()
	a.checkEquivocation()
	if err := a.checkRoots(); err != nil {
		return nil, err
	}
	a.report.finish()
	return a.report, nil
}

// client returns a portal client of the node at u.
func (a *auditor) client(u string) (*client.Client, error) {
	var opts []client.Option
	if a.cfg.Token != "" {
		opts = append(opts, client.WithToken(a.cfg.Token))
	}
	return client.New(u, opts...)
}

// originOf is the origin of the member whose http URL is u, or "".
func (k *Keys) originOf(u string) string {
	for _, o := range k.origins {
		if k.http[o] != "" && sameURL(k.http[o], u) {
			return o
		}
	}
	return ""
}

// sameURL compares two base URLs, ignoring a trailing slash.
func sameURL(a, b string) bool {
	trim := func(s string) string {
		for len(s) > 0 && s[len(s)-1] == '/' {
			s = s[:len(s)-1]
		}
		return s
	}
	return trim(a) == trim(b)
}

// noProgress follows nothing.
type noProgress struct{}

func (noProgress) Add()    {}
func (noProgress) Finish() {}

// fetchLog brings a log copy up to date with the node, resuming from the
// cache, telling cfg.Progress of about total entries.
func (a *auditor) fetchLog(ctx context.Context, c *client.Client, l *logCopy, what string, total uint64) error {
	var p Progress = noProgress{}
	if a.cfg.Progress != nil {
		p = a.cfg.Progress(what, l.size(), total)
	}
	defer p.Finish()
	return l.fetch(ctx, c, p)
}

// newLogCopy returns the copy of origin's log at the node at u, read back
// from the cache if there is one.
func (a *auditor) newLogCopy(u, origin string, replica bool) (*logCopy, error) {
	_, mapped := a.mapReplicas[origin]
	l := &logCopy{origin: origin, replica: replica, mapped: !replica || !mapped}
	if a.cfg.Cache == "" {
		return l, nil
	}
	l.cache = cachePath(a.cfg.Cache, u, origin)
	if err := mkdirFor(l.cache); err != nil {
		return nil, err
	}
	if err := l.loadCache(); err != nil {
		return nil, err
	}
	return l, nil
}

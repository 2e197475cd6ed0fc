package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
	"github.com/intermesh/intermesh/portal/mesh"
)

// loadOptions are the flags of 'meshctl load'.
type loadOptions struct {
	nodes       []string
	federation  string
	rate        float64
	duration    time.Duration
	accounts    int
	concurrency int
	timeout     time.Duration
	acks        string
	verify      bool
	wait        time.Duration
}

// newLoadCommand is 'meshctl load': a load generator that keeps the list of
// acknowledged writes, and checks them later with --verify.
func newLoadCommand(opts *globalOptions) *cobra.Command {
	var o loadOptions
	cmd := &cobra.Command{
		Use:   "load [--node URL ...] --rate R --duration D [--accounts N] | load --verify --federation FILE",
		Short: "Drive real, signed writes at portals and keep the list of the acknowledged ones; --verify checks them",
		Long: `load first creates --accounts accounts, each bound to a fresh ProfileAccount
(Ed448 offline and administration keys, an X448 encryption key, a valid signed
envelope), spread round robin over the portals (--node, repeatable; default:
every member's http URL in --federation, else --portal). Then, for --duration,
it publishes signed updates of those profiles (each signed by the offline key,
with a later Updated time and the other of two administration keys made with
the account, so consecutive versions differ in their keys) at --rate requests
per second, open loop: the
latency of a request is measured from the time it was scheduled, so a stalled
portal shows as latency, not as a lower rate. At most --concurrency requests
are in flight, over connections kept open (up to --concurrency per portal). A
progress line is shown when stderr is a terminal.

The report gives the writes acknowledged and refused (by reason), latency
p50/p99/max of the acknowledged updates and the throughput; --json prints it
for machines. Every acknowledged write is appended to --acks (JSON lines): the
portal that acknowledged it, the identifier, and the envelope's PayloadDigest.

load --verify --federation FILE reads --acks and checks that every
acknowledged write
  - is served by the portal that acknowledged it (Get, every version),
  - is served by every other member from its replica of that portal's log,
  - is in the portal's log under a checkpoint of that portal that a
    master-hash certificate (a quorum of member signatures, verified with the
    federation file's keys) covers: the entries up to the certified size are
    copied with Transfer, their RFC 6962 root must be the certified root, and
    an inclusion proof of the write's leaf is verified against it.
It waits up to --wait for replication and for a certificate covering the
latest writes. Exit status 0 only when every write passes.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			fed, nodes, err := o.resolve(cmd, opts)
			if err != nil {
				return err
			}
			if o.verify {
				if fed == nil {
					return usagef(cmd, "load --verify needs --federation FILE")
				}
				rep, err := runLoadVerify(cmd, opts, o, fed)
				if err != nil {
					return err
				}
				if err := opts.emit(cmd, rep, rep.writeHuman); err != nil {
					return err
				}
				if !rep.OK {
					return &exitError{code: exitFailure}
				}
				return nil
			}
			rep, err := runLoad(cmd, opts, o, nodes)
			if err != nil {
				return err
			}
			return opts.emit(cmd, rep, rep.writeHuman)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.nodes, "node", nil, "portal URL to load (repeatable; default: the federation's members, else --portal)")
	f.StringVar(&o.federation, "federation", "", "the federation file (members' portals and keys); needed by --verify")
	f.Float64Var(&o.rate, "rate", 100, "update requests per second")
	f.DurationVar(&o.duration, "duration", 30*time.Second, "how long to send updates")
	f.IntVar(&o.accounts, "accounts", 100, "accounts to create first (each with its own profile)")
	f.IntVar(&o.concurrency, "concurrency", 256, "most requests in flight")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "time limit of one request")
	f.StringVar(&o.acks, "acks", "meshctl-load.jsonl", "file listing the acknowledged writes (appended to)")
	f.BoolVar(&o.verify, "verify", false, "check every write listed in --acks instead of generating load")
	f.DurationVar(&o.wait, "wait", 2*time.Minute, "with --verify: how long to wait for replicas and certificates")
	return cmd
}

// resolve checks the flags and returns the federation (if given) and the
// portals to load.
func (o *loadOptions) resolve(cmd *cobra.Command, opts *globalOptions) (*config.Federation, []string, error) {
	var fed *config.Federation
	if o.federation != "" {
		var err error
		if fed, err = config.LoadFederation(o.federation); err != nil {
			return nil, nil, usagef(cmd, "--federation: %w", err)
		}
	}
	switch {
	case o.rate <= 0:
		return nil, nil, usagef(cmd, "--rate must be positive (got %g)", o.rate)
	case o.duration < 0:
		return nil, nil, usagef(cmd, "--duration must not be negative (got %s)", o.duration)
	case o.accounts < 1:
		return nil, nil, usagef(cmd, "--accounts must be at least 1 (got %d)", o.accounts)
	case o.concurrency < 1:
		return nil, nil, usagef(cmd, "--concurrency must be at least 1 (got %d)", o.concurrency)
	case o.timeout <= 0:
		return nil, nil, usagef(cmd, "--timeout must be positive (got %s)", o.timeout)
	case o.acks == "":
		return nil, nil, usagef(cmd, "--acks must name a file")
	}
	nodes := o.nodes
	if len(nodes) == 0 && fed != nil {
		for _, m := range fed.Members {
			if m.HTTP != "" {
				nodes = append(nodes, m.HTTP)
			}
		}
	}
	if len(nodes) == 0 {
		nodes = []string{opts.portal}
	}
	for _, n := range nodes {
		if u, err := url.Parse(n); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, nil, usagef(cmd, "--node %q is not a portal URL: want http://host:port or https://host", n)
		}
	}
	return fed, nodes, nil
}

// loadAccount is one account the load created: its keys stay in memory.
type loadAccount struct {
	name    string
	portal  int // index of the portal it was created at (and is updated at)
	offline *mesh.PrivateKey
	enc     *mesh.KeyData
	auth    *mesh.KeyData
	admins  [2]*mesh.KeyData // the administration keys versions alternate between
	id      string           // the profile's UDF

	// mu serializes the account's updates: each version must carry a
	// later Updated than the one registered, so versions are signed and
	// sent one after the other.
	mu      sync.Mutex
	updated time.Time // Updated of the latest version signed
	version int       // versions signed
}

// newLoadAccount makes the keys of an account and its first profile entry.
func newLoadAccount(name string, portal int) (*loadAccount, []byte, string, error) {
	offline, err := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
	if err != nil {
		return nil, nil, "", err
	}
	enc, err := mesh.GenerateKey(rand.Reader, mesh.CurveX448)
	if err != nil {
		return nil, nil, "", err
	}
	auth, err := mesh.GenerateKey(rand.Reader, mesh.CurveX448)
	if err != nil {
		return nil, nil, "", err
	}
	a := &loadAccount{name: name, portal: portal, offline: offline, id: offline.UDF().String(),
		enc: mesh.NewKeyData(enc.Public()), auth: mesh.NewKeyData(auth.Public())}
	for i := range a.admins {
		admin, err := mesh.GenerateKey(rand.Reader, mesh.CurveEd448)
		if err != nil {
			return nil, nil, "", err
		}
		a.admins[i] = mesh.NewKeyData(admin.Public())
	}
	entry, digest, err := a.profile()
	return a, entry, digest, err
}

// profile signs a new version of the account's ProfileAccount, with the
// administration key the previous version did not have and an Updated time
// later than the previous version's, and returns the entry and its
// PayloadDigest. (Making a fresh key for every version would cost the
// client an Ed448 key generation per write.)
func (a *loadAccount) profile() ([]byte, string, error) {
	admin := a.admins[a.version%len(a.admins)]
	a.version++
	updated := time.Now().UTC().Truncate(time.Microsecond)
	if !updated.After(a.updated) {
		updated = a.updated.Add(time.Microsecond)
	}
	a.updated = updated
	p := &mesh.ProfileAccount{
		Profile: mesh.Profile{
			Assertion:           mesh.Assertion{Updated: &updated},
			KeyOfflineSignature: mesh.NewKeyData(a.offline.Public()),
			KeysOnlineSignature: []mesh.KeyData{*admin},
		},
		AccountAddresses:  []string{a.name},
		KeyEncryption:     a.enc,
		KeyAuthentication: a.auth,
	}
	env, err := mesh.SignObject(p, a.offline)
	if err != nil {
		return nil, "", err
	}
	entry, err := mesh.MarshalEntry(p.TypeName(), env)
	if err != nil {
		return nil, "", err
	}
	return entry, b64url(env.Trailer.PayloadDigest), nil
}

// loadRun is one load run in progress.
type loadRun struct {
	o       loadOptions
	nodes   []string
	clients []*client.Client
	acks    *ackWriter
	stats   *loadStats
}

// runLoad creates the accounts, then sends paced updates, and reports.
func runLoad(cmd *cobra.Command, opts *globalOptions, o loadOptions, nodes []string) (*loadReport, error) {
	ctx := cmd.Context()
	l := &loadRun{o: o, nodes: nodes, stats: newLoadStats()}
	// Keep a connection open for every request that may be in flight: with
	// net/http's default of 2 idle connections per host, most requests
	// would open a new TCP connection, and the client and the portals
	// would spend their CPU on that instead of on the writes.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = o.concurrency
	hc := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	for _, n := range nodes {
		copts := []client.Option{client.WithHTTPClient(hc)}
		if opts.token != "" {
			copts = append(copts, client.WithToken(opts.token))
		}
		c, err := client.New(n, copts...)
		if err != nil {
			return nil, err
		}
		l.clients = append(l.clients, c)
	}
	var err error
	if l.acks, err = openAckWriter(o.acks); err != nil {
		return nil, err
	}
	progress := newLoadProgress(cmd.ErrOrStderr(), l.stats)
	accounts, setup := l.createAccounts(ctx)
	if len(accounts) == 0 {
		progress.stop()
		l.acks.Close()
		return nil, fmt.Errorf("load: no account could be created at %v (%s)", nodes, l.stats.refusalSummary())
	}
	start := time.Now()
	l.sendUpdates(ctx, accounts)
	elapsed := time.Since(start)
	progress.stop()
	if err := l.acks.Close(); err != nil {
		return nil, err
	}
	return l.stats.report(o, nodes, len(accounts), setup, elapsed), nil
}

// createAccounts creates the accounts, --concurrency at a time, and returns
// those acknowledged.
func (l *loadRun) createAccounts(ctx context.Context) ([]*loadAccount, time.Duration) {
	start := time.Now()
	var tag [4]byte
	rand.Read(tag[:])
	prefix := "load-" + hex.EncodeToString(tag[:])
	var (
		mu   sync.Mutex
		out  []*loadAccount
		wg   sync.WaitGroup
		slot = make(chan struct{}, l.o.concurrency)
	)
	for k := 0; k < l.o.accounts && ctx.Err() == nil; k++ {
		slot <- struct{}{}
		wg.Go(func() {
			defer func() { <-slot }()
			a, entry, digest, err := newLoadAccount(fmt.Sprintf("%s-%d@example.com", prefix, k), k%len(l.nodes))
			if err != nil {
				l.stats.refuse(l.nodes[k%len(l.nodes)], "local error", err)
				return
			}
			rctx, cancel := context.WithTimeout(ctx, l.o.timeout)
			_, err = l.clients[a.portal].CreateAccount(rctx, &portal.CreateRequest{Account: a.name, Profile: entry})
			cancel()
			if err != nil {
				l.stats.refuse(l.nodes[a.portal], refusalReason(err), err)
				return
			}
			l.stats.setupAcked()
			l.acks.add(ackedWrite{Portal: l.nodes[a.portal], Kind: "CreateAccount", Account: a.name, Identifier: a.id, Digest: digest, Time: time.Now().UTC()})
			mu.Lock()
			out = append(out, a)
			mu.Unlock()
		})
	}
	wg.Wait()
	return out, time.Since(start)
}

// sendUpdates publishes profile updates at the paced rate for the duration.
// Request k is scheduled at start + k/rate; its latency counts from then.
// When the portals fall behind (all --concurrency requests in flight),
// requests wait for a slot, and those still unsent when the duration is
// over are counted as not sent.
func (l *loadRun) sendUpdates(ctx context.Context, accounts []*loadAccount) {
	var (
		wg   sync.WaitGroup
		slot = make(chan struct{}, l.o.concurrency)
	)
	interval := time.Duration(float64(time.Second) / l.o.rate)
	start := time.Now()
	l.stats.begin(start)
	timer := time.NewTimer(0)
	defer timer.Stop()
	scheduled := int(float64(l.o.duration) / float64(interval))
	if float64(scheduled)*float64(interval) < float64(l.o.duration) {
		scheduled++
	}
	deadline := time.NewTimer(l.o.duration)
	defer deadline.Stop()
	sent := 0
	defer func() { l.stats.notSent(scheduled - sent) }()
	for k := 0; k < scheduled; k++ {
		at := start.Add(time.Duration(k) * interval)
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			break
		}
		over := false
		select {
		case slot <- struct{}{}:
		case <-ctx.Done():
		case <-deadline.C:
			over = true
		}
		if over || ctx.Err() != nil || time.Since(start) >= l.o.duration {
			if !over && ctx.Err() == nil {
				<-slot
			}
			break
		}
		sent++
		a := accounts[k%len(accounts)]
		wg.Go(func() {
			defer func() { <-slot }()
			l.update(ctx, a, at)
		})
	}
	wg.Wait()
}

// update publishes one new version of a's profile, scheduled at at.
func (l *loadRun) update(ctx context.Context, a *loadAccount, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	entry, digest, err := a.profile()
	if err != nil {
		l.stats.refuse(l.nodes[a.portal], "local error", err)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, l.o.timeout)
	_, err = l.clients[a.portal].Publish(rctx, &portal.PublishRequest{Entry: entry, AccountID: a.name})
	cancel()
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return // interrupted: neither acknowledged nor refused
		}
		l.stats.refuse(l.nodes[a.portal], refusalReason(err), err)
		return
	}
	l.stats.acked(time.Since(at))
	l.acks.add(ackedWrite{Portal: l.nodes[a.portal], Kind: "Publish", Account: a.name, Identifier: a.id, Digest: digest, Time: time.Now().UTC()})
}

// refusalReason names why a request was not acknowledged: the portal's
// status, or what went wrong on the way.
func refusalReason(err error) string {
	var pe *portal.Error
	switch {
	case errors.As(err, &pe):
		return fmt.Sprintf("status %d %s", pe.Status, portal.StatusText(pe.Status))
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case isConnRefused(err):
		return "connection refused"
	}
	return "transport error"
}

package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
)

// Run creates cfg.Accounts accounts, then sends paced updates of their
// profiles for cfg.Duration, appends every acknowledged write to cfg.Acks,
// and reports. Refused writes are counted in the report, not errors; Run
// fails when the configuration is invalid (ErrInvalidConfig), the acks file
// cannot be written, or no account could be created.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	l := &run{cfg: cfg, stats: newStats()}
	// Keep a connection open for every request that may be in flight: with
	// net/http's default of 2 idle connections per host, most requests
	// would open a new TCP connection, and the client and the portals
	// would spend their CPU on that instead of on the writes.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = cfg.Concurrency
	hc := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	for _, n := range cfg.Portals {
		copts := []client.Option{client.WithHTTPClient(hc)}
		if cfg.Token != "" {
			copts = append(copts, client.WithToken(cfg.Token))
		}
		c, err := client.New(n, copts...)
		if err != nil {
			return nil, fmt.Errorf("portal %s: %w", n, err)
		}
		l.clients = append(l.clients, c)
	}
	var err error
	if l.acks, err = openAckWriter(cfg.Acks); err != nil {
		return nil, err
	}
	progress := startProgress(cfg.Progress, l.stats)
	accounts, setup := l.createAccounts(ctx)
	if len(accounts) == 0 {
		progress.stop()
		l.acks.Close()
		return nil, fmt.Errorf("no account could be created at %v (%s)", cfg.Portals, l.stats.refusalSummary())
	}
	start := time.Now()
	l.sendUpdates(ctx, accounts)
	elapsed := time.Since(start)
	progress.stop()
	if err := l.acks.Close(); err != nil {
		return nil, err
	}
	return l.stats.report(cfg, len(accounts), setup, elapsed), nil
}

// run is one load run in progress.
type run struct {
	cfg     Config
	clients []*client.Client // by portal, as cfg.Portals
	acks    *ackWriter
	stats   *stats
}

// createAccounts creates the accounts, cfg.Concurrency at a time, and
// returns those acknowledged.
func (l *run) createAccounts(ctx context.Context) ([]*account, time.Duration) {
	start := time.Now()
	var tag [4]byte
	rand.Read(tag[:])
	prefix := "load-" + hex.EncodeToString(tag[:])
	var (
		mu   sync.Mutex
		out  []*account
		wg   sync.WaitGroup
		slot = make(chan struct{}, l.cfg.Concurrency)
	)
	nodes := l.cfg.Portals
	for k := 0; k < l.cfg.Accounts && ctx.Err() == nil; k++ {
		slot <- struct{}{}
		wg.Go(func() {
			defer func() { <-slot }()
			a, entry, digest, err := newAccount(fmt.Sprintf("%s-%d@%s", prefix, k, l.cfg.domain(k%len(nodes))), k%len(nodes))
			if err != nil {
				l.stats.refuse(nodes[k%len(nodes)], "local error", err)
				return
			}
			rctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
			_, err = l.clients[a.portal].CreateAccount(rctx, &portal.CreateRequest{Account: a.name, Profile: entry})
			cancel()
			if err != nil {
				l.stats.refuse(nodes[a.portal], refusalReason(err), err)
				return
			}
			l.stats.setupAcked()
			l.acks.add(Write{Portal: nodes[a.portal], Kind: KindCreateAccount, Account: a.name, Identifier: a.id, Digest: digest, Time: time.Now().UTC()})
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
// When the portals fall behind (all cfg.Concurrency requests in flight),
// requests wait for a slot, and those still unsent when the duration is
// over are counted as not sent.
func (l *run) sendUpdates(ctx context.Context, accounts []*account) {
	var (
		wg   sync.WaitGroup
		slot = make(chan struct{}, l.cfg.Concurrency)
	)
	interval := time.Duration(float64(time.Second) / l.cfg.Rate)
	start := time.Now()
	l.stats.begin(start)
	timer := time.NewTimer(0)
	defer timer.Stop()
	scheduled := int(float64(l.cfg.Duration) / float64(interval))
	if float64(scheduled)*float64(interval) < float64(l.cfg.Duration) {
		scheduled++
	}
	deadline := time.NewTimer(l.cfg.Duration)
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
		if over || ctx.Err() != nil || time.Since(start) >= l.cfg.Duration {
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
func (l *run) update(ctx context.Context, a *account, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	node := l.cfg.Portals[a.portal]
	entry, digest, err := a.profile()
	if err != nil {
		l.stats.refuse(node, "local error", err)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	_, err = l.clients[a.portal].Publish(rctx, &portal.PublishRequest{Entry: entry, AccountID: a.name})
	cancel()
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return // interrupted: neither acknowledged nor refused
		}
		l.stats.refuse(node, refusalReason(err), err)
		return
	}
	l.stats.acked(time.Since(at))
	l.acks.add(Write{Portal: node, Kind: KindPublish, Account: a.name, Identifier: a.id, Digest: digest, Time: time.Now().UTC()})
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
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	}
	return "transport error"
}

package node

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/intermesh/intermesh/config"
	"github.com/intermesh/intermesh/portal"
	"github.com/intermesh/intermesh/portal/client"
)

// startHoldingNode runs a node whose HTTP limits are set by edit, and
// returns its portal's address.
func startHoldingNode(t *testing.T, edit func(h *config.HTTP)) string {
	t.Helper()
	return startHoldingNodeRated(t, func(h *config.HTTP) {
		h.RatePerSecond = 0 // the slow clients stand for many addresses
		edit(h)
	})
}

// trickler is a slow client: it sends the headers of a Publish with a large
// Content-Length, then one byte of body every interval, until the server
// closes the connection.
type trickler struct {
	conn   net.Conn
	closed chan struct{} // closed when the server closed the connection
	answer []byte        // what the server sent before closing
}

func startTrickler(t *testing.T, addr string, interval time.Duration) *trickler {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("slow client: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	tr := &trickler{conn: conn, closed: make(chan struct{})}
	head := "POST " + portal.WellKnownPath + " HTTP/1.1\r\nHost: " + addr +
		"\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatalf("slow client: %v", err)
	}
	go func() {
		tr.answer, _ = io.ReadAll(conn) // returns when the server closes
		close(tr.closed)
	}()
	go func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-tr.closed:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	return tr
}

func (tr *trickler) isClosed() bool {
	select {
	case <-tr.closed:
		return true
	default:
		return false
	}
}

// waitClosed waits until every trickler was closed by the server.
func waitClosed(t *testing.T, trs []*trickler, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for i, tr := range trs {
		select {
		case <-tr.closed:
		case <-deadline:
			open := 0
			for _, tr := range trs[i:] {
				if !tr.isClosed() {
					open++
				}
			}
			t.Fatalf("%d of %d slow connections are still open after %v", open, len(trs), timeout)
		}
	}
}

func countOpen(trs []*trickler) int {
	open := 0
	for _, tr := range trs {
		if !tr.isClosed() {
			open++
		}
	}
	return open
}

// A normal client is served while hundreds of clients trickle their request
// bodies, and the server closes the slow connections at http.read_timeout.
func TestSlowClientsDoNotHoldTheServer(t *testing.T) {
	t.Parallel()
	const slow = 300
	readTimeout := 8 * time.Second
	addr := startHoldingNode(t, func(h *config.HTTP) {
		h.ReadHeaderTimeout = config.Duration{Duration: 2 * time.Second}
		h.ReadTimeout = config.Duration{Duration: readTimeout}
	})
	start := time.Now()
	trs := make([]*trickler, slow)
	for i := range trs {
		trs[i] = startTrickler(t, addr, 200*time.Millisecond)
	}

	c, err := client.New("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Hello(ctx); err != nil {
		t.Fatalf("a normal client is not served beside %d slow ones: %v", slow, err)
	}
	v, err := c.ValidateAccount(ctx, &portal.ValidateRequest{Account: "alice@example.com"})
	if err != nil || !v.Valid {
		t.Fatalf("a normal client is not served beside %d slow ones: %+v, %v", slow, v, err)
	}
	// The normal client was served while the slow ones held their
	// connections (none can have been cut before the read timeout).
	if open := countOpen(trs); open != slow && time.Since(start) < readTimeout {
		t.Fatalf("only %d of %d slow connections were open while the normal client was served", open, slow)
	}

	waitClosed(t, trs, readTimeout+60*time.Second)
	for _, tr := range trs {
		// What the server said, if anything, is a refusal, never a success.
		if len(tr.answer) > 0 && !strings.HasPrefix(string(tr.answer), "HTTP/1.1 4") {
			t.Fatalf("a slow client got %q", firstLine(tr.answer))
		}
	}
	if _, err := c.Hello(ctx); err != nil {
		t.Fatalf("the portal does not serve after the slow clients were cut off: %v", err)
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\r\n")
	return s
}

// Past http.max_connections a connection is answered 503 ServerOverload with
// a JSON MeshResponse; once connections close, clients are served again.
func TestConnectionsPastTheCapGetServerOverload(t *testing.T) {
	t.Parallel()
	const capacity = 16
	addr := startHoldingNode(t, func(h *config.HTTP) {
		h.MaxConnections = capacity
		h.ReadHeaderTimeout = config.Duration{Duration: 2 * time.Second}
		h.ReadTimeout = config.Duration{Duration: 10 * time.Second}
	})
	trs := make([]*trickler, capacity)
	for i := range trs {
		trs[i] = startTrickler(t, addr, 200*time.Millisecond)
	}
	// The listener accepts connections in the order they were made, so the
	// slow ones hold every slot when the next one is accepted.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c, err := client.New("http://"+addr, client.WithHTTPClient(&http.Client{Transport: tr, Timeout: 30 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Hello(context.Background())
	var pe *portal.Error
	if !errors.As(err, &pe) || pe.Status != portal.ServerOverload || !strings.Contains(pe.Description, "too many open connections") {
		t.Fatalf("a connection past the cap of %d: %v, want 503 ServerOverload", capacity, err)
	}
	if countOpen(trs) != capacity {
		t.Fatalf("the connections under the cap were closed: %d of %d open", countOpen(trs), capacity)
	}

	waitClosed(t, trs, 60*time.Second)
	// The slots are given back as the server closes the connections.
	waitFor(t, 30*time.Second, "a client to be served again", func() bool {
		_, err := c.Hello(context.Background())
		return err == nil
	})
}

// helloFrom sends Hello with X-Forwarded-For: client and returns the
// protocol status.
func helloFrom(t *testing.T, addr, client string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+portal.WellKnownPath, strings.NewReader(`{"HelloRequest":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Forwarded-For", client)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer map[string]portal.MeshResponse
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatal(err)
	}
	for _, r := range answer {
		return r.Status
	}
	t.Fatal("an empty answer")
	return 0
}

// The rate limiter takes the client from X-Forwarded-For only when the peer
// is one of http.trusted_proxies; from anyone else the header changes
// nothing.
func TestTheProxyHeaderIsHonouredOnlyFromTrustedProxies(t *testing.T) {
	t.Parallel()
	limited := func(h *config.HTTP) { h.RatePerSecond, h.RateBurst = 0.001, 1 }
	t.Run("from a trusted proxy each client has its own bucket", func(t *testing.T) {
		addr := startHoldingNodeRated(t, func(h *config.HTTP) { limited(h); h.TrustedProxies = []string{"127.0.0.0/8"} })
		for _, client := range []string{"203.0.113.1", "203.0.113.2", "2001:db8:0:1::1"} {
			if st := helloFrom(t, addr, client); st != portal.SuccessOK {
				t.Fatalf("first request of %s: status %d", client, st)
			}
		}
		if st := helloFrom(t, addr, "203.0.113.1"); st != portal.TooManyRequests {
			t.Fatalf("second request of 203.0.113.1: status %d, want 429", st)
		}
		if st := helloFrom(t, addr, "2001:db8:0:1::2"); st != portal.TooManyRequests {
			t.Fatalf("another address of the same /64: status %d, want 429", st)
		}
	})
	t.Run("from an untrusted peer the header is ignored", func(t *testing.T) {
		addr := startHoldingNodeRated(t, func(h *config.HTTP) { limited(h); h.TrustedProxies = []string{"192.0.2.1"} })
		if st := helloFrom(t, addr, "203.0.113.1"); st != portal.SuccessOK {
			t.Fatalf("first request: status %d", st)
		}
		if st := helloFrom(t, addr, "203.0.113.2"); st != portal.TooManyRequests {
			t.Fatalf("a forged X-Forwarded-For from an untrusted peer escaped the limit: status %d", st)
		}
	})
}

// startHoldingNodeRated is startHoldingNode keeping the rate limit that
// edit sets.
func startHoldingNodeRated(t *testing.T, edit func(h *config.HTTP)) string {
	t.Helper()
	c := newTestNode(t, t.TempDir())
	edit(&c.HTTP)
	n, err := New(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	runNode(t, n)
	return n.HTTPAddr()
}

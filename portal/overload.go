package portal

import (
	stdlog "log"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/intermesh/intermesh/internal/metricset"
)

// The HTTP server that serves a portal holds against slow and numerous
// clients with four bounds (Config):
//
//   - time: ReadHeaderTimeout, ReadTimeout (headers and body together: a
//     client trickling its body is cut off), WriteTimeout (handling and
//     answer) and IdleTimeout (keep-alive);
//   - connections: at most MaxConnections open at once (LimitListener); one
//     more is answered 503 ServerOverload and closed;
//   - work: at most MaxInFlight requests handled at once, counted once a
//     request's body has been read; one more is answered 503 ServerOverload;
//   - clients: the per-client rate limiter remembers at most RateClients
//     clients (limits.go).
//
// So the memory a client can make the server hold is bounded by
// MaxConnections × MaxBodyBytes for bodies being read, whatever the clients
// do, and slow connections end after ReadTimeout.

// overloadDescription is the StatusDescription of the 503 answered past
// MaxConnections.
const overloadDescription = "the portal has too many open connections; retry later"

// gate admits at most cap(slots) holders at once, without waiting.
type gate struct{ slots chan struct{} }

func newGate(n int) *gate { return &gate{slots: make(chan struct{}, n)} }

// enter takes a slot if one is free and reports whether it did.
func (g *gate) enter() bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// leave gives back a slot taken by enter.
func (g *gate) leave() { <-g.slots }

// overloadMetrics count what the overload bounds refused:
//
//	intermesh_portal_overload_total{reason="connections"|"in_flight"}  counter
type overloadMetrics struct{ refused *prometheus.CounterVec }

func newOverloadMetrics(reg prometheus.Registerer) (*overloadMetrics, error) {
	s := metricset.New(reg)
	m := &overloadMetrics{refused: s.CounterVec("intermesh_portal_overload_total",
		"Connections and requests answered 503 ServerOverload, by the bound they were over.", "reason")}
	return m, s.Err()
}

// HTTPServer returns the http.Server that serves Handler with the
// configured time limits. Serve it on LimitListener(l) for the connection
// cap. errorLog receives net/http's own complaints; nil means the standard
// logger.
func (s *Server) HTTPServer(errorLog *stdlog.Logger) *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          errorLog,
	}
}

// maxHeaderBytes bounds a request's headers (net/http's default is 1 MiB;
// the protocol needs a few hundred bytes).
const maxHeaderBytes = 64 << 10

// LimitListener wraps l so that at most Config.MaxConnections accepted
// connections are open at once. A connection over the cap is answered
// "503 Service Unavailable" with a JSON MeshResponse (Status 503
// ServerOverload) and closed; at most rejectors of those answers are written
// at once, and each takes at most rejectTime, so refusing holds bounded
// state too. Closing the returned listener closes l.
func (s *Server) LimitListener(l net.Listener) net.Listener {
	return &limitListener{
		Listener: l,
		open:     newGate(s.cfg.MaxConnections),
		rejects:  newGate(rejectors),
		answer:   overloadAnswer(),
		metrics:  s.overload,
	}
}

const (
	// rejectors bounds the over-cap connections being answered at once;
	// past it they are closed without an answer.
	rejectors = 32
	// rejectTime bounds writing the 503 to an over-cap connection and
	// draining what it sent, so that closing it does not reset the answer
	// away.
	rejectTime = time.Second
	// rejectDrain bounds the bytes read from an over-cap connection.
	rejectDrain = 64 << 10
)

// overloadAnswer is the raw HTTP answer written to an over-cap connection.
func overloadAnswer() []byte {
	resp := NewResponse("")
	resp.Response().Status, resp.Response().StatusDescription = ServerOverload, overloadDescription
	body, _ := EncodeResponse("", resp) // a MeshResponse always encodes
	return []byte("HTTP/1.1 503 Service Unavailable\r\n" +
		"Content-Type: application/json\r\n" +
		"Retry-After: 1\r\n" +
		"Connection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + string(body))
}

type limitListener struct {
	net.Listener
	open, rejects *gate
	answer        []byte
	metrics       *overloadMetrics
}

// Accept returns the next connection under the cap; connections over it are
// answered and closed here, never returned.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.enter() {
			return &limitedConn{Conn: c, release: l.open.leave}, nil
		}
		l.metrics.refused.WithLabelValues("connections").Inc()
		if !l.rejects.enter() {
			c.Close()
			continue
		}
		go l.reject(c)
	}
}

// reject answers an over-cap connection 503 and closes it, within rejectTime.
func (l *limitListener) reject(c net.Conn) {
	defer l.rejects.leave()
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(rejectTime))
	if _, err := c.Write(l.answer); err != nil {
		return
	}
	// Half-close, then read what the client sent, so that the close does
	// not reset the connection before the client read the answer.
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
	}
	buf := make([]byte, 4096)
	for n := 0; n < rejectDrain; {
		m, err := c.Read(buf)
		n += m
		if err != nil {
			return
		}
	}
}

// limitedConn gives its slot back when closed (once, however often Close
// is called).
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite half-closes a TCP connection, as net/http does before closing
// one whose request it did not read to the end (so the answer is not reset
// away).
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// overloaded answers 503 ServerOverload for a request over
// MaxInFlight.
func (s *Server) overloaded(tx string) Response {
	s.overload.refused.WithLabelValues("in_flight").Inc()
	return s.fail(tx, Errorf(ServerOverload, "the portal is handling %d requests, its limit; retry later", s.cfg.MaxInFlight))
}

// LimitInFlight wraps a handler of requests without a body to read (the
// operator endpoints, and the node's other read endpoints such as
// tlog-tiles) in the MaxInFlight bound: past it the request is answered 503
// ServerOverload. The protocol endpoint counts itself, after reading the
// body; do not wrap Handler in it.
func (s *Server) LimitInFlight(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.inFlight.enter() {
			s.writeResponse(w, "", s.overloaded(""))
			return
		}
		defer s.inFlight.leave()
		h.ServeHTTP(w, r)
	})
}

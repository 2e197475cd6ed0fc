package portal

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/intermesh/intermesh/log"
	"github.com/intermesh/intermesh/vmap"
)

// WellKnownPath is where the portal protocol is served (seed 001 §7).
const WellKnownPath = "/.well-known/mmm/"

// Log is what the portal needs from the node's log (*log.Log satisfies it).
// Append must be durable when it returns and must run the State's Index in
// the transaction that commits the record.
type Log interface {
	Append(ctx context.Context, rec log.Record) (log.Record, error)
	Get(seq uint64) (log.Record, error)
	Range(ctx context.Context, c log.Constraints) (log.Page, error)
	Size() uint64
	LastTime() time.Time
	DB() *badger.DB
	// Durability is nil while every write was made durable (see
	// log.Log.Durability).
	Durability() error
}

// ReplicaLogs gives the portal the replica logs the node keeps of its peers'
// logs (*log.Log satisfies it), for Get and Transfer.
type ReplicaLogs interface {
	// Replicas lists the origins whose replicas hold records.
	Replicas() ([]string, error)
	// HasReplica reports whether a replica of origin holds records.
	HasReplica(origin string) bool
	// Replica returns the replica log of origin.
	Replica(origin string) (*log.Replica, error)
}

// Checkpoints gives the latest signed checkpoint (package merkle).
type Checkpoints interface {
	// LatestCheckpoint returns the latest checkpoint, a C2SP signed note;
	// an empty note or an error wrapping merkle.ErrNotFound if none was made
	// yet. (*merkle.Tree satisfies it.)
	LatestCheckpoint() ([]byte, error)
}

// Schedule tells when checkpoints are made (the node's epoch ticker).
type Schedule interface {
	// LastCheckpointTime is when the latest checkpoint was made (zero if none).
	LastCheckpointTime() time.Time
	// NextCheckpointTime is when the next one is due.
	NextCheckpointTime() time.Time
	// Epoch is the current round number.
	Epoch() uint64
}

// PeerProofs gives the proof chains of the federation members for Status.
// It comes with the InterMesh; without it Status has none.
type PeerProofs interface {
	// PeerProofs returns the proof chains whose inclusion proofs end in
	// checkpoint, the node's own signed checkpoint that the same Status
	// answer carries (empty if it has none yet).
	PeerProofs(ctx context.Context, checkpoint []byte) ([]PeerProof, error)
}

// EntryProofs proves Get's entries (the node implements it): GetProof and
// the inclusion proof of each entry.
type EntryProofs interface {
	// ProveEntries returns the proof for entries of a log (ProofRequest)
	// and one inclusion proof per index (nil for an index the proof's
	// checkpoint does not cover); a nil proof if the node has no
	// checkpoint of that log yet. The proof carries the lookup proof of
	// each name in the log's map under the checkpoint's map line
	// (GetProof.Map), none if the checkpoint has no map line. A round the
	// node holds no checkpoint of, or no longer the map of, is a NotFound
	// *Error.
	ProveEntries(ctx context.Context, req ProofRequest) (*GetProof, [][][]byte, error)
}

// ProofRequest is what EntryProofs.ProveEntries proves.
type ProofRequest struct {
	// Origin is the log: "" for the node's own, else a member whose
	// replica the node keeps.
	Origin string
	// Round asks for the proof under the log's checkpoint of that round
	// (one of the last few); 0 under its latest.
	Round uint64
	// Indexes are the entries to prove included.
	Indexes []uint64
	// Names are the names to prove in the log's map.
	Names []vmap.Name
}

// EvidenceSource gives the equivocation evidence the node holds, for
// Status. A Deps.Peers that also implements it fills StatusResponse.Evidence.
type EvidenceSource interface {
	Evidence(ctx context.Context) ([]Evidence, error)
}

// Authorizer decides whether a request may use Transfer beyond the
// configured token (e.g. a federation member authenticated some other way).
type Authorizer interface {
	AuthorizeTransfer(r *http.Request) bool
}

// Config holds the portal's limits and credentials. Zero values mean the
// documented defaults.
type Config struct {
	// Service is the portal's DNS name, shown in Hello and on the status
	// page; every AccountProof it accepts names it (AccountProof.Portal).
	// Without it, the log's origin stands in.
	Service string
	// ServiceProfile is the portal's signed ProfileService envelope
	// ([header, payload, trailer]), returned by Hello. Optional; the node
	// derives it from its key (mesh.ServiceProfileFromSeed).
	ServiceProfile json.RawMessage
	// MaxBodyBytes bounds a request body. Default 1 MiB.
	MaxBodyBytes int64
	// MaxEntryBytes bounds one Mesh entry (profile, escrow entry, signed
	// request or result). Default 64 KiB.
	MaxEntryBytes int
	// MaxPageEntries bounds the entries of one Get, ConnectPending,
	// ListMessages or Transfer page. Default 1000.
	MaxPageEntries int
	// MaxPageBytes bounds the payload bytes of one page. Default 4 MiB.
	MaxPageBytes int
	// RateLimit is the sustained requests per second allowed per client IP;
	// 0 means no limit. RateBurst is the burst (default: 2×RateLimit, at least 1).
	RateLimit float64
	RateBurst int
	// AccountMinLength and AccountMaxLength bound account names (defaults 1 and 64).
	AccountMinLength, AccountMaxLength int
	// Domains are the account domains this portal serves (its member's
	// domains in the federation file), lower-case DNS names: CreateAccount
	// of a name NAME@DOMAIN whose DOMAIN is not one of them, or of a name
	// without a domain, is refused (ClientUnauthorized), and
	// ValidateAccount reports such a name as not valid here. Empty (a solo
	// node, a federation file without domains): every acceptable name.
	Domains []string
	// DomainHomes names, for the other members' domains, the member that
	// serves each (e.g. "example.org": "fed/node1 at https://node1.example"),
	// so that a refused CreateAccount says where to go. Optional.
	DomainHomes map[string]string
	// TransferToken, if set, is a bearer token that authorizes Transfer.
	TransferToken string
	// TransferPublic lets anyone use Transfer.
	TransferPublic bool
	// AdminToken, if set, is a bearer token that authorizes DeleteAccount
	// without a signed proof.
	AdminToken string

	// RateClients bounds the clients the rate limiter remembers (an IPv4
	// address or an IPv6 /64 each; the least recently seen is forgotten
	// first). Default 65536.
	RateClients int
	// TrustedProxies are the reverse proxies whose ProxyHeader names the
	// client (for rate limiting); from any other peer the header is ignored.
	TrustedProxies []netip.Prefix
	// ProxyHeader is the header trusted proxies set: X-Forwarded-For (the
	// rightmost address that is not a trusted proxy is the client) or a
	// one-address header such as X-Real-IP. Default X-Forwarded-For.
	ProxyHeader string
	// MaxInFlight bounds the requests handled at once (once their body is
	// read); one more is answered 503 ServerOverload. Default 256.
	MaxInFlight int
	// MaxConnections bounds the connections LimitListener keeps open; one
	// more is answered 503 ServerOverload and closed. Default 1024.
	MaxConnections int
	// ReadHeaderTimeout, ReadTimeout (headers and body), WriteTimeout and
	// IdleTimeout are HTTPServer's time limits. Defaults 10s, 30s, 60s, 120s.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// PageKeySecret is the key that MACs page keys. Optional: nil means a
	// random key, so page keys stop working when the portal restarts.
	PageKeySecret []byte
}

func (c *Config) setDefaults() {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxEntryBytes <= 0 {
		c.MaxEntryBytes = 64 << 10
	}
	if c.MaxPageEntries <= 0 {
		c.MaxPageEntries = 1000
	}
	if c.MaxPageBytes <= 0 {
		c.MaxPageBytes = 4 << 20
	}
	if c.RateBurst <= 0 {
		c.RateBurst = max(1, int(2*c.RateLimit))
	}
	if c.AccountMinLength <= 0 {
		c.AccountMinLength = 1
	}
	if c.AccountMaxLength <= 0 {
		c.AccountMaxLength = 64
	}
	if c.RateClients <= 0 {
		c.RateClients = 65536
	}
	if c.ProxyHeader == "" {
		c.ProxyHeader = "X-Forwarded-For"
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 256
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = 1024
	}
	for _, d := range []struct {
		p   *time.Duration
		def time.Duration
	}{{&c.ReadHeaderTimeout, 10 * time.Second}, {&c.ReadTimeout, 30 * time.Second}, {&c.WriteTimeout, 60 * time.Second}, {&c.IdleTimeout, 120 * time.Second}} {
		if *d.p <= 0 {
			*d.p = d.def
		}
	}
}

// Deps are the components the portal is built on. Log and State are
// required; the rest are optional.
type Deps struct {
	Log         Log
	State       *State
	Checkpoints Checkpoints
	Schedule    Schedule
	Peers       PeerProofs
	Authorizer  Authorizer
	// Proofs proves Get's entries with Full; nil means Get carries no
	// proofs.
	Proofs EntryProofs
	// Replicas are the replica logs of peers whose records Get and Transfer
	// serve besides the node's own (their state is kept by
	// State.ReplicaIndexer). Nil means Log's, if Log implements ReplicaLogs
	// (*log.Log does).
	Replicas ReplicaLogs
	// Registerer receives the portal's metrics; nil means none are exported.
	Registerer prometheus.Registerer
	// Gatherer serves /metrics; nil means /metrics answers 404.
	Gatherer prometheus.Gatherer
	// Logger receives the portal's events; nil means slog.Default().
	Logger *slog.Logger
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
}

// Server serves the Mesh Portal Protocol. It holds no goroutines of its own:
// its lifetime is that of the http.Server serving Handler.
type Server struct {
	cfg   Config
	deps  Deps
	log   Log
	state *State
	// replicas are the peers' replica logs, nil if none; origin is the
	// name of the node's own log, if Log tells it.
	replicas ReplicaLogs
	origin   string
	logger   *slog.Logger
	now      func() time.Time
	limiter  *rateLimiter
	inFlight *gate
	metrics  *metrics
	overload *overloadMetrics
	started  time.Time
	// pageSecret MACs page keys (paging.go).
	pageSecret []byte
}

// New returns a portal server. It binds deps.State to deps.Log's database.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Log == nil || deps.State == nil {
		return nil, errors.New("portal: Deps.Log and Deps.State are required")
	}
	if cfg.RateLimit < 0 {
		return nil, fmt.Errorf("portal: RateLimit is %v, want 0 (no limit) or more", cfg.RateLimit)
	}
	cfg.setDefaults()
	if err := checkDomains(cfg.Domains); err != nil {
		return nil, err
	}
	cfg.Domains = slices.Clone(cfg.Domains)
	if cfg.AccountMinLength > cfg.AccountMaxLength {
		return nil, fmt.Errorf("portal: AccountMinLength %d is over AccountMaxLength %d", cfg.AccountMinLength, cfg.AccountMaxLength)
	}
	s := &Server{cfg: cfg, deps: deps, log: deps.Log, state: deps.State, logger: deps.Logger, now: deps.Clock}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.started = s.now()
	s.pageSecret = cfg.PageKeySecret
	if len(s.pageSecret) == 0 {
		s.pageSecret = make([]byte, 32)
		if _, err := rand.Read(s.pageSecret); err != nil {
			return nil, fmt.Errorf("portal: page key secret: %w", err)
		}
	}
	s.replicas = deps.Replicas
	if rl, ok := deps.Log.(ReplicaLogs); ok && s.replicas == nil {
		s.replicas = rl
	}
	if o, ok := deps.Log.(interface{ Origin() string }); ok {
		s.origin = o.Origin()
	}
	s.state.Bind(deps.Log.DB())
	var err error
	if s.limiter, err = newRateLimiter(cfg.RateLimit, cfg.RateBurst, cfg.RateClients); err != nil {
		return nil, err
	}
	s.inFlight = newGate(cfg.MaxInFlight)
	if s.metrics, err = newMetrics(deps.Registerer, deps.Log, deps.Schedule); err != nil {
		return nil, err
	}
	if s.overload, err = newOverloadMetrics(deps.Registerer); err != nil {
		return nil, fmt.Errorf("portal: registering metrics: %w", err)
	}
	return s, nil
}

// Handler returns the HTTP handler: POST /.well-known/mmm/ (the protocol),
// GET /checkpoint, /healthz, /metrics and the status page at /.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(WellKnownPath, s.serveProtocol)
	mux.HandleFunc(strings.TrimSuffix(WellKnownPath, "/"), s.serveProtocol)
	// The operator endpoints count towards MaxInFlight; /healthz, which
	// does no work, does not.
	mux.Handle("GET /checkpoint", s.LimitInFlight(http.HandlerFunc(s.serveCheckpoint)))
	mux.HandleFunc("GET /healthz", s.serveHealth)
	mux.Handle("GET /metrics", s.LimitInFlight(s.metricsHandler()))
	mux.Handle("GET /{$}", s.LimitInFlight(http.HandlerFunc(s.serveStatusPage)))
	mux.Handle("GET /status.json", s.LimitInFlight(http.HandlerFunc(s.serveStatusJSON)))
	return mux
}

// serveProtocol answers one portal transaction.
func (s *Server) serveProtocol(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	tx, resp := s.transact(w, r)
	s.metrics.observe(tx, resp.Response().Status, s.now().Sub(start))
	s.writeResponse(w, tx, resp)
}

// writeResponse writes a transaction's response; a 503 asks the client to
// retry after a second.
func (s *Server) writeResponse(w http.ResponseWriter, tx string, resp Response) {
	status := resp.Response().Status
	body, err := EncodeResponse(tx, resp)
	if err != nil {
		s.logger.Error("portal: encoding response", "transaction", tx, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if status == ServerOverload {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(HTTPStatus(status))
	_, _ = w.Write(body)
}

// transact reads, decodes, authorizes and runs a request; it always returns
// a response with Status set.
func (s *Server) transact(w http.ResponseWriter, r *http.Request) (string, Response) {
	if client := s.client(r); !s.limiter.allow(client, s.now()) {
		return "", s.fail("", Errorf(TooManyRequests, "too many requests from %s: the limit is %g per second", client, s.cfg.RateLimit))
	}
	if r.Method != http.MethodPost {
		return "", s.fail("", Errorf(ClientBadRequest, "the portal protocol uses POST, not %s", r.Method))
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return "", s.fail("", Errorf(TooLarge, "request body is over the limit of %d bytes", s.cfg.MaxBodyBytes))
		}
		return "", s.fail("", Errorf(ClientBadRequest, "reading request body: %w", err))
	}
	tx, req, err := DecodeRequest(body)
	if err != nil {
		return tx, s.fail(tx, err)
	}
	if !s.inFlight.enter() {
		return tx, s.overloaded(tx)
	}
	defer s.inFlight.leave()
	resp, err := s.dispatch(r, tx, req)
	if err != nil {
		return tx, s.fail(tx, err)
	}
	if resp.Response().Status == 0 {
		resp.Response().Status = SuccessOK
	}
	if resp.Response().StatusDescription == "" {
		resp.Response().StatusDescription = StatusText(resp.Response().Status)
	}
	return tx, resp
}

func (s *Server) dispatch(r *http.Request, tx string, req any) (Response, error) {
	ctx := r.Context()
	switch req := req.(type) {
	case *HelloRequest:
		return s.hello(req), nil
	case *ValidateRequest:
		return s.validateAccount(ctx, req)
	case *CreateRequest:
		return s.createAccount(ctx, req)
	case *DeleteRequest:
		return s.deleteAccount(ctx, r, req)
	case *GetRequest:
		return s.get(ctx, req)
	case *PublishRequest:
		return s.publish(ctx, req)
	case *StatusRequest:
		return s.status(ctx)
	case *ConnectStartRequest:
		return s.connectStart(ctx, req)
	case *ConnectStatusRequest:
		return s.connectStatus(req)
	case *ConnectPendingRequest:
		return s.connectPending(req)
	case *ConnectCompleteRequest:
		return s.connectComplete(ctx, req)
	case *TransferRequest:
		return s.transfer(ctx, r, req)
	case *ListMessagesRequest:
		return s.listMessages(req)
	}
	return nil, Errorf(ClientBadRequest, "unknown transaction %q", tx)
}

// fail turns an error into the transaction's response. An *Error keeps its
// status and description; anything else is a ServerInternal whose cause is
// logged, not sent.
func (s *Server) fail(tx string, err error) Response {
	resp := NewResponse(tx)
	var pe *Error
	switch {
	case errors.As(err, &pe):
		resp.Response().Status, resp.Response().StatusDescription = pe.Status, pe.Description
	case errors.Is(err, log.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		resp.Response().Status, resp.Response().StatusDescription = ServerOverload, "the portal is shutting down or the request was cancelled"
	case errors.Is(err, log.ErrNotDurable):
		s.logger.Error("portal: the store failed to make a write durable; restart the node", "transaction", tx, "err", err)
		resp.Response().Status, resp.Response().StatusDescription = ServerOverload, "the portal cannot accept writes: its store failed to make a write durable"
	case errors.Is(err, log.ErrDiskFull):
		s.logger.Error("portal: log is out of disk space", "transaction", tx, "err", err)
		resp.Response().Status, resp.Response().StatusDescription = ServerOverload, "the portal cannot accept writes: out of disk space"
	default:
		s.logger.Error("portal: transaction failed", "transaction", tx, "err", err)
		resp.Response().Status, resp.Response().StatusDescription = ServerInternal, StatusText(ServerInternal)
	}
	return resp
}

// bearer reports whether the request carries "Authorization: Bearer token".
// The comparison takes the same time whatever the presented token is: both
// are hashed first, so neither their contents nor their lengths leak.
func bearer(r *http.Request, token string) bool {
	if token == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	a, b := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

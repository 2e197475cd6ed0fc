package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// FileName is the name of the config file inside a node's directory.
const FileName = "meshd.toml"

// KeyFileName is the name of the node key file inside a node's directory.
const KeyFileName = "node.key"

// Config is a node's configuration. Its zero value is not usable: start from
// Default and apply the file, the environment and flags (Load does all three
// but the flags, which belong to the command).
type Config struct {
	// Dir is the node's directory: config file, key and data. Set by the
	// command (--dir), never read from the file.
	Dir string `toml:"-"`

	// Origin is the node's log name: the first line of its checkpoints and
	// the key name of its signatures. Required; `meshd init` picks one.
	Origin string `toml:"origin"`

	// HTTP configures the portal's HTTP listener and its limits.
	HTTP HTTP `toml:"http"`

	// Epoch configures the checkpoint schedule.
	Epoch Epoch `toml:"epoch"`

	// Log configures the daemon's own logs.
	Log Logging `toml:"log"`

	// Store configures the Badger store.
	Store Store `toml:"store"`

	// P2P configures the InterMesh side (libp2p and the federation).
	P2P P2P `toml:"p2p"`
}

// HTTP configures the portal's HTTP listener and its limits.
type HTTP struct {
	// Listen is the address the portal serves on. Default 127.0.0.1:8080.
	Listen string `toml:"listen"`
	// MaxBodyBytes is the largest request body accepted. Default 1 MiB.
	MaxBodyBytes int64 `toml:"max_body_bytes"`
	// RatePerSecond is the sustained request rate allowed per client IP;
	// 0 disables rate limiting. Default 200.
	RatePerSecond float64 `toml:"rate_per_second"`
	// RateBurst is the burst allowed per client IP. Default 400.
	RateBurst int `toml:"rate_burst"`
	// TransferToken, when set, is the bearer token that authorizes Transfer.
	// Optional.
	TransferToken string `toml:"transfer_token"`
	// TransferPublic makes Transfer available to anyone. Default false.
	TransferPublic bool `toml:"transfer_public"`
	// AdminToken, when set, is the operator's bearer token: a DeleteAccount
	// carrying it needs no proof signed by the account's profile. At least
	// 16 characters. Optional; keep it out of a world-readable file.
	AdminToken string `toml:"admin_token"`

	// DebugListen, when set, is a second address on which the node serves
	// Go's profiler (net/http/pprof, under /debug/pprof/) and nothing else,
	// without authentication: bind it to 127.0.0.1. Optional; off by
	// default.
	DebugListen string `toml:"debug_listen"`

	// ReadHeaderTimeout bounds reading a request's headers. Default 10s.
	ReadHeaderTimeout Duration `toml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, headers and body: a client
	// that trickles its body is cut off. Default 30s.
	ReadTimeout Duration `toml:"read_timeout"`
	// WriteTimeout bounds handling a request and writing its answer, from
	// the end of its headers. Default 60s.
	WriteTimeout Duration `toml:"write_timeout"`
	// IdleTimeout closes a keep-alive connection that sends no request for
	// this long. Default 120s.
	IdleTimeout Duration `toml:"idle_timeout"`
	// MaxConnections is the most client connections open at once; one more
	// is answered 503 ServerOverload and closed. Default 1024.
	MaxConnections int `toml:"max_connections"`
	// MaxInFlight is the most requests handled at once (after their body
	// was read); one more is answered 503 ServerOverload. Default 256.
	MaxInFlight int `toml:"max_in_flight"`
	// RateClients bounds the clients the rate limiter remembers (an IPv4
	// address or an IPv6 /64 each); past it the least recently seen client
	// is forgotten. Default 65536 (a few MiB).
	RateClients int `toml:"rate_clients"`
	// TrustedProxies are the addresses (IPs or CIDR prefixes) of reverse
	// proxies whose ProxyHeader names the client. Empty: the header is
	// ignored and the client is the connection's peer. Optional.
	TrustedProxies []string `toml:"trusted_proxies"`
	// ProxyHeader is the header a trusted proxy sets: X-Forwarded-For (the
	// rightmost address that is not a trusted proxy is the client) or a
	// header holding one address, such as X-Real-IP. Default
	// X-Forwarded-For.
	ProxyHeader string `toml:"proxy_header"`
}

// Epoch configures the checkpoint schedule.
type Epoch struct {
	// Period is the length of a round: round r covers
	// [r*Period, (r+1)*Period) in Unix time, on every node alike.
	// Default 10s; at least 1s.
	Period Duration `toml:"period"`
}

// Logging configures the daemon's own logs.
type Logging struct {
	// Level is debug, info, warn or error. Default info.
	Level string `toml:"level"`
	// Format is text or json. Default text.
	Format string `toml:"format"`
}

// Store configures the Badger store.
type Store struct {
	// MaxBatch is the most records one group commit may hold. Default 1024.
	MaxBatch int `toml:"max_batch"`
	// MappedLimitMB bounds the node's resident memory mapped from files
	// (RssFile in /proc/self/status), most of it Badger's table files,
	// which Badger memory-maps and the kernel otherwise reclaims only under
	// memory pressure: when it is above this many MiB (checked every
	// 250 ms), the node asks the kernel to reclaim the pages of Badger's
	// tables (MADV_PAGEOUT; Linux 5.4 or later), which later reads fetch
	// from disk again. 0 leaves them to the kernel. Default
	// DefaultMappedLimitMB.
	MappedLimitMB int `toml:"mapped_limit_mb"`
	// MemoryLimitMB is the Go runtime's soft memory limit, in MiB, that
	// `meshd run` sets for its process (debug.SetMemoryLimit) unless the
	// GOMEMLIMIT environment variable is set, which wins: above it the
	// garbage collector runs more often and returns freed memory to the
	// kernel sooner. It bounds garbage, not live data: if the live heap is
	// above it, the collector may take up to half the CPU. 0 sets no limit.
	// MemoryLimitAuto (-1, the default) sets LoneMemoryLimitMB for a node
	// without a federation file and MemberMemoryLimitMB for a federation
	// member, which also holds its peers' replicas and gossip, uses the
	// large profile, and whose live heap under load is above
	// LoneMemoryLimitMB. The limit is per process, so nodes sharing one
	// process (an in-process testnet) do not set it.
	MemoryLimitMB int `toml:"memory_limit_mb"`
	// Profile chooses Badger's options (log.Tuning): "small" bounds the
	// memory Badger allocates (8 MiB memtables, writes wait when level 0
	// holds 3 tables); "large" spends memory to save CPU per write under a
	// sustained load (32 MiB memtables, level 0 takes up to 8 tables). Both
	// commit every write durably. "auto" (the default) is small for a node
	// without a federation file and large for a federation member, which
	// stores every member's writes. See StoreProfile.
	Profile string `toml:"profile"`
}

// Store profiles (store.profile).
const (
	ProfileAuto  = "auto"
	ProfileSmall = "small"
	ProfileLarge = "large"
)

// StoreProfile resolves store.profile: ProfileSmall or ProfileLarge, with
// ProfileAuto chosen by whether the node has a federation file.
func (c Config) StoreProfile() string {
	switch {
	case c.Store.Profile != ProfileAuto && c.Store.Profile != "":
		return c.Store.Profile
	case c.P2P.Federation == "":
		return ProfileSmall
	}
	return ProfileLarge
}

// P2P configures the InterMesh side of the node.
type P2P struct {
	// Listen are the libp2p listen multiaddresses. Default
	// /ip4/127.0.0.1/tcp/4001 and /ip4/127.0.0.1/udp/4001/quic-v1.
	Listen []string `toml:"listen"`
	// Federation is the path of the federation file, relative to the node's
	// directory unless absolute. Empty runs the node alone. Optional.
	Federation string `toml:"federation"`
}

// Duration is a time.Duration written as a Go duration string ("10s").
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.Duration.String()), nil }

// Default returns the default configuration for a node in dir.
func Default(dir string) Config {
	return Config{
		Dir: dir,
		HTTP: HTTP{
			Listen:            "127.0.0.1:8080",
			MaxBodyBytes:      1 << 20,
			RatePerSecond:     200,
			RateBurst:         400,
			ReadHeaderTimeout: Duration{10 * time.Second},
			ReadTimeout:       Duration{30 * time.Second},
			WriteTimeout:      Duration{60 * time.Second},
			IdleTimeout:       Duration{120 * time.Second},
			MaxConnections:    1024,
			MaxInFlight:       256,
			RateClients:       65536,
			ProxyHeader:       "X-Forwarded-For",
		},
		Epoch: Epoch{Period: Duration{10 * time.Second}},
		Log:   Logging{Level: "info", Format: "text"},
		Store: Store{MaxBatch: 1024, MemoryLimitMB: MemoryLimitAuto, MappedLimitMB: DefaultMappedLimitMB, Profile: ProfileAuto},
		P2P: P2P{Listen: []string{
			"/ip4/127.0.0.1/tcp/4001",
			"/ip4/127.0.0.1/udp/4001/quic-v1",
		}},
	}
}

// Load reads dir's config file over the defaults, then applies the
// environment (see Env), and validates the result. A missing file is an
// error that says to run `meshd init`.
func Load(dir string, env func(string) string) (Config, error) {
	c := Default(dir)
	path := filepath.Join(dir, FileName)
	md, err := toml.DecodeFile(path, &c)
	if errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("config: %s does not exist (run `meshd init --dir %s` first): %w", path, dir, err)
	}
	if err != nil {
		return c, fmt.Errorf("config: %s: %w", path, err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		keys := make([]string, len(un))
		for i, k := range un {
			keys[i] = k.String()
		}
		return c, fmt.Errorf("config: %s: unknown setting(s) %s", path, strings.Join(keys, ", "))
	}
	if err := c.ApplyEnv(env); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// envVars maps each environment variable to the setting it overrides.
var envVars = []struct {
	name string
	set  func(c *Config, v string) error
}{
	{"MESHD_ORIGIN", func(c *Config, v string) error { c.Origin = v; return nil }},
	{"MESHD_HTTP_LISTEN", func(c *Config, v string) error { c.HTTP.Listen = v; return nil }},
	{"MESHD_HTTP_MAX_BODY_BYTES", func(c *Config, v string) error { return parseInt64(v, &c.HTTP.MaxBodyBytes) }},
	{"MESHD_HTTP_RATE_PER_SECOND", func(c *Config, v string) error { return parseFloat(v, &c.HTTP.RatePerSecond) }},
	{"MESHD_HTTP_RATE_BURST", func(c *Config, v string) error { return parseInt(v, &c.HTTP.RateBurst) }},
	{"MESHD_HTTP_TRANSFER_TOKEN", func(c *Config, v string) error { c.HTTP.TransferToken = v; return nil }},
	{"MESHD_HTTP_TRANSFER_PUBLIC", func(c *Config, v string) error { return parseBool(v, &c.HTTP.TransferPublic) }},
	{"MESHD_HTTP_ADMIN_TOKEN", func(c *Config, v string) error { c.HTTP.AdminToken = v; return nil }},
	{"MESHD_HTTP_DEBUG_LISTEN", func(c *Config, v string) error { c.HTTP.DebugListen = v; return nil }},
	{"MESHD_HTTP_READ_HEADER_TIMEOUT", func(c *Config, v string) error { return c.HTTP.ReadHeaderTimeout.UnmarshalText([]byte(v)) }},
	{"MESHD_HTTP_READ_TIMEOUT", func(c *Config, v string) error { return c.HTTP.ReadTimeout.UnmarshalText([]byte(v)) }},
	{"MESHD_HTTP_WRITE_TIMEOUT", func(c *Config, v string) error { return c.HTTP.WriteTimeout.UnmarshalText([]byte(v)) }},
	{"MESHD_HTTP_IDLE_TIMEOUT", func(c *Config, v string) error { return c.HTTP.IdleTimeout.UnmarshalText([]byte(v)) }},
	{"MESHD_HTTP_MAX_CONNECTIONS", func(c *Config, v string) error { return parseInt(v, &c.HTTP.MaxConnections) }},
	{"MESHD_HTTP_MAX_IN_FLIGHT", func(c *Config, v string) error { return parseInt(v, &c.HTTP.MaxInFlight) }},
	{"MESHD_HTTP_RATE_CLIENTS", func(c *Config, v string) error { return parseInt(v, &c.HTTP.RateClients) }},
	{"MESHD_HTTP_TRUSTED_PROXIES", func(c *Config, v string) error { c.HTTP.TrustedProxies = strings.Split(v, ","); return nil }},
	{"MESHD_HTTP_PROXY_HEADER", func(c *Config, v string) error { c.HTTP.ProxyHeader = v; return nil }},
	{"MESHD_EPOCH_PERIOD", func(c *Config, v string) error { return c.Epoch.Period.UnmarshalText([]byte(v)) }},
	{"MESHD_LOG_LEVEL", func(c *Config, v string) error { c.Log.Level = v; return nil }},
	{"MESHD_LOG_FORMAT", func(c *Config, v string) error { c.Log.Format = v; return nil }},
	{"MESHD_STORE_MAX_BATCH", func(c *Config, v string) error { return parseInt(v, &c.Store.MaxBatch) }},
	{"MESHD_STORE_MAPPED_LIMIT_MB", func(c *Config, v string) error { return parseInt(v, &c.Store.MappedLimitMB) }},
	{"MESHD_STORE_MEMORY_LIMIT_MB", func(c *Config, v string) error { return parseInt(v, &c.Store.MemoryLimitMB) }},
	{"MESHD_STORE_PROFILE", func(c *Config, v string) error { c.Store.Profile = v; return nil }},
	{"MESHD_P2P_LISTEN", func(c *Config, v string) error { c.P2P.Listen = strings.Split(v, ","); return nil }},
	{"MESHD_P2P_FEDERATION", func(c *Config, v string) error { c.P2P.Federation = v; return nil }},
}

// EnvNames lists the environment variables that override settings.
func EnvNames() []string {
	names := make([]string, len(envVars))
	for i, e := range envVars {
		names[i] = e.name
	}
	return names
}

// ApplyEnv overrides settings from environment variables named MESHD_*
// (see EnvNames); env is os.Getenv or a stand-in. Empty values are ignored.
func (c *Config) ApplyEnv(env func(string) string) error {
	if env == nil {
		return nil
	}
	for _, e := range envVars {
		if v := env(e.name); v != "" {
			if err := e.set(c, v); err != nil {
				return fmt.Errorf("config: environment %s=%q: %w", e.name, v, err)
			}
		}
	}
	return nil
}

func parseInt(v string, p *int) error {
	n, err := strconv.Atoi(v)
	*p = n
	return err
}

func parseInt64(v string, p *int64) error {
	n, err := strconv.ParseInt(v, 10, 64)
	*p = n
	return err
}

func parseFloat(v string, p *float64) error {
	n, err := strconv.ParseFloat(v, 64)
	*p = n
	return err
}

func parseBool(v string, p *bool) error {
	b, err := strconv.ParseBool(v)
	*p = b
	return err
}

// Validate checks every setting and names the first one that is wrong.
func (c *Config) Validate() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("config: %s: %s", field, fmt.Sprintf(format, a...))
	}
	switch {
	case c.Dir == "":
		return bad("dir", "is empty")
	case c.Origin == "":
		return bad("origin", "is empty (it names this node's log in its checkpoints)")
	case strings.ContainsAny(c.Origin, " \t\n+") || !isPrint(c.Origin):
		return bad("origin", "%q must be printable, without spaces or '+'", c.Origin)
	case c.HTTP.MaxBodyBytes < 1024:
		return bad("http.max_body_bytes", "%d is below the minimum of 1024", c.HTTP.MaxBodyBytes)
	case c.HTTP.RatePerSecond < 0:
		return bad("http.rate_per_second", "%g is negative", c.HTTP.RatePerSecond)
	case c.HTTP.RatePerSecond > 0 && c.HTTP.RateBurst < 1:
		return bad("http.rate_burst", "%d must be at least 1 when rate limiting is on", c.HTTP.RateBurst)
	case c.HTTP.AdminToken != "" && len(c.HTTP.AdminToken) < MinAdminTokenLength:
		return bad("http.admin_token", "is %d characters long, below the minimum of %d (use a long random secret)", len(c.HTTP.AdminToken), MinAdminTokenLength)
	case c.HTTP.ReadHeaderTimeout.Duration <= 0:
		return bad("http.read_header_timeout", "%s must be positive", c.HTTP.ReadHeaderTimeout.Duration)
	case c.HTTP.ReadTimeout.Duration < c.HTTP.ReadHeaderTimeout.Duration:
		return bad("http.read_timeout", "%s is below http.read_header_timeout (%s): it bounds headers and body together", c.HTTP.ReadTimeout.Duration, c.HTTP.ReadHeaderTimeout.Duration)
	case c.HTTP.WriteTimeout.Duration <= 0:
		return bad("http.write_timeout", "%s must be positive", c.HTTP.WriteTimeout.Duration)
	case c.HTTP.IdleTimeout.Duration <= 0:
		return bad("http.idle_timeout", "%s must be positive", c.HTTP.IdleTimeout.Duration)
	case c.HTTP.MaxConnections < 1:
		return bad("http.max_connections", "%d must be at least 1", c.HTTP.MaxConnections)
	case c.HTTP.MaxInFlight < 1:
		return bad("http.max_in_flight", "%d must be at least 1", c.HTTP.MaxInFlight)
	case c.HTTP.RateClients < 1:
		return bad("http.rate_clients", "%d must be at least 1", c.HTTP.RateClients)
	case len(c.HTTP.TrustedProxies) > 0 && !validHeaderName(c.HTTP.ProxyHeader):
		return bad("http.proxy_header", "%q is not a header name", c.HTTP.ProxyHeader)
	case c.Epoch.Period.Duration < time.Second:
		return bad("epoch.period", "%s is below the minimum of 1s", c.Epoch.Period.Duration)
	case c.Epoch.Period.Duration%time.Second != 0:
		return bad("epoch.period", "%s must be a whole number of seconds", c.Epoch.Period.Duration)
	case c.Store.MaxBatch < 1 || c.Store.MaxBatch > 65536:
		return bad("store.max_batch", "%d is outside 1..65536", c.Store.MaxBatch)
	case c.Store.MappedLimitMB < 0 || c.Store.MappedLimitMB > 1<<20:
		return bad("store.mapped_limit_mb", "%d is outside 0..1048576 (0 turns it off)", c.Store.MappedLimitMB)
	case c.Store.MemoryLimitMB != 0 && c.Store.MemoryLimitMB != MemoryLimitAuto &&
		(c.Store.MemoryLimitMB < MinMemoryLimitMB || c.Store.MemoryLimitMB > 1<<20):
		return bad("store.memory_limit_mb", "%d is outside %d..1048576 (0 sets no limit, -1 chooses by whether the node has a federation)",
			c.Store.MemoryLimitMB, MinMemoryLimitMB)
	case c.Store.Profile != ProfileAuto && c.Store.Profile != ProfileSmall && c.Store.Profile != ProfileLarge:
		return bad("store.profile", "%q is not one of auto, small, large", c.Store.Profile)
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		return bad("http.listen", "%q is not host:port: %v", c.HTTP.Listen, err)
	}
	if c.HTTP.DebugListen != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.DebugListen); err != nil {
			return bad("http.debug_listen", "%q is not host:port: %v", c.HTTP.DebugListen, err)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return bad("log.format", "%q is not text or json", c.Log.Format)
	}
	if _, err := c.HTTP.TrustedProxyPrefixes(); err != nil {
		return err
	}
	for i, a := range c.P2P.Listen {
		if !strings.HasPrefix(a, "/") {
			return bad(fmt.Sprintf("p2p.listen[%d]", i), "%q is not a multiaddress (e.g. /ip4/127.0.0.1/tcp/4001)", a)
		}
	}
	return nil
}

// MinAdminTokenLength is the shortest http.admin_token accepted.
const MinAdminTokenLength = 16

// MinMemoryLimitMB is the smallest store.memory_limit_mb other than 0 and -1: below
// it a node's own live heap (memtables, compactions) is over the limit and
// the garbage collector would run without pause.
const MinMemoryLimitMB = 32

// MemoryLimitAuto is the default store.memory_limit_mb: LoneMemoryLimitMB
// for a node without a federation file and MemberMemoryLimitMB for a
// federation member.
const MemoryLimitAuto = -1

// LoneMemoryLimitMB and DefaultMappedLimitMB are the memory limits with
// which one node grown to 1,000,000 records stays below 100 MB of anonymous
// memory and 500 MB of RSS (README, "Performance").
const (
	LoneMemoryLimitMB    = 64
	DefaultMappedLimitMB = 128
)

// MemberMemoryLimitMB is the memory limit of a federation member with
// store.memory_limit_mb -1: with it, 8 members with the large store profile
// under 500 writes/s peaked at 289 MiB of anonymous memory instead of
// 558 MiB, at about the same throughput (README, "Performance").
const MemberMemoryLimitMB = 320

// TrustedProxyPrefixes parses TrustedProxies: each an IP address (a
// one-address prefix) or a CIDR prefix.
func (h *HTTP) TrustedProxyPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range h.TrustedProxies {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("config: http.trusted_proxies[%d]: %q is neither an IP address nor a CIDR prefix", i, s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// validHeaderName reports whether s is a non-empty HTTP header name (an RFC
// 9110 token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)
		if !ok {
			return false
		}
	}
	return true
}

func isPrint(s string) bool {
	for _, r := range s {
		if r < 0x21 || r == 0x7f {
			return false
		}
	}
	return true
}

// DataDir is where the node's Badger store lives.
func (c *Config) DataDir() string { return filepath.Join(c.Dir, "data") }

// KeyPath is the path of the node's key file.
func (c *Config) KeyPath() string { return filepath.Join(c.Dir, KeyFileName) }

// FederationPath is the federation file's path, or "" if none is set.
func (c *Config) FederationPath() string {
	if c.P2P.Federation == "" || filepath.IsAbs(c.P2P.Federation) {
		return c.P2P.Federation
	}
	return filepath.Join(c.Dir, c.P2P.Federation)
}

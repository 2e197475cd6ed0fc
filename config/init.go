package config

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"text/template"
)

// ErrExists is returned by Init when the directory already holds a node.
var ErrExists = errors.New("config: node directory already initialized")

// InitOptions are the choices `meshd init` makes for a new node.
type InitOptions struct {
	// Origin is the node's log name; empty picks "meshd-<8 hex digits of
	// the key>".
	Origin string
	// HTTPListen overrides the default portal address. Optional.
	HTTPListen string
	// P2PListen overrides the default libp2p addresses. Optional.
	P2PListen []string
	// Federation is the federation file path to write into the config.
	// Optional.
	Federation string
	// EpochPeriod overrides the default round length. Optional.
	EpochPeriod Duration
	// TransferPublic opens Transfer to anyone (testnets, public logs).
	TransferPublic bool
	// Key is the node key; nil generates one.
	Key ed25519.PrivateKey
	// AdminToken is the operator's bearer token (http.admin_token).
	// Optional.
	AdminToken string
}

// Init creates a node directory: a fresh Ed25519 node key (mode 0600), a
// config file with every setting and its default commented, and an empty
// data directory. It refuses to overwrite an existing node.
func Init(dir string, o InitOptions) (Config, error) {
	c := Default(dir)
	if _, err := os.Stat(filepath.Join(dir, FileName)); err == nil {
		return c, fmt.Errorf("%w: %s exists", ErrExists, filepath.Join(dir, FileName))
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFileName)); err == nil {
		return c, fmt.Errorf("%w: %s exists", ErrExists, filepath.Join(dir, KeyFileName))
	}
	key := o.Key
	if key == nil {
		var err error
		if _, key, err = ed25519.GenerateKey(rand.Reader); err != nil {
			return c, fmt.Errorf("config: generating the node key: %w", err)
		}
	}
	c.Origin = o.Origin
	if c.Origin == "" {
		sum := sha256.Sum256(key.Public().(ed25519.PublicKey))
		c.Origin = "meshd-" + hex.EncodeToString(sum[:4])
	}
	if o.HTTPListen != "" {
		c.HTTP.Listen = o.HTTPListen
	}
	if len(o.P2PListen) > 0 {
		c.P2P.Listen = o.P2PListen
	}
	if o.EpochPeriod.Duration != 0 {
		c.Epoch.Period = o.EpochPeriod
	}
	c.P2P.Federation = o.Federation
	c.HTTP.TransferPublic = o.TransferPublic
	c.HTTP.AdminToken = o.AdminToken
	if err := c.Validate(); err != nil {
		return c, err
	}
	if err := os.MkdirAll(c.DataDir(), 0o700); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	if err := WriteKey(c.KeyPath(), key); err != nil {
		return c, err
	}
	var buf bytes.Buffer
	if err := fileTemplate.Execute(&buf, c); err != nil {
		return c, fmt.Errorf("config: rendering %s: %w", FileName, err)
	}
	// 0600: the file may come to hold http.transfer_token and
	// http.admin_token.
	if err := os.WriteFile(filepath.Join(dir, FileName), buf.Bytes(), 0o600); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

// WriteKey stores an Ed25519 private key as a PKCS #8 PEM file, mode 0600,
// refusing to overwrite an existing file.
func WriteKey(path string, key ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("config: encoding the node key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("config: writing the node key: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return fmt.Errorf("config: writing the node key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("config: writing the node key %s: %w", path, err)
	}
	return f.Close()
}

// LoadKey reads the Ed25519 node key written by WriteKey.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: reading the node key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("config: %s: not a PEM \"PRIVATE KEY\" file", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	ed, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("config: %s: a %T, want an Ed25519 key", path, k)
	}
	return ed, nil
}

var fileTemplate = template.Must(template.New(FileName).Parse(`# meshd configuration. Every setting is shown; commented ones hold their
# default. Environment variables MESHD_<SECTION>_<KEY> (e.g. MESHD_HTTP_LISTEN)
# override this file, and command-line flags override both.

# The node's log name: the first line of its checkpoints.
origin = "{{.Origin}}"

[http]
# Address the portal serves on (POST /.well-known/mmm/, /checkpoint, /metrics).
listen = "{{.HTTP.Listen}}"
# Largest request body accepted, in bytes.
# max_body_bytes = {{.HTTP.MaxBodyBytes}}
# Requests per second allowed per client IP (0 turns the limit off), and burst.
# rate_per_second = {{.HTTP.RatePerSecond}}
# rate_burst = {{.HTTP.RateBurst}}
# Bearer token that authorizes Transfer; and whether Transfer is open to all.
# transfer_token = ""
transfer_public = {{.HTTP.TransferPublic}}
# The operator's bearer token: DeleteAccount with it needs no signed proof
# (meshctl account delete NAME --token T). At least 16 characters.
{{if .HTTP.AdminToken}}admin_token = "{{.HTTP.AdminToken}}"{{else}}# admin_token = ""{{end}}
# Time limits: request headers; whole request (headers and body: a client
# trickling its body is cut off); handling plus answer; idle keep-alive.
# read_header_timeout = "{{.HTTP.ReadHeaderTimeout}}"
# read_timeout = "{{.HTTP.ReadTimeout}}"
# write_timeout = "{{.HTTP.WriteTimeout}}"
# idle_timeout = "{{.HTTP.IdleTimeout}}"
# Connections open at once and requests handled at once; past either the
# client gets 503 ServerOverload.
# max_connections = {{.HTTP.MaxConnections}}
# max_in_flight = {{.HTTP.MaxInFlight}}
# Clients the rate limiter remembers (IPv4 address or IPv6 /64 each).
# rate_clients = {{.HTTP.RateClients}}
# Reverse proxies (IPs or CIDR prefixes) whose proxy_header names the
# client; the header is ignored from anyone else.
# trusted_proxies = []
# proxy_header = "{{.HTTP.ProxyHeader}}"

[epoch]
# Length of a round; every node closes round r at the same wall-clock time.
period = "{{.Epoch.Period}}"

[log]
# level = "{{.Log.Level}}"    # debug, info, warn, error
# format = "{{.Log.Format}}"  # text or json

[store]
# Most records committed in one group commit.
# max_batch = {{.Store.MaxBatch}}
# Above this many MiB of file-mapped resident memory, have the kernel reclaim
# the pages of Badger's memory-mapped tables (0 leaves them to the kernel).
# mapped_limit_mb = {{.Store.MappedLimitMB}}
# The Go runtime's soft memory limit in MiB (GOMEMLIMIT in the environment
# wins; 0 sets none; -1: 64 for a node without a federation, 320 for a
# federation member).
# memory_limit_mb = {{.Store.MemoryLimitMB}}
# Badger's options: small (least memory), large (less CPU per write under a
# sustained load, more memory), or auto: small without a federation, large
# for a federation member.
# profile = "{{.Store.Profile}}"

[p2p]
# libp2p listen addresses.
listen = [{{range $i, $a := .P2P.Listen}}{{if $i}}, {{end}}"{{$a}}"{{end}}]
# The federation file shared by all members (relative to this directory);
# empty runs this node alone.
federation = "{{.P2P.Federation}}"
`))

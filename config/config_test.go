package config

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestInitThenLoadGivesTheDefaultsAndTheChosenOrigin(t *testing.T) {
	dir := t.TempDir()
	want, err := Init(dir, InitOptions{Origin: "example.org/node0", HTTPListen: "127.0.0.1:9000"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Origin != "example.org/node0" || got.HTTP.Listen != "127.0.0.1:9000" {
		t.Errorf("loaded origin %q listen %q", got.Origin, got.HTTP.Listen)
	}
	if got.Epoch.Period != want.Epoch.Period || got.HTTP.MaxBodyBytes != want.HTTP.MaxBodyBytes ||
		strings.Join(got.P2P.Listen, ",") != strings.Join(want.P2P.Listen, ",") {
		t.Errorf("loaded %+v, want %+v", got, want)
	}
	// The key, and the config file that may hold tokens, are the owner's alone.
	for _, name := range []string{KeyFileName, FileName} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, st.Mode().Perm())
		}
	}
	if _, err := LoadKey(filepath.Join(dir, KeyFileName)); err != nil {
		t.Error(err)
	}
}

func TestInitRefusesToOverwriteANode(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Init(dir, InitOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("second Init: %v, want ErrExists", err)
	}
}

func TestInitPicksAnOriginFromTheKey(t *testing.T) {
	c, err := Init(t.TempDir(), InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.Origin, "meshd-") || len(c.Origin) != len("meshd-")+8 {
		t.Errorf("origin %q", c.Origin)
	}
}

func TestEnvironmentOverridesTheFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, InitOptions{Origin: "a"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"MESHD_HTTP_LISTEN":     "127.0.0.1:9999",
		"MESHD_EPOCH_PERIOD":    "3s",
		"MESHD_P2P_LISTEN":      "/ip4/127.0.0.1/tcp/1,/ip4/127.0.0.1/tcp/2",
		"MESHD_HTTP_RATE_BURST": "7",

		"MESHD_STORE_MAPPED_LIMIT_MB": "300",
		"MESHD_STORE_MEMORY_LIMIT_MB": "0",
		"MESHD_STORE_PROFILE":         "small",
	}
	c, err := Load(dir, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Listen != "127.0.0.1:9999" || c.Epoch.Period.Duration != 3*time.Second ||
		len(c.P2P.Listen) != 2 || c.HTTP.RateBurst != 7 || c.Store.MappedLimitMB != 300 || c.Store.MemoryLimitMB != 0 ||
		c.Store.Profile != ProfileSmall {
		t.Errorf("env not applied: %+v", c)
	}
}

func TestLoadErrorsNameTheProblem(t *testing.T) {
	tests := []struct {
		name, file string
		env        map[string]string
		want       string
	}{
		{"a missing file says to run init", "", nil, "meshd init"},
		{"an unknown setting is named", "origin = \"a\"\nlisten = \"x\"\n", nil, "unknown setting(s) listen"},
		{"a misplaced setting is named", "origin = \"a\"\n[http]\nperiod = \"1s\"\n", nil, "http.period"},
		{"a syntax error names the file", "origin = ", nil, FileName},
		{"a bad duration is refused", "origin = \"a\"\n[epoch]\nperiod = \"soon\"\n", nil, "soon"},
		{"a short period names the field", "origin = \"a\"\n[epoch]\nperiod = \"500ms\"\n", nil, "epoch.period"},
		{"a bad listen address names the field", "origin = \"a\"\n[http]\nlisten = \"nowhere\"\n", nil, "http.listen"},
		{"a bad debug address names the field", "origin = \"a\"\n[http]\ndebug_listen = \"nowhere\"\n", nil, "http.debug_listen"},
		{"an empty origin names the field", "[http]\n", nil, "origin"},
		{"an origin with spaces is refused", "origin = \"a b\"\n", nil, "origin"},
		{"a bad log level names the field", "origin = \"a\"\n[log]\nlevel = \"loud\"\n", nil, "log.level"},
		{"a bad multiaddress names the field", "origin = \"a\"\n[p2p]\nlisten = [\"tcp:4001\"]\n", nil, "p2p.listen[0]"},
		{"a bad environment value names the variable", "origin = \"a\"\n", map[string]string{"MESHD_HTTP_RATE_BURST": "many"}, "MESHD_HTTP_RATE_BURST"},
		{"a batch size of zero names the field", "origin = \"a\"\n[store]\nmax_batch = 0\n", nil, "store.max_batch"},
		{"a negative mapped-memory limit names the field", "origin = \"a\"\n[store]\nmapped_limit_mb = -1\n", nil, "store.mapped_limit_mb"},
		{"a mapped-memory limit over 1 TiB names the field", "origin = \"a\"\n", map[string]string{"MESHD_STORE_MAPPED_LIMIT_MB": "2000000"}, "store.mapped_limit_mb"},
		{"a negative memory limit other than -1 names the field", "origin = \"a\"\n[store]\nmemory_limit_mb = -2\n", nil, "store.memory_limit_mb"},
		{"a memory limit below the minimum names the field", "origin = \"a\"\n[store]\nmemory_limit_mb = 31\n", nil, "store.memory_limit_mb"},
		{"a memory limit over 1 TiB names the field", "origin = \"a\"\n", map[string]string{"MESHD_STORE_MEMORY_LIMIT_MB": "1048577"}, "store.memory_limit_mb"},
		{"a memory limit with a unit names the variable", "origin = \"a\"\n", map[string]string{"MESHD_STORE_MEMORY_LIMIT_MB": "64MiB"}, "MESHD_STORE_MEMORY_LIMIT_MB"},
		{"a memory limit that is no integer names the field", "origin = \"a\"\n[store]\nmemory_limit_mb = \"64\"\n", nil, "memory_limit_mb"},
		{"an unknown store profile names the field", "origin = \"a\"\n[store]\nprofile = \"huge\"\n", nil, "store.profile"},
		{"an empty store profile names the field", "origin = \"a\"\n", map[string]string{"MESHD_STORE_PROFILE": " "}, "store.profile"},
		{"a store profile in capitals is refused", "origin = \"a\"\n[store]\nprofile = \"Large\"\n", nil, "store.profile"},
		{"a bad mapped-memory limit from the environment names the variable", "origin = \"a\"\n", map[string]string{"MESHD_STORE_MAPPED_LIMIT_MB": "300MB"}, "MESHD_STORE_MAPPED_LIMIT_MB"},
		{"a short admin token is refused", "origin = \"a\"\n[http]\nadmin_token = \"secret\"\n", nil, "http.admin_token"},
		{"a short admin token from the environment is refused", "origin = \"a\"\n", map[string]string{"MESHD_HTTP_ADMIN_TOKEN": "short"}, "http.admin_token"},
		{"a zero write timeout names the field", "origin = \"a\"\n[http]\nwrite_timeout = \"0s\"\n", nil, "http.write_timeout"},
		{"a read timeout below the header timeout names the field", "origin = \"a\"\n[http]\nread_timeout = \"1s\"\n", nil, "http.read_timeout"},
		{"a negative idle timeout names the field", "origin = \"a\"\n[http]\nidle_timeout = \"-1s\"\n", nil, "http.idle_timeout"},
		{"no connections at all is refused", "origin = \"a\"\n[http]\nmax_connections = 0\n", nil, "http.max_connections"},
		{"no requests in flight is refused", "origin = \"a\"\n[http]\nmax_in_flight = 0\n", nil, "http.max_in_flight"},
		{"a limiter remembering no client is refused", "origin = \"a\"\n[http]\nrate_clients = 0\n", nil, "http.rate_clients"},
		{"a trusted proxy that is no address names the entry", "origin = \"a\"\n[http]\ntrusted_proxies = [\"10.0.0.1\", \"proxy.example\"]\n", nil, "http.trusted_proxies[1]"},
		{"a proxy header that is no header name is refused", "origin = \"a\"\n[http]\ntrusted_proxies = [\"10.0.0.1\"]\nproxy_header = \"X Forwarded\"\n", nil, "http.proxy_header"},
		{"a bad connection cap from the environment names the variable", "origin = \"a\"\n", map[string]string{"MESHD_HTTP_MAX_CONNECTIONS": "lots"}, "MESHD_HTTP_MAX_CONNECTIONS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.file != "" {
				if err := os.WriteFile(filepath.Join(dir, FileName), []byte(tt.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Load(dir, func(k string) string { return tt.env[k] })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load: %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestLoadKeyRejectsWhatIsNotAnEd25519Key(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k")
	if err := os.WriteFile(p, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(p); err == nil {
		t.Fatal("LoadKey accepted garbage")
	}
	if _, err := LoadKey(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadKey of a missing file: %v", err)
	}
}

func TestHTTPSettingsComeFromTheFileAndTheEnvironment(t *testing.T) {
	dir := t.TempDir()
	file := "origin = \"a\"\n[http]\nmax_connections = 15\ntrusted_proxies = [\"10.0.0.1\", \"2001:db8::/48\"]\n"
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"MESHD_HTTP_ADMIN_TOKEN":   "0123456789abcdef-operator",
		"MESHD_HTTP_READ_TIMEOUT":  "12s",
		"MESHD_HTTP_WRITE_TIMEOUT": "13s",
		"MESHD_HTTP_IDLE_TIMEOUT":  "14s",
		"MESHD_HTTP_MAX_IN_FLIGHT": "16",
		"MESHD_HTTP_RATE_CLIENTS":  "17",
		"MESHD_HTTP_PROXY_HEADER":  "X-Real-IP",
	}
	c, err := Load(dir, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	h := c.HTTP
	if h.AdminToken != "0123456789abcdef-operator" || h.ReadTimeout.Duration != 12*time.Second ||
		h.WriteTimeout.Duration != 13*time.Second || h.IdleTimeout.Duration != 14*time.Second ||
		h.MaxConnections != 15 || h.MaxInFlight != 16 || h.RateClients != 17 || h.ProxyHeader != "X-Real-IP" {
		t.Fatalf("settings not applied: %+v", h)
	}
	prefixes, err := h.TrustedProxyPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	if len(prefixes) != 2 || prefixes[0].String() != "10.0.0.1/32" || prefixes[1].String() != "2001:db8::/48" {
		t.Fatalf("trusted proxies %v", prefixes)
	}
}

func TestTheDefaultsOfTheHTTPServerAreSet(t *testing.T) {
	c := Default(t.TempDir())
	c.Origin = "a"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	h := c.HTTP
	if h.ReadHeaderTimeout.Duration == 0 || h.ReadTimeout.Duration == 0 || h.WriteTimeout.Duration == 0 ||
		h.IdleTimeout.Duration == 0 || h.MaxConnections == 0 || h.MaxInFlight == 0 || h.RateClients == 0 || h.AdminToken != "" {
		t.Fatalf("defaults: %+v", h)
	}
}

func TestMemoryLimitsAtTheirBoundsAndDefaultsAreAccepted(t *testing.T) {
	dir := t.TempDir()
	if _, err := Init(dir, InitOptions{Origin: "a"}); err != nil {
		t.Fatal(err)
	}
	c, err := Load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Store.MemoryLimitMB != MemoryLimitAuto || c.Store.MappedLimitMB != DefaultMappedLimitMB {
		t.Errorf("defaults: memory_limit_mb %d, mapped_limit_mb %d; want %d, %d",
			c.Store.MemoryLimitMB, c.Store.MappedLimitMB, MemoryLimitAuto, DefaultMappedLimitMB)
	}
	for _, v := range []string{"-1", "0", "32", "1048576"} {
		c, err := Load(dir, func(k string) string {
			if k == "MESHD_STORE_MEMORY_LIMIT_MB" {
				return v
			}
			return ""
		})
		if err != nil {
			t.Errorf("memory_limit_mb %s: %v", v, err)
		} else if got := strconv.Itoa(c.Store.MemoryLimitMB); got != v {
			t.Errorf("memory_limit_mb %s loaded as %s", v, got)
		}
	}
}

func TestStoreProfileAutoChoosesByFederation(t *testing.T) {
	tests := []struct {
		profile, federation, want string
	}{
		{ProfileAuto, "", ProfileSmall},
		{ProfileAuto, "federation.toml", ProfileLarge},
		{ProfileSmall, "federation.toml", ProfileSmall},
		{ProfileLarge, "", ProfileLarge},
	}
	for _, tt := range tests {
		c := Default(t.TempDir())
		c.Origin = "a"
		c.Store.Profile, c.P2P.Federation = tt.profile, tt.federation
		if err := c.Validate(); err != nil {
			t.Errorf("profile %q: %v", tt.profile, err)
		}
		if got := c.StoreProfile(); got != tt.want {
			t.Errorf("profile %q with federation %q: StoreProfile() = %q, want %q", tt.profile, tt.federation, got, tt.want)
		}
	}
	if got := Default(t.TempDir()).Store.Profile; got != ProfileAuto {
		t.Errorf("default store.profile %q, want %q", got, ProfileAuto)
	}
}

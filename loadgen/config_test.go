package loadgen

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/intermesh/intermesh/config"
)

func TestRunAndVerifyRefuseAnInvalidConfigurationBeforeAnyRequest(t *testing.T) {
	good := Config{Portals: []string{"http://127.0.0.1:1"}, Rate: 1, Accounts: 1, Concurrency: 1,
		Timeout: time.Second, Acks: filepath.Join(t.TempDir(), "acks.jsonl")}
	for name, change := range map[string]func(*Config){
		"no portal":                  func(c *Config) { c.Portals = nil },
		"a portal that is not a URL": func(c *Config) { c.Portals = []string{"ftp://x"} },
		"a zero rate":                func(c *Config) { c.Rate = 0 },
		"a negative duration":        func(c *Config) { c.Duration = -time.Second },
		"no account":                 func(c *Config) { c.Accounts = 0 },
		"no concurrency":             func(c *Config) { c.Concurrency = 0 },
		"no timeout":                 func(c *Config) { c.Timeout = 0 },
		"no acks file":               func(c *Config) { c.Acks = "" },
		"two domains for one portal": func(c *Config) { c.Domains = []string{"example.com", "example.org"} },
		"an upper-case domain":       func(c *Config) { c.Domains = []string{"Example.com"} },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := good
			change(&cfg)
			if _, err := Run(context.Background(), cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Run: %v, want ErrInvalidConfig", err)
			}
		})
	}
	if _, err := Verify(context.Background(), VerifyConfig{Acks: "acks.jsonl"}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Verify without a federation: %v, want ErrInvalidConfig", err)
	}
}

func TestEachPortalCreatesAccountsOfItsMembersDomain(t *testing.T) {
	fed := &config.Federation{Members: []config.Member{
		{Origin: "t/node0", HTTP: "http://127.0.0.1:8080", Domains: []string{"example.com", "example.org"}},
		{Origin: "t/node1", HTTP: "http://127.0.0.1:8081/", Domains: []string{"node1.example.com"}},
		{Origin: "t/node2", HTTP: "http://127.0.0.1:8082"},
	}}
	got := PortalDomains(fed, []string{"http://127.0.0.1:8081", "http://127.0.0.1:8080", "http://127.0.0.1:8082", "http://elsewhere"})
	if fmt.Sprint(got) != "[node1.example.com example.com example.com example.com]" {
		t.Errorf("PortalDomains = %q", got)
	}
	if PortalDomains(nil, []string{"http://127.0.0.1:8080"}) != nil {
		t.Error("PortalDomains without a federation is not nil")
	}
	cfg := Config{Portals: []string{"a", "b"}, Domains: []string{"example.com", "node1.example.com"}}
	if cfg.domain(1) != "node1.example.com" || (&Config{Portals: cfg.Portals}).domain(1) != DefaultDomain {
		t.Error("domain of portal 1")
	}
}

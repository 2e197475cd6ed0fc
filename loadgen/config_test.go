package loadgen

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
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

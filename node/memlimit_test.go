package node

import (
	"runtime/debug"
	"testing"

	"github.com/intermesh/intermesh/config"
)

func TestApplyMemoryLimitSetsTheConfiguredLimitUnlessGOMEMLIMITIsSet(t *testing.T) {
	const before = 3 << 30
	old := debug.SetMemoryLimit(before)
	t.Cleanup(func() { debug.SetMemoryLimit(old) })
	tests := []struct {
		name       string
		mb         int
		federation string
		gomemlimit string
		want       int64
		source     string
	}{
		{"the setting applies", 80, "", "", 80 << 20, "store.memory_limit_mb"},
		{"the setting applies to a federation member too", 400, "federation.toml", "", 400 << 20, "store.memory_limit_mb"},
		{"GOMEMLIMIT wins and the runtime's limit stays", 80, "", "200MiB", before, "GOMEMLIMIT"},
		{"0 sets nothing", 0, "", "", before, "none"},
		{"auto limits a node alone", config.MemoryLimitAuto, "", "", config.LoneMemoryLimitMB << 20, "store.memory_limit_mb"},
		{"auto sets the member limit for a federation member", config.MemoryLimitAuto, "federation.toml", "", config.MemberMemoryLimitMB << 20, "store.memory_limit_mb"},
		{"GOMEMLIMIT wins over auto", config.MemoryLimitAuto, "", "200MiB", before, "GOMEMLIMIT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetMemoryLimit(before)
			c := config.Default(t.TempDir())
			c.Store.MemoryLimitMB = tt.mb
			c.P2P.Federation = tt.federation
			got, source := ApplyMemoryLimit(c, func(k string) string {
				if k == "GOMEMLIMIT" {
					return tt.gomemlimit
				}
				return ""
			})
			if got != tt.want || source != tt.source {
				t.Errorf("ApplyMemoryLimit = %d, %q; want %d, %q", got, source, tt.want, tt.source)
			}
			if now := debug.SetMemoryLimit(-1); now != tt.want {
				t.Errorf("the runtime's limit is %d, want %d", now, tt.want)
			}
		})
	}
}

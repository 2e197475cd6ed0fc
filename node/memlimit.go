package node

import (
	"runtime/debug"

	"github.com/intermesh/intermesh/config"
)

// ApplyMemoryLimit sets the Go runtime's soft memory limit of the process
// from c's store.memory_limit_mb, unless getenv("GOMEMLIMIT") is set (the
// runtime has then applied that, and it wins): the setting's MiB, or with
// config.MemoryLimitAuto config.LoneMemoryLimitMB for a node without a
// federation file and config.MemberMemoryLimitMB for a federation member; 0
// sets none. It returns the limit in force afterwards (math.MaxInt64 for
// none) and where it came from: "GOMEMLIMIT", "store.memory_limit_mb" or
// "none". The limit is the whole process's, so only a process that runs one
// node calls it (meshd run), not one that runs several (an in-process
// testnet).
func ApplyMemoryLimit(c config.Config, getenv func(string) string) (limit int64, source string) {
	mb := c.Store.MemoryLimitMB
	if mb == config.MemoryLimitAuto {
		mb = config.MemberMemoryLimitMB
		if c.P2P.Federation == "" {
			mb = config.LoneMemoryLimitMB
		}
	}
	switch {
	case getenv("GOMEMLIMIT") != "":
		return debug.SetMemoryLimit(-1), "GOMEMLIMIT"
	case mb > 0:
		limit = int64(mb) << 20
		debug.SetMemoryLimit(limit)
		return limit, "store.memory_limit_mb"
	default:
		return debug.SetMemoryLimit(-1), "none"
	}
}

package node

import (
	"runtime/debug"

	"github.com/intermesh/intermesh/config"
)

// ApplyMemoryLimit sets the Go runtime's soft memory limit of the process to
// c's store.memory_limit_mb, unless getenv("GOMEMLIMIT") is set (the runtime
// has then applied that, and it wins) or the setting is 0. It returns the
// limit in force afterwards (math.MaxInt64 for none) and where it came from:
// "GOMEMLIMIT", "store.memory_limit_mb" or "none". The limit is the whole
// process's, so only a process that runs one node calls it (meshd run), not
// one that runs several (an in-process testnet).
func ApplyMemoryLimit(c config.Config, getenv func(string) string) (limit int64, source string) {
	switch {
	case getenv("GOMEMLIMIT") != "":
		return debug.SetMemoryLimit(-1), "GOMEMLIMIT"
	case c.Store.MemoryLimitMB > 0:
		limit = int64(c.Store.MemoryLimitMB) << 20
		debug.SetMemoryLimit(limit)
		return limit, "store.memory_limit_mb"
	default:
		return debug.SetMemoryLimit(-1), "none"
	}
}

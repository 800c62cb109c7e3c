package manager

import (
	"fmt"
	"strconv"
)

// MemoryLimitEnv names the environment variable that the chart and config/manager fill with the
// container's memory limit, in bytes (a resourceFieldRef of limits.memory).
const MemoryLimitEnv = "MEMORY_LIMIT"

// memoryLimitShare is the share of the container's memory limit the Go runtime aims to stay
// under. Set to the whole limit, the runtime lets the heap grow right up to it, and what it does
// not count (pages freed but not yet returned to the kernel, the binary's own) takes RSS past the
// limit: at 10,000 tenants with GOMEMLIMIT at 1 GiB, RSS reached 1,037 MiB. automemlimit
// defaults to the same 90 %.
const memoryLimitShare = 0.9

// SoftMemoryLimit is the memory limit the Go runtime should keep to, from the container's limit in
// getenv(MemoryLimitEnv): 90 % of it. ok is false when GOMEMLIMIT is set (an operator's own choice
// stands) or no limit is given. (A container without a limit gets the node's allocatable memory
// from the downward API: a bound still worth keeping to.)
func SoftMemoryLimit(getenv func(string) string) (limit int64, ok bool, err error) {
	if getenv("GOMEMLIMIT") != "" {
		return 0, false, nil
	}
	value := getenv(MemoryLimitEnv)
	if value == "" {
		return 0, false, nil
	}
	bytes, err := strconv.ParseInt(value, 10, 64)
	if err != nil || bytes <= 0 {
		return 0, false, fmt.Errorf("%s=%q: want the container's memory limit in bytes", MemoryLimitEnv, value)
	}
	return int64(float64(bytes) * memoryLimitShare), true, nil
}

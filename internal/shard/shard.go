// Package shard splits the tenants among several managers by a stable hash of the Tenant's name:
// each manager (a shard, with its own leader election) reconciles only the tenants it owns, and
// the first shard also runs what is cluster-wide rather than per tenant.
package shard

import (
	"fmt"
	"hash/fnv"
	"strings"
)

// Of is the shard, in [0, shards), of the tenant with this name: FNV-1a (32 bits) of the name
// modulo shards. It depends on the name alone, so every manager agrees on it without talking to
// the others, and it stays the same across restarts and versions. One shard or fewer is shard 0.
func Of(name string, shards int) int {
	if shards <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return int(h.Sum32() % uint32(shards))
}

// Shard is one manager's part of the tenants. The zero value is the whole: one manager, not
// sharded.
type Shard struct {
	// Index is this shard, in [0, Count).
	Index int
	// Count is how many shards there are; 0 or 1 is not sharded.
	Count int
}

// New is shard index of count, refused unless count is at least 1 and index in [0, count).
func New(index, count int) (Shard, error) {
	if count < 1 {
		return Shard{}, fmt.Errorf("the number of shards must be at least 1, got %d", count)
	}
	if index < 0 || index >= count {
		return Shard{}, fmt.Errorf("the shard index must be at least 0 and below the number of shards, %d; got %d", count, index)
	}
	return Shard{Index: index, Count: count}, nil
}

// Sharded tells whether there is more than one shard.
func (s Shard) Sharded() bool { return s.Count > 1 }

// Owns tells whether this shard reconciles the tenant with this name.
func (s Shard) Owns(tenant string) bool { return Of(tenant, s.Count) == s.Index }

// RunsClusterWide tells whether this shard runs what is not per tenant (the policies' status, their
// signing keys): the first shard, so that exactly one manager does.
func (s Shard) RunsClusterWide() bool { return s.Index == 0 }

// String is "shard-<index>-of-<count>", empty when not sharded: the part of the names (the leader
// election lease, the uptime history ConfigMaps) that tells the shards apart.
func (s Shard) String() string {
	if !s.Sharded() {
		return ""
	}
	return fmt.Sprintf("shard-%d-of-%d", s.Index, s.Count)
}

// LeaseName is the leader election lease of this shard: base when not sharded, so that an
// unsharded manager keeps the lease it always had, and base with the shard after its first label
// otherwise (tenant-operator.tenancy.tenantops.io becomes
// tenant-operator-shard-1-of-3.tenancy.tenantops.io), so that the replicas of one shard fail over
// to each other and different shards run side by side.
func (s Shard) LeaseName(base string) string {
	if !s.Sharded() {
		return base
	}
	if first, rest, ok := strings.Cut(base, "."); ok {
		return first + "-" + s.String() + "." + rest
	}
	return base + "-" + s.String()
}

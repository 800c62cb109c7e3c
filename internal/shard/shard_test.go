package shard

import (
	"fmt"
	"testing"
)

// The shard of a name must never change: a manager of another version, or restarted, must agree
// with the others on who owns a tenant. These values were computed apart from this package (FNV-1a
// 32 by its definition: offset basis 0x811c9dc5, prime 0x01000193).
func TestOfIsStable(t *testing.T) {
	for _, tt := range []struct {
		name          string
		hash          uint32
		of2, of3, of7 int
	}{
		{"acme", 0x45fd71af, 1, 1, 5},
		{"globex", 0x0a09748e, 0, 1, 4},
		{"initech", 0x78c1e661, 1, 1, 4},
		{"tenant-0000", 0x96331c98, 0, 0, 5},
		{"tenant-0001", 0x97331e2b, 1, 2, 3},
		{"tenant-0999", 0x20f5e825, 1, 0, 3},
		{"", 0x811c9dc5, 1, 1, 2},
	} {
		// 2^31 shards leave the hash itself, but for its top bit.
		for shards, want := range map[int]int{2: tt.of2, 3: tt.of3, 7: tt.of7, 1 << 31: int(tt.hash % (1 << 31))} {
			if got := Of(tt.name, shards); got != want {
				t.Errorf("Of(%q, %d) = %d, want %d", tt.name, shards, got, want)
			}
		}
		for _, shards := range []int{-1, 0, 1} {
			if got := Of(tt.name, shards); got != 0 {
				t.Errorf("Of(%q, %d) = %d, want 0: not sharded", tt.name, shards, got)
			}
		}
	}
}

// Names like the ones people give tenants spread evenly: 10,000 of them over 3 shards give each
// shard a third, within 5 %.
func TestOfSpreadsEvenly(t *testing.T) {
	const n, shards = 10000, 3
	for _, pattern := range []string{"tenant-%04d", "customer%d", "%d-prod", "team-%x-staging"} {
		count := make([]int, shards)
		for i := range n {
			count[Of(fmt.Sprintf(pattern, i), shards)]++
		}
		for s, c := range count {
			if third := float64(n) / shards; float64(c) < 0.95*third || float64(c) > 1.05*third {
				t.Errorf("%s: shard %d has %d of %d names, want %.0f ± 5 %%", pattern, s, c, n, third)
			}
		}
		t.Logf("%s: %v", pattern, count)
	}
}

func TestOwnsOneShardEach(t *testing.T) {
	unsharded := Shard{}
	three := []Shard{{0, 3}, {1, 3}, {2, 3}}
	for i := range 1000 {
		name := fmt.Sprintf("tenant-%d", i)
		if !unsharded.Owns(name) {
			t.Fatalf("the zero Shard does not own %s; it owns every tenant", name)
		}
		owners := 0
		for _, s := range three {
			if s.Owns(name) {
				owners++
				if s.Index != Of(name, 3) {
					t.Errorf("%v owns %s, whose shard is %d", s, name, Of(name, 3))
				}
			}
		}
		if owners != 1 {
			t.Errorf("%s is owned by %d of 3 shards, want exactly one", name, owners)
		}
	}
}

func TestNew(t *testing.T) {
	for _, tt := range []struct {
		index, count int
		wantErr      bool
	}{
		{0, 1, false},
		{0, 3, false},
		{2, 3, false},
		{3, 3, true},
		{-1, 3, true},
		{0, 0, true},
		{1, 1, true},
		{0, -2, true},
	} {
		s, err := New(tt.index, tt.count)
		if (err != nil) != tt.wantErr {
			t.Errorf("New(%d, %d) error %v, want error %v", tt.index, tt.count, err, tt.wantErr)
		}
		if err == nil && (s.Index != tt.index || s.Count != tt.count) {
			t.Errorf("New(%d, %d) = %+v", tt.index, tt.count, s)
		}
	}
}

func TestNames(t *testing.T) {
	const base = "tenant-operator.tenancy.tenantops.io"
	for _, tt := range []struct {
		shard          Shard
		name, lease    string
		runsClusterOne bool
	}{
		{Shard{}, "", base, true},
		{Shard{0, 1}, "", base, true},
		{Shard{0, 3}, "shard-0-of-3", "tenant-operator-shard-0-of-3.tenancy.tenantops.io", true},
		{Shard{2, 3}, "shard-2-of-3", "tenant-operator-shard-2-of-3.tenancy.tenantops.io", false},
	} {
		if got := tt.shard.String(); got != tt.name {
			t.Errorf("%+v.String() = %q, want %q", tt.shard, got, tt.name)
		}
		if got := tt.shard.LeaseName(base); got != tt.lease {
			t.Errorf("%+v.LeaseName() = %q, want %q", tt.shard, got, tt.lease)
		}
		if got := tt.shard.RunsClusterWide(); got != tt.runsClusterOne {
			t.Errorf("%+v.RunsClusterWide() = %v, want %v", tt.shard, got, tt.runsClusterOne)
		}
	}
	if got := (Shard{1, 2}).LeaseName("nodots"); got != "nodots-shard-1-of-2" {
		t.Errorf("LeaseName of a name without a dot = %q", got)
	}
}

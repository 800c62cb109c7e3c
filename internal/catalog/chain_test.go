package catalog_test

import (
	"strings"
	"testing"

	"github.com/tenantops/tenant-operator/internal/catalog"
)

// A restore chain follows parents within the backup's own schedule and cluster: an id alone can
// name a backup of another schedule, and a parent of another cluster cannot be combined.
func TestChainFollowsParentsInTheSameScheduleAndCluster(t *testing.T) {
	physical := func(schedule, id, system, parent string) catalog.Backup {
		var b catalog.Backup
		b.Schedule, b.ID, b.Method = schedule, id, catalog.MethodPhysical
		b.Physical = &catalog.PhysicalInfo{SystemID: system, Parent: parent}
		return b
	}
	backups := []catalog.Backup{
		physical("daily", "b1", "7", ""),      // same id, another schedule
		physical("hourly", "b1", "7", ""),     // the full backup hourly/b2 builds on
		physical("hourly", "b2", "7", "b1"),   // incremental
		physical("hourly", "b3", "7", "b2"),   // incremental
		physical("weekly", "w1", "8", ""),     // another cluster
		physical("weekly", "w2", "7", "w1"),   // claims a parent of cluster 8
		physical("weekly", "w3", "7", "gone"), // parent pruned
	}
	chain, err := catalog.Chain(backups, "hourly", "b3")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range chain {
		got = append(got, b.Schedule+"/"+b.ID)
	}
	if strings.Join(got, " ") != "hourly/b1 hourly/b2 hourly/b3" {
		t.Errorf("chain of hourly/b3 = %v, want its own schedule's full backup then the incrementals", got)
	}
	for _, tc := range []struct{ schedule, id, want string }{
		{"weekly", "w2", "another database cluster"},
		{"weekly", "w3", "missing from schedule weekly"},
		{"daily", "b3", "not listed in schedule daily"},
	} {
		if _, err := catalog.Chain(backups, tc.schedule, tc.id); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Chain(%s/%s) = %v, want an error saying %q", tc.schedule, tc.id, err, tc.want)
		}
	}
}

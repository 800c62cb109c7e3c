package catalog_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/catalog/catalogtest"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// A Tenant deleted with Retain and created again under the same name is another customer: its
// listings, "latest" and by-id reads leave the predecessor's backups out. Backups that recorded no
// UID (made before it was recorded) cannot be told apart and count for both.
func TestBackupsOfAPredecessorAreNotListed(t *testing.T) {
	ctx := context.Background()
	store, err := storage.OpenVolume(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	put := func(id, uid string, at time.Time) {
		catalogtest.Write(t, store, catalogtest.Backup{Tenant: "acme", TenantUID: uid, Schedule: "hot", ID: id, StartedAt: at})
	}
	put("legacy", "", t0)
	put("old-customer", "uid-old", t0.Add(time.Hour))
	put("new-customer", "uid-new", t0.Add(2*time.Hour))
	put("old-customer-latest", "uid-old", t0.Add(3*time.Hour))

	ids := func(entries []catalog.Entry) []string {
		var out []string
		for _, e := range entries {
			out = append(out, e.ID)
		}
		return out
	}
	all, err := catalog.ListEntries(ctx, store, "acme", "hot")
	if err != nil || len(all) != 4 {
		t.Fatalf("without an owner every backup is listed: %v %v", ids(all), err)
	}
	mine, err := catalog.ListEntries(ctx, store, "acme", "hot", catalog.WithTenantUIDs("uid-new"))
	if err != nil || !slices.Equal(ids(mine), []string{"new-customer", "legacy"}) {
		t.Errorf("the new customer lists %v (%v), want its own and the legacy one", ids(mine), err)
	}
	latest, err := catalog.Get(ctx, store, "acme", "hot", catalog.Latest, catalog.WithTenantUIDs("uid-new"))
	if err != nil || latest.ID != "new-customer" {
		t.Errorf("latest for the new customer = %s (%v), want new-customer, not the predecessor's newer backup", latest.ID, err)
	}
	if _, err := catalog.Get(ctx, store, "acme", "hot", "old-customer", catalog.WithTenantUIDs("uid-new")); err == nil || !strings.Contains(err.Error(), "another Tenant") {
		t.Errorf("reading the predecessor's backup by id gave %v, want a refusal", err)
	}
	adopted, err := catalog.ListEntries(ctx, store, "acme", "hot", catalog.WithTenantUIDs("uid-new", "uid-old"))
	if err != nil || len(adopted) != 4 {
		t.Errorf("a tenant that adopted its predecessor's data lists %v (%v), want all four", ids(adopted), err)
	}
}

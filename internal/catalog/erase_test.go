package catalog_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/catalog/catalogtest"
	"github.com/tenantops/tenant-operator/internal/datakey"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// Erasing a Tenant object destroys its escrowed keys and its backups, and nothing of the tenant
// of the same name that came before it under another UID.
func TestEraseDestroysKeysThenBackupsOfTheTenantOnly(t *testing.T) {
	ctx := context.Background()
	store, err := storage.OpenVolume(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	platform, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	key, err := datakey.Generate([]string{platform.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	predecessorKey, err := datakey.Generate([]string{platform.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	const uid, predecessor = "uid-current", "uid-predecessor"
	if err := catalog.WriteDataKey(ctx, store, "acme", uid, key); err != nil {
		t.Fatal(err)
	}
	if err := catalog.WriteDataKey(ctx, store, "acme", predecessor, predecessorKey); err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	keyed := catalogtest.Write(t, store, catalogtest.Backup{Tenant: "acme", TenantUID: uid, Schedule: "hot", ID: "keyed", StartedAt: day, DataKeyID: key.ID})
	catalogtest.Write(t, store, catalogtest.Backup{Tenant: "acme", TenantUID: uid, Schedule: "cold", ID: "plain", StartedAt: day})
	catalogtest.Write(t, store, catalogtest.Backup{Tenant: "acme", Schedule: "hot", ID: "legacy", StartedAt: day.Add(-time.Hour)})
	catalogtest.Write(t, store, catalogtest.Backup{Tenant: "acme", TenantUID: predecessor, Schedule: "hot", ID: "theirs", StartedAt: day, DataKeyID: predecessorKey.ID})
	catalogtest.Write(t, store, catalogtest.Backup{Tenant: "acme2", TenantUID: uid, Schedule: "hot", ID: "other-name", StartedAt: day})

	plan, err := catalog.PlanErasure(ctx, store, "acme", []string{uid})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(plan.DataKeys, []string{key.ID}) {
		t.Errorf("plan.DataKeys = %v, want [%s]", plan.DataKeys, key.ID)
	}
	if want := []catalog.BackupRef{{Schedule: "hot", ID: "keyed"}}; !slices.Equal(plan.Unreadable, want) {
		t.Errorf("plan.Unreadable = %v, want %v", plan.Unreadable, want)
	}
	if got := refIDs(plan.Plain); !slices.Equal(got, []string{"legacy", "plain"}) {
		t.Errorf("plan.Plain = %v, want the cold backup without a key and the one that recorded no UID", got)
	}

	if err := catalog.Erase(ctx, store, plan); err != nil {
		t.Fatal(err)
	}
	var destroyed *catalog.DataKeyDestroyedError
	if _, err := catalog.ReadDataKey(ctx, store, keyed); !errors.As(err, &destroyed) {
		t.Fatalf("reading the erased key = %v, want DataKeyDestroyedError", err)
	}
	left, err := catalog.List(ctx, store, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, b := range left {
		ids = append(ids, b.Tenant+"/"+b.ID)
	}
	if !slices.Equal(ids, []string{"acme/theirs", "acme2/other-name"}) {
		t.Errorf("after erasure the store holds %v, want only the predecessor's and the other tenant's backups", ids)
	}
	if kept, err := catalog.ListDataKeys(ctx, store, "acme", predecessor); err != nil || !slices.Equal(kept, []string{predecessorKey.ID}) {
		t.Errorf("predecessor's keys = %v, %v; want its key kept", kept, err)
	}
	// Erasing again finds nothing left to do.
	again, err := catalog.PlanErasure(ctx, store, "acme", []string{uid})
	if err != nil || len(again.DataKeys)+len(again.Unreadable)+len(again.Plain) != 0 {
		t.Errorf("second plan = %+v, %v; want nothing", again, err)
	}
}

func refIDs(refs []catalog.BackupRef) []string {
	var ids []string
	for _, r := range refs {
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	return ids
}

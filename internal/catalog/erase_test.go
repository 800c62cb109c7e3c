package catalog_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"path"
	"slices"
	"strings"
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
	// Two backups that recorded no UID: one made by the erased Tenant (after its creation), one by
	// a predecessor of the same name before it existed, which is another customer's.
	created := day.Add(-2 * time.Hour)
	catalogtest.Write(t, store, catalogtest.Backup{Tenant: "acme", Schedule: "hot", ID: "legacy", StartedAt: day.Add(-time.Hour)})
	catalogtest.Write(t, store, catalogtest.Backup{Tenant: "acme", Schedule: "hot", ID: "predecessors-legacy", StartedAt: created.Add(-24 * time.Hour)})
	// The tenant's WAL archive and a stored export are erased with it; a predecessor's stay.
	_, signing, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	for system, owner := range map[string]string{"7000000000000000001": uid, "7000000000000000002": predecessor} {
		n, err := catalog.ParseWALName("000000010000000000000001")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Put(ctx, catalog.WALObjectKey("acme", system, n), strings.NewReader("wal")); err != nil {
			t.Fatal(err)
		}
		info := catalog.WALInfo{Tenant: "acme", TenantUID: owner, SystemID: system, Name: n.Name, Timeline: n.Timeline, ArchivedAt: day}
		if err := catalog.WriteWALSidecar(ctx, store, info, signing); err != nil {
			t.Fatal(err)
		}
	}
	for id, owner := range map[string]string{"mine-export": uid, "their-export": predecessor} {
		if _, err := store.Put(ctx, catalog.ExportObject("acme", id), strings.NewReader("age")); err != nil {
			t.Fatal(err)
		}
		if err := catalog.WriteExportRecord(ctx, store, catalog.ExportRecord{FormatVersion: 1, ID: id, Tenant: "acme", TenantUID: owner}); err != nil {
			t.Fatal(err)
		}
	}
	// Its prune and restore records go with it; a predecessor's stay.
	for _, owner := range []string{uid, predecessor} {
		if _, err := catalog.WritePruneRecord(ctx, store, catalog.PruneRecord{Tenant: "acme", TenantUID: owner, Schedule: "hot", PrunedAt: day,
			Due: 1, Pruned: []catalog.PrunedBackup{{ID: "gone", StartedAt: day.AddDate(0, -1, 0), Why: []string{"keepLast 1: 1 newer backups"}}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := catalog.WriteRestoreRecord(ctx, store, catalog.RestoreRecord{Tenant: "acme", TenantUID: owner, RestoredAt: day,
			Method: catalog.MethodLogical, Schedule: "hot", BackupIDs: []string{"keyed"}, Database: "app"}); err != nil {
			t.Fatal(err)
		}
	}
	// A manifest nobody can read (corrupt, or planted by a writer) does not stop the erasure.
	if _, err := store.Put(ctx, "acme/hot/garbage/manifest.json", strings.NewReader("{not json")); err != nil {
		t.Fatal(err)
	}
	catalogtest.Write(t, store, catalogtest.Backup{Tenant: "acme", TenantUID: predecessor, Schedule: "hot", ID: "theirs", StartedAt: day, DataKeyID: predecessorKey.ID})
	catalogtest.Write(t, store, catalogtest.Backup{Tenant: "acme2", TenantUID: uid, Schedule: "hot", ID: "other-name", StartedAt: day})

	plan, err := catalog.PlanErasure(ctx, store, "acme", []string{uid}, created)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(plan.WALSystems, []string{"7000000000000000001"}) || !slices.Equal(plan.Exports, []string{"mine-export"}) {
		t.Errorf("plan WAL systems %v and exports %v, want only the tenant's own", plan.WALSystems, plan.Exports)
	}
	if plan.Records != 2 {
		t.Errorf("plan counts %d prune and restore records, want the tenant's 2", plan.Records)
	}
	if plan.LeftLegacy != 1 || plan.Unowned != 1 {
		t.Errorf("plan left %d legacy backups and %d unreadable manifests, want 1 and 1", plan.LeftLegacy, plan.Unowned)
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
	for key, want := range map[string]bool{
		"acme/wal/7000000000000000001":        false,
		"acme/wal/7000000000000000002":        true,
		catalog.ExportsDir("acme") + "/mine":  false,
		catalog.ExportsDir("acme") + "/their": true,
	} {
		objs, err := store.List(ctx, path.Dir(key))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, o := range objs {
			found = found || strings.HasPrefix(o.Key, key)
		}
		if found != want {
			t.Errorf("after erasure, objects under %s: %v, want %v", key, found, want)
		}
	}
	// The unreadable manifest is left (its owner is unknown); the listing below would refuse it.
	if _, err := store.Stat(ctx, "acme/hot/garbage/manifest.json"); err != nil {
		t.Errorf("the unreadable manifest: %v, want it left", err)
	}
	if err := store.Delete(ctx, "acme/hot/garbage/manifest.json"); err != nil {
		t.Fatal(err)
	}
	left, err := catalog.List(ctx, store, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, b := range left {
		ids = append(ids, b.Tenant+"/"+b.ID)
	}
	if !slices.Equal(ids, []string{"acme/theirs", "acme/predecessors-legacy", "acme2/other-name"}) {
		t.Errorf("after erasure the store holds %v, want only the predecessors' and the other tenant's backups", ids)
	}
	for owner, want := range map[string]int{uid: 0, predecessor: 2} {
		if n, err := catalog.CountRecords(ctx, store, "acme", owner); err != nil || n != want {
			t.Errorf("records of %s after the erasure: %d, %v; want %d", owner, n, err, want)
		}
	}
	if kept, err := catalog.ListDataKeys(ctx, store, "acme", predecessor); err != nil || !slices.Equal(kept, []string{predecessorKey.ID}) {
		t.Errorf("predecessor's keys = %v, %v; want its key kept", kept, err)
	}
	// Erasing again finds nothing left to do.
	again, err := catalog.PlanErasure(ctx, store, "acme", []string{uid}, created)
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

package catalog_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/catalog/catalogtest"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// A pruning's intent: not a record; its record takes the name it announced and removes it; left by
// a stopped pruner, it becomes the record of the backups it names that are gone (interrupted), or
// goes when none is gone or its record exists; one moved from another tenant is refused.
func TestPruneIntents(t *testing.T) {
	ctx := context.Background()
	decided := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	setUp := func(t *testing.T) (storage.Store, catalog.PruneRecord) {
		t.Helper()
		store, err := storage.OpenVolume(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		r := catalog.PruneRecord{Tenant: "acme", TenantUID: "uid-1", Schedule: "hot", RetentionPolicy: "short", DecidedAt: decided, PrunedAt: decided, Due: 3}
		for i, id := range []string{"b1", "b2", "b3"} {
			catalogtest.Write(t, store, catalogtest.Backup{Tenant: "acme", TenantUID: "uid-1", Schedule: "hot", ID: id, StartedAt: decided.Add(time.Duration(i-5) * time.Hour)})
			r.Pruned = append(r.Pruned, catalog.PrunedBackup{ID: id, StartedAt: decided.Add(time.Duration(i-5) * time.Hour), Why: []string{"keepLast 1: not among the 1 newest"}})
		}
		return store, r
	}
	intents := func(t *testing.T, store storage.Store) []string {
		t.Helper()
		objs, err := store.List(ctx, "acme/.prunes")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, o := range objs {
			if strings.Contains(o.Key, "/intent-") {
				out = append(out, o.Key)
			}
		}
		return out
	}
	read := func(t *testing.T, store storage.Store) []catalog.PruneRecord {
		t.Helper()
		records, _, err := catalog.ReadPruneRecords(ctx, store, "acme", "uid-1", 0)
		if err != nil {
			t.Fatal(err)
		}
		return records
	}

	t.Run("recorded as the pruning ends", func(t *testing.T) {
		store, r := setUp(t)
		intent, err := catalog.WritePruneIntent(ctx, store, r)
		if err != nil {
			t.Fatal(err)
		}
		if got := read(t, store); len(got) != 0 {
			t.Fatalf("an intent read as a record: %+v", got)
		}
		done := r
		done.Pruned, done.Intent = r.Pruned[:2], intent
		key, err := catalog.WritePruneRecord(ctx, store, done)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.Replace(intent, "/intent-", "/", 1); key != want {
			t.Errorf("record stored as %s, want the name the intent announced, %s", key, want)
		}
		if left := intents(t, store); len(left) != 0 {
			t.Errorf("intents left: %v", left)
		}
		if got := read(t, store); len(got) != 1 || len(got[0].Pruned) != 2 || got[0].Interrupted {
			t.Errorf("records %+v, want one of b1 and b2, not interrupted", got)
		}
	})
	t.Run("a stopped pruner's intent", func(t *testing.T) {
		store, r := setUp(t)
		if _, err := catalog.WritePruneIntent(ctx, store, r); err != nil {
			t.Fatal(err)
		}
		// Stopped after b1 and the manifest of b2 went.
		if err := catalog.Delete(ctx, store, "acme", "hot", "b1"); err != nil {
			t.Fatal(err)
		}
		if err := store.Delete(ctx, storage.Join(catalog.Dir("acme", "hot", "b2"), catalog.ManifestObject)); err != nil {
			t.Fatal(err)
		}
		found := decided.Add(time.Hour)
		keys, err := catalog.CompletePruneIntents(ctx, store, "acme", "uid-1", "hot", nil, found)
		if err != nil || len(keys) != 1 {
			t.Fatalf("CompletePruneIntents = %v, %v; want one record", keys, err)
		}
		got := read(t, store)
		if len(got) != 1 || len(got[0].Pruned) != 2 || got[0].Pruned[0].ID != "b1" || got[0].Pruned[1].ID != "b2" ||
			!got[0].Interrupted || !got[0].PrunedAt.Equal(found) || got[0].Due != 3 || len(got[0].Pruned[0].Why) == 0 {
			t.Errorf("records %+v, want one of b1 and b2, interrupted, found gone at %s, of 3 due, with reasons", got, found)
		}
		if left := intents(t, store); len(left) != 0 {
			t.Errorf("intents left: %v", left)
		}
		if keys, err := catalog.CompletePruneIntents(ctx, store, "acme", "uid-1", "hot", nil, found); err != nil || len(keys) != 0 {
			t.Errorf("again: %v, %v; want nothing more", keys, err)
		}
	})
	t.Run("held, or nothing deleted, or already recorded", func(t *testing.T) {
		store, r := setUp(t)
		held, err := catalog.WritePruneIntent(ctx, store, r)
		if err != nil {
			t.Fatal(err)
		}
		if err := catalog.Delete(ctx, store, "acme", "hot", "b1"); err != nil {
			t.Fatal(err)
		}
		if keys, err := catalog.CompletePruneIntents(ctx, store, "acme", "uid-1", "hot", map[string]bool{held: true}, decided); err != nil || len(keys) != 0 {
			t.Fatalf("a held intent completed: %v, %v", keys, err)
		}
		// Recorded, and the intent's removal lost.
		done := r
		done.Pruned, done.Intent = r.Pruned[:1], held
		if _, err := catalog.WritePruneRecord(ctx, store, done); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Put(ctx, held, strings.NewReader(`{"formatVersion":1,"tenant":"acme","tenantUID":"uid-1","schedule":"hot","pruned":[{"id":"b1"}]}`)); err != nil {
			t.Fatal(err)
		}
		// And one that deleted nothing: b2 and b3 are still there.
		r.Pruned = r.Pruned[1:]
		if _, err := catalog.WritePruneIntent(ctx, store, r); err != nil {
			t.Fatal(err)
		}
		if keys, err := catalog.CompletePruneIntents(ctx, store, "acme", "uid-1", "hot", nil, decided); err != nil || len(keys) != 0 {
			t.Fatalf("CompletePruneIntents = %v, %v; want no new record", keys, err)
		}
		if got := read(t, store); len(got) != 1 {
			t.Errorf("records %+v, want the one", got)
		}
		if left := intents(t, store); len(left) != 0 {
			t.Errorf("intents left: %v", left)
		}
	})
	t.Run("moved", func(t *testing.T) {
		store, r := setUp(t)
		intent, err := catalog.WritePruneIntent(ctx, store, r)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := store.Get(ctx, intent)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		moved := strings.Replace(intent, "uid-1", "uid-2", 1)
		if _, err := store.Put(ctx, moved, rc); err != nil {
			t.Fatal(err)
		}
		if _, err := catalog.CompletePruneIntents(ctx, store, "acme", "uid-2", "hot", nil, decided); err == nil || !strings.Contains(err.Error(), "moved") {
			t.Errorf("a moved intent: %v, want it refused", err)
		}
	})
}

package catalog_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/catalog/catalogtest"
	"github.com/tenantops/tenant-operator/internal/storage"
)

func TestRecordsKeptUntil(t *testing.T) {
	at := time.Date(2026, 3, 10, 4, 0, 0, 0, time.UTC)
	for name, tc := range map[string]struct {
		policy v1alpha1.RetentionPolicySpec
		want   time.Time
	}{
		// The customer pages' 5 days, 2 months, 1 year: the year, and a month's margin.
		"5 days, 2 months, 1 year": {v1alpha1.RetentionPolicySpec{MaxAge: "5d", KeepMonthly: ptr.To[int32](2), KeepYearly: ptr.To[int32](1)},
			time.Date(2027, 4, 10, 4, 0, 0, 0, time.UTC)},
		"keepLast names no period: a year": {v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](3)}, time.Date(2027, 4, 10, 4, 0, 0, 0, time.UTC)},
		"three years":                      {v1alpha1.RetentionPolicySpec{KeepYearly: ptr.To[int32](3)}, time.Date(2029, 4, 10, 4, 0, 0, 0, time.UTC)},
		"500 days":                         {v1alpha1.RetentionPolicySpec{KeepDaily: ptr.To[int32](500)}, at.AddDate(0, 0, 500+31)},
	} {
		if got := catalog.RecordsKeptUntil(tc.policy, at); !got.Equal(tc.want) {
			t.Errorf("%s: kept until %s, want %s", name, got, tc.want)
		}
	}
}

// Records are written under names of their own, read back newest first with what they said,
// refused when moved, left alone by listing and cleanup of backups, and expired by age only.
func TestPruneAndRestoreRecords(t *testing.T) {
	ctx := context.Background()
	store, err := storage.OpenVolume(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const uid = "uid-1"
	day := time.Date(2026, 5, 10, 2, 0, 0, 0, time.UTC)
	policy := v1alpha1.RetentionPolicySpec{KeepLast: ptr.To[int32](1)}
	catalogtest.Write(t, store, catalogtest.Backup{Tenant: "acme", TenantUID: uid, Schedule: "hot", ID: "kept", StartedAt: day})
	write := func(schedule string, at time.Time, ids ...string) string {
		t.Helper()
		r := catalog.PruneRecord{Tenant: "acme", TenantUID: uid, Schedule: schedule, RetentionPolicy: "short", RetentionPolicyGeneration: 3,
			Rules: policy, TimeZone: "UTC", DecidedAt: at, PrunedAt: at.Add(time.Second), Due: len(ids)}
		for _, id := range ids {
			r.Pruned = append(r.Pruned, catalog.PrunedBackup{ID: id, StartedAt: at.AddDate(0, 0, -1), Why: []string{"keepLast 1: 1 newer backups"}})
		}
		key, err := catalog.WritePruneRecord(ctx, store, r)
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	oldest := write("hot", day.AddDate(-2, 0, 0), "ancient")
	write("hot", day.AddDate(0, -1, 0), "a", "b")
	write("cold", day, "c")
	// Two runs in the same second do not meet.
	first, second := write("cold", day.Add(time.Hour), "d"), write("cold", day.Add(time.Hour), "e")
	if first == second || !strings.HasPrefix(first, "acme/.prunes/uid-1/cold/2026-05-10T03:00:01Z-") {
		t.Fatalf("record keys %s and %s", first, second)
	}
	if _, err := catalog.WritePruneRecord(ctx, store, catalog.PruneRecord{Tenant: "acme", TenantUID: uid, Schedule: "hot", PrunedAt: day}); err == nil {
		t.Error("a record of a run that deleted nothing was written")
	}
	if _, err := catalog.WritePruneRecord(ctx, store, catalog.PruneRecord{Tenant: "acme", Schedule: "hot", PrunedAt: day, Pruned: []catalog.PrunedBackup{{ID: "x"}}}); err == nil {
		t.Error("a record without a Tenant UID was written")
	}
	restoreKey, err := catalog.WriteRestoreRecord(ctx, store, catalog.RestoreRecord{Tenant: "acme", TenantUID: uid, RestoredAt: day, Method: catalog.MethodLogical,
		Schedule: "hot", BackupIDs: []string{"kept"}, BackupStartedAt: day, Database: "app", LedgerReplayed: []string{"req-1", "req-2"}})
	if err != nil {
		t.Fatal(err)
	}

	records, total, err := catalog.ReadPruneRecords(ctx, store, "acme", uid, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range records {
		var ids []string
		for _, p := range r.Pruned {
			ids = append(ids, p.ID)
		}
		got = append(got, r.Schedule+":"+strings.Join(ids, ","))
	}
	// Newest first, every schedule's; d and e share a second, so either comes first.
	if len(got) == 5 && got[0] == "cold:e" {
		got[0], got[1] = got[1], got[0]
	}
	if want := []string{"cold:d", "cold:e", "cold:c", "hot:a,b", "hot:ancient"}; total != 5 || !slices.Equal(got, want) {
		t.Fatalf("records %v (total %d), want %v", got, total, want)
	}
	r := records[3]
	if r.RetentionPolicy != "short" || r.RetentionPolicyGeneration != 3 || *r.Rules.KeepLast != 1 || r.Due != 2 ||
		r.FormatVersion != catalog.PruneRecordFormatVersion || r.Pruned[0].Why[0] != "keepLast 1: 1 newer backups" {
		t.Errorf("record read back: %+v", r)
	}
	if limited, total, err := catalog.ReadPruneRecords(ctx, store, "acme", uid, 2); err != nil || len(limited) != 2 || total != 5 {
		t.Errorf("the newest 2: %d records of %d, %v", len(limited), total, err)
	}
	restores, _, err := catalog.ReadRestoreRecords(ctx, store, "acme", uid, 0)
	if err != nil || len(restores) != 1 || restores[0].Key != restoreKey || !slices.Equal(restores[0].LedgerReplayed, []string{"req-1", "req-2"}) {
		t.Fatalf("restore records = %+v, %v", restores, err)
	}

	// Backups are listed and cleaned up as before: records are neither.
	if left, err := catalog.List(ctx, store, "acme", ""); err != nil || len(left) != 1 {
		t.Fatalf("backups listed beside the records: %+v, %v", left, err)
	}
	if removed, err := catalog.DeleteOrphans(ctx, store, "acme", "hot", day.AddDate(1, 0, 0)); err != nil || len(removed) != 0 {
		t.Fatalf("orphan cleanup removed %v, %v", removed, err)
	}

	// A record copied under another schedule is refused, not taken for that schedule's.
	data, err := store.Get(ctx, oldest)
	if err != nil {
		t.Fatal(err)
	}
	moved := strings.Replace(oldest, "/hot/", "/cold/", 1)
	if _, err := store.Put(ctx, moved, data); err != nil {
		t.Fatal(err)
	}
	data.Close()
	if _, _, err := catalog.ReadPruneRecords(ctx, store, "acme", uid, 0); err == nil || !strings.Contains(err.Error(), "moved") {
		t.Errorf("reading a moved record: %v, want a refusal", err)
	}
	if err := store.Delete(ctx, moved); err != nil {
		t.Fatal(err)
	}

	// A year and 31 days after a record (keepLast names no period), it goes; younger ones stay.
	n, err := catalog.ExpireRecords(ctx, store, "acme", uid, "hot", policy, day.AddDate(0, 0, 1))
	if err != nil || n != 1 {
		t.Fatalf("expired %d, %v; want the two-year-old record only", n, err)
	}
	if _, total, _ := catalog.ReadPruneRecords(ctx, store, "acme", uid, 0); total != 4 {
		t.Errorf("%d records left, want 4", total)
	}
	if n, err := catalog.ExpireRecords(ctx, store, "acme", uid, "hot", policy, day.AddDate(1, 0, 15)); err != nil || n != 1 {
		t.Fatalf("a year and 15 days later: expired %d, %v; want the month-older hot record, not the restore record", n, err)
	}
	if n, err := catalog.ExpireRecords(ctx, store, "acme", uid, "hot", policy, day.AddDate(1, 0, 31)); err != nil || n != 1 {
		t.Fatalf("a year and 31 days after the restore: expired %d, %v; want its record", n, err)
	}
	if n, _ := catalog.CountRecords(ctx, store, "acme", uid); n != 3 {
		t.Errorf("%d records left, want cold's 3 (expired with their own schedule)", n)
	}
}

package backupcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// A tenant controls its schema, so the length of its manifests' table lists: 100,000 tables in
// each of 20 kept backups once made the operator hold two million rows per tenant for the life of
// the manager. What the Inspector keeps must not grow with it.
func TestMemoryDoesNotGrowWithTheTenantsTables(t *testing.T) {
	const tables, backups = 100_000, 20
	root := t.TempDir()
	dir := filepath.Join(root, "backups")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	store, err := storage.OpenVolume(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	rows := make([]catalog.TableRows, tables)
	for i := range rows {
		rows[i] = catalog.TableRows{Schema: "public", Name: fmt.Sprintf("attacker_table_%06d", i), Rows: int64(i)}
	}
	ctx := context.Background()
	var manifestBytes int
	for i := range backups {
		id := fmt.Sprintf("b%02d", i)
		data := []byte("x")
		if _, err := store.Put(ctx, storage.Join(catalog.Dir("big", "hot", id), catalog.DataObject), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		m := catalog.Manifest{FormatVersion: catalog.FormatVersion, ID: id, Tenant: "big", Schedule: "hot",
			StartedAt: now.Add(-time.Duration(i+1) * time.Hour), FinishedAt: now.Add(-time.Duration(i) * time.Hour),
			Object: catalog.ObjectInfo{Name: catalog.DataObject, Size: 1, SHA256: "00"}, Tables: rows}
		if err := catalog.WriteManifest(ctx, store, m); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			b, _ := json.Marshal(m)
			manifestBytes = len(b)
		}
	}
	rows = nil

	notify, notices := notified()
	in := New(Options{VolumeRoot: root, Clock: clocktesting.NewFakeClock(now), Notify: notify})
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = in.Start(runCtx) }()

	before := heapInUse()
	req := Request{Tenant: "big", Policy: volumePolicy("standard", "backups"), Location: time.UTC}
	in.Observe(req)
	waitFor(t, notices, "big", time.Minute)
	got := in.Observe(req)["hot"]
	if got.Err != nil || len(got.Entries) != backups || got.Entries[0].Tables != tables {
		t.Fatalf("listing = %d entries, err %v; want %d entries of %d tables", len(got.Entries), got.Err, backups, tables)
	}
	retained := heapInUse() - before
	runtime.KeepAlive(in)
	t.Logf("%d backups of %d tables (%d KiB of manifest each): the Inspector keeps %d KiB", backups, tables, manifestBytes>>10, retained>>10)
	if limit := int64(1 << 20); retained > limit {
		t.Errorf("the Inspector keeps %d KiB for one tenant, more than %d KiB: it holds table lists", retained>>10, limit>>10)
	}
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

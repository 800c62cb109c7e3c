package backupcheck

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/catalog/catalogtest"
	"github.com/tenantops/tenant-operator/internal/datakey"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// The Inspector erases outside the reconcile pass, once per location, tells the tenant when it
// is done, and retries a failed erasure only after a pause.
func TestInspectorErasesOnceAndRetriesAfterAPause(t *testing.T) {
	root := t.TempDir()
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	platform, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	key, err := datakey.Generate([]string{platform.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	claim := filepath.Join(root, "backups")
	if err := os.MkdirAll(claim, 0o755); err != nil {
		t.Fatal(err)
	}
	store, err := storage.OpenVolume(claim)
	if err != nil {
		t.Fatal(err)
	}
	if err := catalog.WriteDataKey(context.Background(), store, "acme", "uid-1", key); err != nil {
		t.Fatal(err)
	}
	catalogtest.Write(t, store, catalogtest.Backup{Tenant: "acme", TenantUID: "uid-1", Schedule: "hot", ID: "b1", StartedAt: now.Add(-time.Hour), DataKeyID: key.ID})

	clk := clocktesting.NewFakeClock(now)
	notify, notices := notified()
	in := New(Options{VolumeRoot: root, Clock: clk, Notify: notify})
	req := EraseRequest{Tenant: "acme", TenantUIDs: []string{"uid-1"}, Policy: volumePolicy("standard", "backups")}
	if got := in.Erase(req); got.Done || got.Err != nil {
		t.Fatalf("before Start: %+v, want nothing started (only the leader erases)", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = in.Start(ctx) }()
	waitStarted(t, in)

	in.Erase(req)
	waitFor(t, notices, "acme", 10*time.Second)
	got := in.Erase(req)
	if !got.Done || got.Err != nil || len(got.Locations) != 1 {
		t.Fatalf("erasure = %+v, want done in one location", got)
	}
	plan := got.Locations[0].Plan
	if len(plan.DataKeys) != 1 || plan.DataKeys[0] != key.ID || len(plan.Unreadable) != 1 || plan.Unreadable[0].ID != "b1" {
		t.Fatalf("erased %+v, want key %s and backup b1", plan, key.ID)
	}
	if left, _ := catalog.List(context.Background(), store, "acme", ""); len(left) != 0 {
		t.Fatalf("backups left after erasure: %d", len(left))
	}

	// A location that cannot be reached fails the erasure, which is tried again only after the
	// pause, not on every pass.
	missing := EraseRequest{Tenant: "acme", TenantUIDs: []string{"uid-2"}, Policy: volumePolicy("standard", "not-mounted")}
	in.Erase(missing)
	waitFor(t, notices, "acme", 10*time.Second)
	failed := in.Erase(missing)
	if failed.Done || failed.Err == nil {
		t.Fatalf("erasure of an unmounted claim = %+v, want an error", failed)
	}
	clk.Step(eraseRetry / 2)
	in.Erase(missing)
	select {
	case <-notices:
		t.Fatal("a failed erasure was retried before the pause ended")
	case <-time.After(200 * time.Millisecond):
	}
	clk.Step(eraseRetry)
	in.Erase(missing)
	waitFor(t, notices, "acme", 10*time.Second)
}

func waitStarted(t *testing.T, in *Inspector) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		in.mu.Lock()
		started := in.started != nil
		in.mu.Unlock()
		if started {
			return
		}
	}
	t.Fatal("the Inspector did not start")
}

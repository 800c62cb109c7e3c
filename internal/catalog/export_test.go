package catalog_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// TestOrphansSpareExports: a schedule named "exports" shares its directory with the tenant's
// exports; cleaning up after its killed backups removes what they left and no export.
func TestOrphansSpareExports(t *testing.T) {
	ctx := context.Background()
	store, err := storage.OpenVolume(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(key string) {
		t.Helper()
		if _, err := store.Put(ctx, key, bytes.NewReader([]byte("x"))); err != nil {
			t.Fatal(err)
		}
	}
	export, orphan := catalog.ExportObject("acme", "contract-end"), "acme/exports/20260101T000000Z-abcdef/"+catalog.DataObject
	put(export)
	put(catalog.ExportRecordObject("acme", "contract-end"))
	put(orphan)
	removed, err := catalog.DeleteOrphans(ctx, store, "acme", "exports", time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != orphan {
		t.Errorf("removed %v, want only %s", removed, orphan)
	}
	for _, key := range []string{export, catalog.ExportRecordObject("acme", "contract-end")} {
		if _, err := store.Stat(ctx, key); err != nil {
			t.Errorf("%s: %v", key, err)
		}
	}
	if _, err := store.Stat(ctx, orphan); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("orphan %s is still there: %v", orphan, err)
	}
}

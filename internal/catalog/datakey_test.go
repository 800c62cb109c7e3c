package catalog_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"filippo.io/age"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/datakey"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// The escrow copy of a key opens every backup made with it: a second write under the same ID
// (a torn read of a rotating Secret, or anyone's tampering through the agent) leaves it as it is.
func TestWriteDataKeyNeverReplacesAStoredCopy(t *testing.T) {
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
	other, err := datakey.Generate([]string{platform.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	if err := catalog.WriteDataKey(ctx, store, "acme", "uid-1", key); err != nil {
		t.Fatal(err)
	}
	wrong := key
	wrong.Wrapped = other.Wrapped
	if err := catalog.WriteDataKey(ctx, store, "acme", "uid-1", wrong); err != nil {
		t.Fatalf("second write: %v", err)
	}
	name, err := catalog.DataKeyObject("acme", "uid-1", key.ID)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := store.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	stored, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored, key.Wrapped) {
		t.Fatal("the stored escrow copy was replaced by another key's wrapped copy")
	}
	unwrapped, err := datakey.Unwrap(stored, key.ID, []age.Identity{platform})
	if err != nil || unwrapped == nil {
		t.Fatalf("the stored copy no longer opens key %s: %v", key.ID, err)
	}
}

// Package catalogtest lays out backups in a store the way the backup agent does, for the tests of
// what reads them (listing, retention, the operator's checks) without a PostgreSQL to dump.
package catalogtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// Backup is what a test says of a backup; the rest of the manifest follows from it.
type Backup struct {
	Tenant, TenantUID, Schedule, ID string
	StartedAt                       time.Time
	// DataKeyID names the tenant data key the backup claims to be encrypted to.
	DataKeyID string
	// Data is the stored object; a few bytes naming the backup when nil.
	Data []byte
}

// Write stores b's data object, then its manifest (describing the object, so a checksum
// verification passes), as the agent does: the backup exists once the manifest does.
func Write(t testing.TB, store storage.Store, b Backup) catalog.Manifest {
	t.Helper()
	ctx := context.Background()
	if b.Data == nil {
		b.Data = []byte("encrypted dump of " + b.ID)
	}
	dir := catalog.Dir(b.Tenant, b.Schedule, b.ID)
	if _, err := store.Put(ctx, storage.Join(dir, catalog.DataObject), bytes.NewReader(b.Data)); err != nil {
		t.Fatalf("write data of %s: %v", dir, err)
	}
	sum := sha256.Sum256(b.Data)
	m := catalog.Manifest{
		FormatVersion: catalog.FormatVersion, ID: b.ID, Tenant: b.Tenant, TenantUID: b.TenantUID, Schedule: b.Schedule,
		StartedAt: b.StartedAt, FinishedAt: b.StartedAt.Add(time.Minute), Database: "app",
		Object: catalog.ObjectInfo{Name: catalog.DataObject, Size: int64(len(b.Data)), SHA256: hex.EncodeToString(sum[:]),
			Format: "pg_dump-custom", Compression: "zstd", Encryption: "age"},
		DataKeyID: b.DataKeyID,
	}
	if err := catalog.WriteManifest(ctx, store, m); err != nil {
		t.Fatalf("write manifest of %s: %v", dir, err)
	}
	return m
}

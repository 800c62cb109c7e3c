package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/tenantops/tenant-operator/internal/storage"
)

// Exports are a tenant's data handed back to the customer (tenant-operator export): an archive
// encrypted to the customer's own age recipients, which the platform cannot read, and a record
// beside it that the operator reads:
//
//	<tenant>/exports/<id>.age    the archive (zip inside age), written in one stream
//	<tenant>/exports/<id>.json   ExportRecord, written last: the export exists once this does
//
// The record holds no table names or other customer data: it is stored in the clear.

// ExportsDir is the storage directory of a tenant's exports.
func ExportsDir(tenant string) string { return storage.Join(tenant, "exports") }

// ExportObject is the key of an export's archive.
func ExportObject(tenant, id string) string { return storage.Join(ExportsDir(tenant), id+".age") }

// ExportRecordObject is the key of an export's record.
func ExportRecordObject(tenant, id string) string {
	return storage.Join(ExportsDir(tenant), id+".json")
}

// ExportRecord describes one complete export in storage.
type ExportRecord struct {
	FormatVersion int    `json:"formatVersion"`
	ID            string `json:"id"`
	Tenant        string `json:"tenant"`
	TenantUID     string `json:"tenantUID,omitempty"`
	// Schedule and BackupID name the backup the export was made from.
	Schedule   string    `json:"schedule"`
	BackupID   string    `json:"backupId"`
	ExportedAt time.Time `json:"exportedAt"`
	// Object is the archive: its key relative to the location, size and sha256.
	Object string `json:"object"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Recipients are the fingerprints of the customer's age recipients the archive is encrypted
	// to (never the keys).
	Recipients []string `json:"recipients"`
	// Tables and Rows count what the archive holds.
	Tables int   `json:"tables"`
	Rows   int64 `json:"rows"`
}

// WriteExportRecord stores an export's record, which makes the export visible: write it only once
// the archive is stored whole.
func WriteExportRecord(ctx context.Context, store storage.Store, r ExportRecord) error {
	for kind, v := range map[string]string{"tenant": r.Tenant, "export id": r.ID} {
		if err := ValidateName(kind, v); err != nil {
			return err
		}
	}
	if err := putJSON(ctx, store, ExportRecordObject(r.Tenant, r.ID), r); err != nil {
		return fmt.Errorf("record export %s: %w", r.ID, err)
	}
	return nil
}

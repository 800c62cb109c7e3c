package backup

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// noStartLedger is why a restore laid out with --no-start replayed no erasure request.
const noStartLedger = "the data directory was laid out and not started (--no-start): whoever starts it must replay the erasure ledger"

// recordRestore stores the record of a restore that committed beside the tenant's backups
// (catalog.RestoreRecord), under the backup's Tenant UID or the first --tenant-uid given. Only
// the restore command records: drills and exports restore into databases that are thrown away.
// The restore has committed when this runs, so a record that cannot be written does not fail
// it: the command warns, on stderr, that the restore is missing from the tenant's account.
func recordRestore(ctx context.Context, store storage.Store, r catalog.RestoreRecord, uids []string, log, stderr io.Writer) {
	if r.TenantUID == "" && len(uids) > 0 {
		r.TenantUID = uids[0]
	}
	if r.TenantUID == "" {
		fmt.Fprintf(stderr, "warning: the restore is not recorded: backup %s records no Tenant UID; pass --tenant-uid to record restores of backups made before UIDs were recorded\n", r.BackupIDs[len(r.BackupIDs)-1])
		return
	}
	key, err := catalog.WriteRestoreRecord(ctx, store, r)
	if err != nil {
		fmt.Fprintf(stderr, "warning: the restore is done but not recorded in the storage, so the tenant's evidence will not show it: %v\n", err)
		return
	}
	logf(log, "restore: recorded as %s", key)
}

// databaseName is the name of the database a DSN connects to, as libpq resolves it (PGDATABASE,
// the user's name): all a restore record says of its target.
func databaseName(dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return ""
	}
	return cfg.Database
}

// pointInTimeRecord is the record of a point-in-time restore into database (or a new data
// directory, when dataDir).
func pointInTimeRecord(tenant string, target Target, res PointInTimeResult, database string, dataDir, ignoreLedger bool) catalog.RestoreRecord {
	last := res.Chain[len(res.Chain)-1]
	ids := make([]string, len(res.Chain))
	for i, b := range res.Chain {
		ids[i] = b.ID
	}
	r := catalog.RestoreRecord{Tenant: tenant, TenantUID: last.TenantUID, RestoredAt: time.Now().UTC(), Method: catalog.MethodPhysical,
		Schedule: last.Schedule, BackupIDs: ids, BackupStartedAt: last.StartedAt.UTC(), PointInTime: target.String(),
		Database: database, DataDirectory: dataDir, LedgerReplayed: res.LedgerEntries, IgnoreLedger: ignoreLedger, LedgerNotReplayed: res.LedgerIgnored}
	if !res.Recovered {
		r.LedgerNotReplayed = noStartLedger
	}
	return r
}

package catalog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/retention"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// Prune and restore records are the lasting account of what the platform did to a tenant's
// backups, which `tenant-operator evidence` shows an auditor long after the cluster's events
// expired:
//
//	<tenant>/.prunes/<tenant UID>/<schedule>/<time>-<random>.json   one pruning run: what it deleted and why
//	<tenant>/.restores/<tenant UID>/<time>-<random>.json            one restore: from what, into which database, what of the erasure ledger it replayed
//
// Each record is written once, under a name of its own (the time to the second, then 24 random
// bits), and never replaced. They hold names, IDs, times, counts and reasons, never data, keys,
// credentials or data subjects, so they are stored in the clear. Like .keys and .ledger, the
// directories start with a dot, which no schedule's name can: nothing that lists backups or
// cleans up after killed backup runs looks into them.
//
// How long they are kept: see RecordsKeptUntil. Crypto-erasure of a tenant deletes them with its
// backups (DeleteRecords): the erasure record in the cluster is the account that outlives it.

const (
	pruneRecordsDir   = ".prunes"
	restoreRecordsDir = ".restores"
	recordSuffix      = ".json"
	// intentPrefix starts the name of a pruning's intent, beside the records of its schedule
	// (WritePruneIntent). A record's name starts with its time, so nothing reads an intent as a
	// record, and erasure, which deletes everything under the records' directories, takes it too.
	intentPrefix = "intent-"
	// recordTimeLayout names a record by its time: fixed width in UTC, so names sort as times do.
	recordTimeLayout = "2006-01-02T15:04:05Z"
	// maxRecordObject bounds what is read of one record: a pruning of a few thousand backups at
	// most, each with a handful of reasons.
	maxRecordObject = 4 << 20
)

// Record format versions this agent and operator write and read.
const (
	PruneRecordFormatVersion   = 1
	RestoreRecordFormatVersion = 1
)

// recordsMargin is kept beyond the longer of a year and the policy's longest period.
const recordsMargin = 31 // days

// RecordsKeptUntil is when a prune or restore record made at `at` under a retention policy may
// go: after the longer of one year and the policy's longest period (retention.KeptUntil: the
// longest a backup it prunes may have lived), plus 31 days. A year, because audits come yearly
// and the year's records must all be there; the longest period, because a backup kept that long
// is still explained by the records of its schedule; the month, so that an audit a little late
// still finds the whole year. Without that bound, a record would be written for every pruning
// forever.
func RecordsKeptUntil(policy v1alpha1.RetentionPolicySpec, at time.Time) time.Time {
	until := at.AddDate(1, 0, 0)
	if longest, ok, err := retention.KeptUntil(policy, at); err == nil && ok && longest.After(until) {
		until = longest
	}
	return until.AddDate(0, 0, recordsMargin)
}

// PruneRecord is one pruning run of one schedule: what it deleted, by which rules, and why each
// backup went.
type PruneRecord struct {
	FormatVersion int    `json:"formatVersion"`
	Tenant        string `json:"tenant"`
	// TenantUID is the Tenant object the pruning was for (its listing: see WithTenantUIDs).
	TenantUID string `json:"tenantUID"`
	Schedule  string `json:"schedule"`
	// RetentionPolicy and its generation and rules, as the pruner applied them: the policy may
	// change later, the record does not.
	RetentionPolicy           string                       `json:"retentionPolicy"`
	RetentionPolicyGeneration int64                        `json:"retentionPolicyGeneration"`
	Rules                     v1alpha1.RetentionPolicySpec `json:"rules"`
	// TimeZone is where the rules cut days, weeks, months and years.
	TimeZone string `json:"timeZone"`
	// DecidedAt is the time the rules were applied at (ages count back from it); PrunedAt when
	// the last deletion was done.
	DecidedAt time.Time `json:"decidedAt"`
	PrunedAt  time.Time `json:"prunedAt"`
	// Due counts the backups the decision pruned; Pruned those deleted, oldest first. Fewer
	// deleted than due means a deletion failed: the rest stay until a later run, whose record
	// names them.
	Due    int            `json:"due"`
	Pruned []PrunedBackup `json:"pruned"`
	// Interrupted says the pruner was stopped (killed) after it deleted these backups and before
	// it stored this record: the next look completed the record from the pruning's intent
	// (CompletePruneIntents). PrunedAt is then when that look found them gone.
	Interrupted bool `json:"interrupted,omitempty"`
	// Key is where the record was found (not stored).
	Key string `json:"-"`
	// Intent is the key of the pruning's intent (WritePruneIntent) this record completes (not
	// stored): WritePruneRecord stores the record under the name the intent announced, then
	// removes the intent.
	Intent string `json:"-"`
}

// PrunedBackup is one deleted backup in a PruneRecord.
type PrunedBackup struct {
	ID        string    `json:"id"`
	StartedAt time.Time `json:"startedAt"`
	// Why holds, for each rule of the policy, why it did not keep the backup
	// (retention.Decision.Why).
	Why []string `json:"why"`
}

// RestoreRecord is one restore by `tenant-operator restore` that committed: what it restored,
// into which database, and what of the tenant's erasure ledger it replayed.
type RestoreRecord struct {
	FormatVersion int    `json:"formatVersion"`
	Tenant        string `json:"tenant"`
	TenantUID     string `json:"tenantUID"`
	// RestoredAt is when the restore committed (or, with NoStart, when the data directory was
	// laid out).
	RestoredAt time.Time `json:"restoredAt"`
	// Method is MethodLogical (a dump restored into a database) or MethodPhysical (a point in
	// time, recovered from base backups and WAL).
	Method string `json:"method"`
	// Schedule and BackupIDs name the backup restored: one dump, or a physical chain (full first).
	Schedule  string   `json:"schedule,omitempty"`
	BackupIDs []string `json:"backupIds"`
	// BackupStartedAt is when the (last) backup restored was taken.
	BackupStartedAt time.Time `json:"backupStartedAt"`
	// PointInTime is a point-in-time restore's target: an RFC 3339 time, "LSN 0/3000028" or
	// "the end of the archive".
	PointInTime string `json:"pointInTime,omitempty"`
	// Database is the target database's name; DataDirectory says a physical restore went into a
	// new data directory instead (its database is Database). Never a DSN, host or password.
	Database      string `json:"database"`
	DataDirectory bool   `json:"dataDirectory,omitempty"`
	// LedgerReplayed lists the erasure requests replayed before the restore committed, by the UID
	// of their ErasureRequest (the ledger entry's ID): never their subjects.
	LedgerReplayed []string `json:"ledgerReplayed"`
	// IgnoreLedger says the restore was run with --ignore-ledger; LedgerNotReplayed, when set, is
	// why the ledger was not replayed (unreadable with --ignore-ledger, or a server laid out and
	// not started): erasure requests made after the backup may be undone in the restored data.
	IgnoreLedger      bool   `json:"ignoreLedger"`
	LedgerNotReplayed string `json:"ledgerNotReplayed,omitempty"`
	// Key is where the record was found (not stored).
	Key string `json:"-"`
}

// PruneRecordsDir is the directory of one Tenant object's prune records of a schedule, or of all
// its schedules when schedule is empty.
func PruneRecordsDir(tenant, tenantUID, schedule string) (string, error) {
	if err := validateRecordOwner(tenant, tenantUID); err != nil {
		return "", err
	}
	if schedule == "" {
		return storage.Join(tenant, pruneRecordsDir, tenantUID), nil
	}
	if err := ValidateName("schedule", schedule); err != nil {
		return "", err
	}
	return storage.Join(tenant, pruneRecordsDir, tenantUID, schedule), nil
}

// RestoreRecordsDir is the directory of one Tenant object's restore records.
func RestoreRecordsDir(tenant, tenantUID string) (string, error) {
	if err := validateRecordOwner(tenant, tenantUID); err != nil {
		return "", err
	}
	return storage.Join(tenant, restoreRecordsDir, tenantUID), nil
}

func validateRecordOwner(tenant, tenantUID string) error {
	if err := ValidateName("tenant", tenant); err != nil {
		return err
	}
	return ValidateName("tenant UID", tenantUID)
}

// recordName is a new record's name in dir: its time, then 24 random bits, so that two records
// of the same second do not meet.
func recordName(dir string, at time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return storage.Join(dir, at.UTC().Format(recordTimeLayout)+"-"+hex.EncodeToString(b)+recordSuffix)
}

// recordTime reads the time from a record's name; false for an object that is not a record.
func recordTime(key string) (time.Time, bool) {
	base := path.Base(key)
	if !strings.HasSuffix(base, recordSuffix) || len(base) < len(recordTimeLayout) {
		return time.Time{}, false
	}
	t, err := time.Parse(recordTimeLayout, base[:len(recordTimeLayout)])
	return t, err == nil
}

// WritePruneRecord stores a pruning run's record and returns its key. Write it once the deletions
// it lists are done, listing only those: a record that says a backup was pruned must never exist
// for a backup that was not. With r.Intent, the record goes under the name the intent announced
// (writing it again writes the same object), and the intent is removed after it.
func WritePruneRecord(ctx context.Context, store storage.Store, r PruneRecord) (string, error) {
	dir, err := PruneRecordsDir(r.Tenant, r.TenantUID, r.Schedule)
	if err != nil {
		return "", err
	}
	if len(r.Pruned) == 0 {
		return "", errors.New("a prune record lists the backups deleted; none were")
	}
	r.FormatVersion = PruneRecordFormatVersion
	key := recordName(dir, r.PrunedAt)
	if r.Intent != "" {
		if path.Dir(r.Intent) != dir || !strings.HasPrefix(path.Base(r.Intent), intentPrefix) {
			return "", fmt.Errorf("%s is not the intent of a pruning of tenant %s schedule %s", r.Intent, r.Tenant, r.Schedule)
		}
		key = recordOfIntent(r.Intent)
	}
	if err := putJSON(ctx, store, key, r); err != nil {
		return "", fmt.Errorf("record pruning of tenant %s schedule %s: %w", r.Tenant, r.Schedule, err)
	}
	if r.Intent != "" {
		if err := removeIntent(ctx, store, r.Intent); err != nil {
			return key, fmt.Errorf("remove the intent %s of a recorded pruning: %w", r.Intent, err)
		}
	}
	return key, nil
}

// WritePruneIntent stores the intent of a pruning about to run, before its first deletion, and
// returns its key: the record the pruning will store, naming every backup the decision prunes,
// under a name of its own beside the records. The pruning's record, written with Intent set to
// that key (WritePruneRecord), takes the name the intent announced and removes the intent. A
// pruner stopped in between (killed, its node gone) leaves the intent, and the next look turns it
// into the record of the backups it names that are gone (CompletePruneIntents): without it, the
// backups such a pruner deleted would be in no record.
func WritePruneIntent(ctx context.Context, store storage.Store, r PruneRecord) (string, error) {
	dir, err := PruneRecordsDir(r.Tenant, r.TenantUID, r.Schedule)
	if err != nil {
		return "", err
	}
	if len(r.Pruned) == 0 {
		return "", errors.New("a pruning's intent lists the backups to delete; there are none")
	}
	r.FormatVersion = PruneRecordFormatVersion
	r.Key, r.Intent, r.Interrupted = "", "", false
	key := storage.Join(dir, intentPrefix+path.Base(recordName(dir, r.DecidedAt)))
	if err := putJSON(ctx, store, key, r); err != nil {
		return "", fmt.Errorf("record the intent of a pruning of tenant %s schedule %s: %w", r.Tenant, r.Schedule, err)
	}
	return key, nil
}

// removeIntent deletes an intent; one already gone (removed by another look) is no error.
func removeIntent(ctx context.Context, store storage.Store, key string) error {
	if err := store.Delete(ctx, key); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return nil
}

// recordOfIntent is the key of the record of the pruning an intent announced.
func recordOfIntent(intent string) string {
	return storage.Join(path.Dir(intent), strings.TrimPrefix(path.Base(intent), intentPrefix))
}

// CompletePruneIntents stores the records of the prunings of one Tenant object's schedule that
// were stopped after their intent was written (WritePruneIntent) and before their record was,
// and returns the keys of the records it stored. Intents in held are skipped: prunings whose
// record the caller still holds, to be written with WritePruneRecord. A completed record names the
// backups of the intent whose manifest is gone, and says it was Interrupted; an intent whose
// backups are all still there (the pruning stopped before its first deletion), or whose record
// exists (only the intent's removal was lost), is removed. A backup deleted by hand in the
// meantime is recorded as pruned too: it was due, and it is gone.
//
// Run it before the schedule's next pruning: a later pruning deletes what an intent names, and
// the intent would then claim those deletions as its own.
func CompletePruneIntents(ctx context.Context, store storage.Store, tenant, tenantUID, schedule string, held map[string]bool, now time.Time) ([]string, error) {
	dir, err := PruneRecordsDir(tenant, tenantUID, schedule)
	if err != nil {
		return nil, err
	}
	objs, err := store.List(ctx, dir)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("list the intents of prunings under %s: %w", dir, err)
	}
	var recorded []string
	for _, o := range objs {
		if path.Dir(o.Key) != dir || !strings.HasPrefix(path.Base(o.Key), intentPrefix) || held[o.Key] {
			continue
		}
		data, err := readSmall(ctx, store, o.Key, maxRecordObject)
		if err != nil {
			return recorded, fmt.Errorf("read the intent %s: %w", o.Key, err)
		}
		var r PruneRecord
		if err := json.Unmarshal(data, &r); err != nil {
			return recorded, fmt.Errorf("the intent %s is not valid JSON: %w", o.Key, err)
		}
		if r.Tenant != tenant || r.TenantUID != tenantUID || r.Schedule != schedule {
			return recorded, fmt.Errorf("the intent %s names tenant %s (%s) schedule %s: it was moved", o.Key, r.Tenant, r.TenantUID, r.Schedule)
		}
		_, err = store.Stat(ctx, recordOfIntent(o.Key))
		switch {
		case err == nil:
			// Recorded; only the intent's removal was lost.
			if err := removeIntent(ctx, store, o.Key); err != nil {
				return recorded, fmt.Errorf("remove the intent %s: %w", o.Key, err)
			}
			continue
		case !errors.Is(err, storage.ErrNotFound):
			return recorded, fmt.Errorf("look for the record of the intent %s: %w", o.Key, err)
		}
		var gone []PrunedBackup
		for _, b := range r.Pruned {
			_, err := store.Stat(ctx, storage.Join(Dir(tenant, schedule, b.ID), ManifestObject))
			switch {
			case errors.Is(err, storage.ErrNotFound):
				gone = append(gone, b)
			case err != nil:
				return recorded, fmt.Errorf("look for backup %s of the intent %s: %w", b.ID, o.Key, err)
			}
		}
		if len(gone) == 0 {
			if err := removeIntent(ctx, store, o.Key); err != nil {
				return recorded, fmt.Errorf("remove the intent %s: %w", o.Key, err)
			}
			continue
		}
		r.Pruned, r.Interrupted, r.PrunedAt, r.Intent = gone, true, now.UTC(), o.Key
		key, err := WritePruneRecord(ctx, store, r)
		if err != nil {
			return recorded, err
		}
		recorded = append(recorded, key)
	}
	return recorded, nil
}

// WriteRestoreRecord stores a restore's record and returns its key. Write it once the restore
// committed.
func WriteRestoreRecord(ctx context.Context, store storage.Store, r RestoreRecord) (string, error) {
	dir, err := RestoreRecordsDir(r.Tenant, r.TenantUID)
	if err != nil {
		return "", err
	}
	r.FormatVersion = RestoreRecordFormatVersion
	if r.LedgerReplayed == nil {
		r.LedgerReplayed = []string{}
	}
	key := recordName(dir, r.RestoredAt)
	if err := putJSON(ctx, store, key, r); err != nil {
		return "", fmt.Errorf("record restore of tenant %s: %w", r.Tenant, err)
	}
	return key, nil
}

// ReadPruneRecords reads one Tenant object's prune records in a location, every schedule's, the
// newest first, at most limit of them (0: all); total counts them all. A record that cannot be
// read fails the read: a gap in the account would pass for nothing pruned.
func ReadPruneRecords(ctx context.Context, store storage.Store, tenant, tenantUID string, limit int) (records []PruneRecord, total int, err error) {
	dir, err := PruneRecordsDir(tenant, tenantUID, "")
	if err != nil {
		return nil, 0, err
	}
	return readRecords(ctx, store, dir, limit, func(data []byte, key string) (PruneRecord, error) {
		var r PruneRecord
		if err := json.Unmarshal(data, &r); err != nil {
			return r, fmt.Errorf("prune record %s is not valid JSON: %w", key, err)
		}
		if r.FormatVersion != PruneRecordFormatVersion {
			return r, fmt.Errorf("prune record %s has format version %d; this program knows %d", key, r.FormatVersion, PruneRecordFormatVersion)
		}
		// The name is not part of the record: one copied under another tenant or schedule is not
		// that tenant's account.
		if want, _ := PruneRecordsDir(r.Tenant, r.TenantUID, r.Schedule); path.Dir(key) != want {
			return r, fmt.Errorf("prune record %s names tenant %s (%s) schedule %s: it was moved", key, r.Tenant, r.TenantUID, r.Schedule)
		}
		r.Key = key
		return r, nil
	})
}

// ReadRestoreRecords reads one Tenant object's restore records in a location, newest first, at
// most limit of them (0: all); total counts them all.
func ReadRestoreRecords(ctx context.Context, store storage.Store, tenant, tenantUID string, limit int) (records []RestoreRecord, total int, err error) {
	dir, err := RestoreRecordsDir(tenant, tenantUID)
	if err != nil {
		return nil, 0, err
	}
	return readRecords(ctx, store, dir, limit, func(data []byte, key string) (RestoreRecord, error) {
		var r RestoreRecord
		if err := json.Unmarshal(data, &r); err != nil {
			return r, fmt.Errorf("restore record %s is not valid JSON: %w", key, err)
		}
		if r.FormatVersion != RestoreRecordFormatVersion {
			return r, fmt.Errorf("restore record %s has format version %d; this program knows %d", key, r.FormatVersion, RestoreRecordFormatVersion)
		}
		if want, _ := RestoreRecordsDir(r.Tenant, r.TenantUID); path.Dir(key) != want {
			return r, fmt.Errorf("restore record %s names tenant %s (%s): it was moved", key, r.Tenant, r.TenantUID)
		}
		r.Key = key
		return r, nil
	})
}

func readRecords[T any](ctx context.Context, store storage.Store, dir string, limit int, decode func(data []byte, key string) (T, error)) ([]T, int, error) {
	objs, err := listRecords(ctx, store, dir)
	if err != nil {
		return nil, 0, err
	}
	// Names sort as times do, whatever the schedule directory: newest first.
	slices.SortFunc(objs, func(a, b storage.Object) int {
		if c := strings.Compare(path.Base(b.Key), path.Base(a.Key)); c != 0 {
			return c
		}
		return strings.Compare(b.Key, a.Key)
	})
	n := len(objs)
	if limit > 0 && n > limit {
		n = limit
	}
	out := make([]T, 0, n)
	for _, o := range objs[:n] {
		data, err := readSmall(ctx, store, o.Key, maxRecordObject)
		if err != nil {
			return nil, len(objs), fmt.Errorf("read record %s: %w", o.Key, err)
		}
		r, err := decode(data, o.Key)
		if err != nil {
			return nil, len(objs), err
		}
		out = append(out, r)
	}
	return out, len(objs), nil
}

// listRecords lists the records under dir (and its subdirectories): objects named as records.
func listRecords(ctx context.Context, store storage.Store, dir string) ([]storage.Object, error) {
	objs, err := store.List(ctx, dir)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("list records under %s: %w", dir, err)
	}
	out := objs[:0:0]
	for _, o := range objs {
		if _, ok := recordTime(o.Key); ok {
			out = append(out, o)
		}
	}
	return out, nil
}

// ExpireRecords deletes one Tenant object's prune records of a schedule and its restore records
// in a location once RecordsKeptUntil, under policy, has passed at now. It returns how many went.
// The pruner calls it after each run that pruned, so the records' count stays bounded by the
// backups made in the time they are kept.
func ExpireRecords(ctx context.Context, store storage.Store, tenant, tenantUID, schedule string, policy v1alpha1.RetentionPolicySpec, now time.Time) (int, error) {
	pruneDir, err := PruneRecordsDir(tenant, tenantUID, schedule)
	if err != nil {
		return 0, err
	}
	restoreDir, err := RestoreRecordsDir(tenant, tenantUID)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, dir := range []string{pruneDir, restoreDir} {
		objs, err := listRecords(ctx, store, dir)
		if err != nil {
			return removed, err
		}
		for _, o := range objs {
			at, _ := recordTime(o.Key)
			if now.Before(RecordsKeptUntil(policy, at)) {
				continue
			}
			if err := store.Delete(ctx, o.Key); err != nil {
				return removed, fmt.Errorf("delete expired record %s: %w", o.Key, err)
			}
			removed++
		}
	}
	return removed, nil
}

// CountRecords counts one Tenant object's prune and restore records in a location.
func CountRecords(ctx context.Context, store storage.Store, tenant, tenantUID string) (int, error) {
	objs, err := recordObjects(ctx, store, tenant, tenantUID)
	return len(objs), err
}

// DeleteRecords deletes one Tenant object's prune and restore records in a location (its
// crypto-erasure) and returns how many it deleted.
func DeleteRecords(ctx context.Context, store storage.Store, tenant, tenantUID string) (int, error) {
	objs, err := recordObjects(ctx, store, tenant, tenantUID)
	if err != nil {
		return 0, err
	}
	for i, o := range objs {
		if err := store.Delete(ctx, o.Key); err != nil {
			return i, fmt.Errorf("delete record %s: %w", o.Key, err)
		}
	}
	return len(objs), nil
}

// recordObjects lists every object under one Tenant object's record directories, records or not:
// erasure leaves nothing there.
func recordObjects(ctx context.Context, store storage.Store, tenant, tenantUID string) ([]storage.Object, error) {
	pruneDir, err := PruneRecordsDir(tenant, tenantUID, "")
	if err != nil {
		return nil, err
	}
	restoreDir, err := RestoreRecordsDir(tenant, tenantUID)
	if err != nil {
		return nil, err
	}
	var out []storage.Object
	for _, dir := range []string{pruneDir, restoreDir} {
		objs, err := store.List(ctx, dir)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("list records under %s: %w", dir, err)
		}
		out = append(out, objs...)
	}
	return out, nil
}

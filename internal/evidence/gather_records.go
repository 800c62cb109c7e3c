package evidence

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/catalog"
)

// maxRecordsRead bounds the records read per Tenant object and storage location, the newest
// first; the count of all of them stays exact, and the older ones are in the storage for whoever
// needs them.
const maxRecordsRead = 500

// recordLocations are the schedules' storage locations that could be opened, each once: schedules
// sharing a location share its records.
func (g *gatherer) recordLocations() []listing {
	seen := map[string]bool{}
	var out []listing
	for _, l := range g.listings {
		if l.store == nil || seen[l.location] {
			continue
		}
		seen[l.location] = true
		out = append(out, l)
	}
	return out
}

// pruneRecords shows the prune records the operator left in storage: every backup retention
// deleted, when, by which rules, and why no rule kept it. They outlive the events by a year and
// more (catalog.RecordsKeptUntil).
func (g *gatherer) pruneRecords(ctx context.Context, s *Section) {
	tbl := s.table("pruneRecords", "Backups deleted by the retention rules (records in the backup storage)", col("prunedAt", "Deleted"),
		col("schedule", "Schedule"), col("id", "Backup ID"), col("startedAt", "Taken"), col("why", "Why no rule kept it"),
		col("policy", "Rules applied"), col("storage", "Record in"))
	if g.src.OpenStorage == nil {
		s.observe("pruneRecords", "Deletions recorded in the backup storage", "not read: the backup storage was not read")
		return
	}
	var runs, deleted, notRead int
	var failed []string
	for _, l := range g.recordLocations() {
		for _, uid := range builders.TenantUIDs(g.t) {
			dir, err := catalog.PruneRecordsDir(g.t.Name, uid, "")
			if err != nil {
				continue
			}
			s.proof(Source{Kind: "Storage", Location: l.location, Field: dir})
			records, total, err := catalog.ReadPruneRecords(ctx, l.store, g.t.Name, uid, maxRecordsRead)
			if err != nil {
				failed = append(failed, readError("The prune records in "+l.location, err))
				continue
			}
			runs, notRead = runs+total, notRead+total-len(records)
			for _, r := range records {
				deleted += len(r.Pruned)
				prunedAt := formatTime(r.PrunedAt)
				if r.Interrupted {
					// Completed by a later look from the pruning's intent: when it found them gone.
					prunedAt += " at the latest (the pruner was stopped before it recorded them)"
				}
				for _, b := range r.Pruned {
					tbl.Rows = append(tbl.Rows, map[string]string{"prunedAt": prunedAt, "schedule": r.Schedule, "id": b.ID,
						"startedAt": formatTime(b.StartedAt), "why": strings.Join(b.Why, "; "),
						"policy":  fmt.Sprintf("RetentionPolicy %s, generation %d, days cut in %s", r.RetentionPolicy, r.RetentionPolicyGeneration, r.TimeZone),
						"storage": l.location})
				}
			}
		}
	}
	// Newest first over every location; times are RFC 3339 in UTC, which sort as strings.
	sort.SliceStable(tbl.Rows, func(i, j int) bool { return tbl.Rows[i]["prunedAt"] > tbl.Rows[j]["prunedAt"] })
	if len(tbl.Rows) > maxBackupRows {
		s.observe("pruneRecordRowsOmitted", "Deleted backups not listed in the table", strconv.Itoa(len(tbl.Rows)-maxBackupRows))
		tbl.Rows = tbl.Rows[:maxBackupRows]
	}
	s.observe("pruneRecords", "Deletions recorded in the backup storage", fmt.Sprintf("%d prunings, %d backups deleted in those read", runs, deleted))
	if notRead > 0 {
		s.observe("pruneRecordsNotRead", "Older prune records not read (in the storage)", strconv.Itoa(notRead))
	}
	for i, f := range failed {
		s.observe("pruneRecordsError."+strconv.Itoa(i), "Prune records", f)
	}
}

// restoreRecord is a restore record with where it was read.
type restoreRecord struct {
	catalog.RestoreRecord
	location string
}

// restoreRecords reads the restore records of the tenant in every location, newest first, and
// what could not be read.
func (g *gatherer) restoreRecords(ctx context.Context, s *Section) ([]restoreRecord, []string) {
	var out []restoreRecord
	var failed []string
	for _, l := range g.recordLocations() {
		for _, uid := range builders.TenantUIDs(g.t) {
			dir, err := catalog.RestoreRecordsDir(g.t.Name, uid)
			if err != nil {
				continue
			}
			s.proof(Source{Kind: "Storage", Location: l.location, Field: dir})
			records, _, err := catalog.ReadRestoreRecords(ctx, l.store, g.t.Name, uid, maxRecordsRead)
			if err != nil {
				failed = append(failed, readError("The restore records in "+l.location, err))
				continue
			}
			for _, r := range records {
				out = append(out, restoreRecord{RestoreRecord: r, location: l.location})
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].RestoredAt.After(out[j].RestoredAt) })
	return out, failed
}

// restoredWhat says what a restore brought back, in plain words.
func restoredWhat(r catalog.RestoreRecord) string {
	if r.Method == catalog.MethodPhysical {
		return fmt.Sprintf("the database as at %s, from backup %s of schedule %s", r.PointInTime, strings.Join(r.BackupIDs, " + "), r.Schedule)
	}
	return fmt.Sprintf("backup %s of schedule %s, taken %s", strings.Join(r.BackupIDs, ", "), r.Schedule, formatTime(r.BackupStartedAt))
}

// ledgerText says what a restore did with the erasure ledger.
func ledgerText(r catalog.RestoreRecord) string {
	switch {
	case r.LedgerNotReplayed != "" && r.IgnoreLedger:
		return "NOT REPLAYED (--ignore-ledger): " + r.LedgerNotReplayed
	case r.LedgerNotReplayed != "":
		return "NOT REPLAYED: " + r.LedgerNotReplayed
	case len(r.LedgerReplayed) == 0:
		return "replayed: no request was made after the backup"
	}
	return "replayed before the restore committed"
}

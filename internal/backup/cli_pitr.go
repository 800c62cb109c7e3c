package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// pointInTimeFlags are the flags that make restore a point-in-time restore of physical backups
// (runPointInTimeRestore); without any of them it restores a dump (runRestore).
var pointInTimeFlags = []string{"to-time", "to-lsn", "to-latest", "data-dir"}

// runRestoreOfMethod runs restore: point in time into a data directory, or a dump into a database.
func runRestoreOfMethod(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && slices.Contains(pointInTimeFlags, name) {
			return runPointInTimeRestore(ctx, args, stdout, stderr)
		}
	}
	return runRestore(ctx, args, stdout, stderr)
}

func runPointInTimeRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("restore", "restore --storage LOCATION --tenant T [--schedule S] --identity-file F --signing-public-key KEY...\n"+
		"       --to-time RFC3339 | --to-lsn LSN | --to-latest  --data-dir DIR [--no-start] | --dsn URL [--force] [--no-owner] [--scratch-dir DIR]", stderr)
	loc := fs.String("storage", "", "where backups live (see backup -h)")
	tenant := fs.String("tenant", "", "tenant name")
	schedule := fs.String("schedule", "", "only this schedule's base backups (default: every schedule's)")
	var uids stringList
	fs.Var(&uids, "tenant-uid", "only backups made for this Tenant object's UID (repeatable; backups that recorded none always count)")
	identityFile := fs.String("identity-file", "", "age identity file matching the backups' recipients; restore_command reads it too")
	toTime := fs.String("to-time", "", "recover to this moment, RFC 3339 (2026-05-01T12:00:00Z): every transaction committed until then, none after")
	toLSN := fs.String("to-lsn", "", "recover to this WAL position (0/3000028)")
	toLatest := fs.Bool("to-latest", false, "recover everything the WAL archive holds")
	dataDir := fs.String("data-dir", "", "the new data directory, which must not exist or be empty")
	dsn := fs.String("dsn", "", "instead of --data-dir: copy the recovered database into this existing database, postgres://USER@HOST:PORT/DB (password from PGPASSWORD), in one transaction, after recovering in a scratch directory")
	force := fs.Bool("force", false, "with --dsn: restore into a database that is not empty, replacing the objects the copy holds")
	noOwner := fs.Bool("no-owner", false, "with --dsn: do not restore ownership and grants; the objects belong to the --dsn role")
	scratchDir := fs.String("scratch-dir", "", "with --dsn: where the scratch data directory lives while the copy runs (default: the temporary directory); it needs the room of the whole cluster")
	noStart := fs.Bool("no-start", false, "lay out the data directory and its recovery settings, and print how to start it, instead of recovering and checking here")
	prefetchMiB := fs.Int64("wal-prefetch-mib", DefaultWALPrefetchBytes>>20, "while recovering: fetch and check about this many MiB of WAL segments (at least one) ahead of the server, in pg_wal/tenantops-prefetch of the data directory, removed once recovered; 0 fetches each segment only when the server asks for it")
	pgBin := fs.String("pg-bin-dir", "", "directory holding postgres and pg_combinebackup (default $PG_BIN_DIR, then /usr/lib/postgresql/<major>/bin, then PATH)")
	runAs := fs.String("run-as", "", "when running as root: the user the server runs as and who owns the data directory (default postgres)")
	tf := fs.trustBackups()
	ignoreLedger := fs.Bool("ignore-ledger", false, "restore even when the tenant's erasure ledger cannot be read: erasure requests made after the target may then be undone")
	verbose := fs.Bool("v", false, "print progress on stderr")
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := fs.required("storage", "tenant", "identity-file"); err != nil {
		return err
	}
	if (*dataDir == "") == (*dsn == "") {
		return usageError("restore: give one of --data-dir (a new data directory) and --dsn (an existing database to copy the recovered one into)")
	}
	if *dsn != "" && *noStart {
		return usageError("restore: --no-start lays out a data directory; it does not go with --dsn")
	}
	var target Target
	targets := 0
	if *toTime != "" {
		t, err := time.Parse(time.RFC3339Nano, *toTime)
		if err != nil {
			return usageError(fmt.Sprintf("restore: --to-time %q: want RFC 3339, e.g. 2026-05-01T12:00:00Z", *toTime))
		}
		target.Time = t
		targets++
	}
	if *toLSN != "" {
		l, err := catalog.ParseLSN(*toLSN)
		if err != nil {
			return usageError("restore: --to-lsn: " + err.Error())
		}
		target.LSN = l
		targets++
	}
	if *toLatest {
		target.Latest = true
		targets++
	}
	if targets != 1 {
		return usageError("restore: give exactly one of --to-time, --to-lsn and --to-latest")
	}
	trust, err := tf.trust()
	if err != nil {
		return err
	}
	ids, err := ReadIdentities(*identityFile)
	if err != nil {
		return err
	}
	store, err := storage.Open(ctx, *loc)
	if err != nil {
		return err
	}
	idFile, err := filepath.Abs(*identityFile)
	if err != nil {
		return err
	}
	o := PointInTimeOptions{Store: store, Location: *loc, Tenant: *tenant, Schedule: *schedule, Identities: ids, IdentityFile: idFile,
		Trust: trust, Target: target, PgBinDir: *pgBin, RunAs: *runAs, NoStart: *noStart, WALPrefetchBytes: *prefetchMiB << 20, Log: progress(*verbose, stderr),
		Ledger: PointInTimeLedger{TenantUIDs: uids, Ignore: *ignoreLedger}}
	if *prefetchMiB <= 0 {
		o.WALPrefetchBytes = -1
	}
	if len(uids) > 0 {
		o.Owners = []catalog.ListOption{catalog.WithTenantUIDs(uids...)}
	}
	if *dsn != "" {
		res, err := RestorePointInTimeInto(ctx, o, IntoDatabase{DSN: *dsn, Force: *force, NoOwner: *noOwner, ScratchDir: *scratchDir})
		if err != nil {
			return explainWALRefusal(explainRefusal(err, trust), trust)
		}
		recordRestore(ctx, store, pointInTimeRecord(*tenant, target, res.PointInTimeResult, databaseName(*dsn), false, *ignoreLedger), uids, o.Log, stderr)
		warnLedgerIgnored(stderr, res.PointInTimeResult)
		var rows int64
		for _, t := range res.TargetTables {
			rows += t.Rows
		}
		fmt.Fprintf(stdout, "restored tenant %s to %s into database %s: backup %s, replayed to %s, %s; the target has %d tables, %d rows, as recovered\n",
			*tenant, howFar(target, res.PointInTimeResult), redactedDSN(*dsn), chainOf(res.Chain), res.ReplayLSN, lastTransactionOf(res.PointInTimeResult), len(res.TargetTables), rows)
		return nil
	}
	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	o.DataDir = dir
	res, err := RestorePointInTime(ctx, o)
	if err != nil {
		return explainWALRefusal(explainRefusal(err, trust), trust)
	}
	database := res.Database
	if database == "" {
		database = res.Chain[len(res.Chain)-1].Database // not started: the backed-up database
	}
	recordRestore(ctx, store, pointInTimeRecord(*tenant, target, res, database, true, *ignoreLedger), uids, o.Log, stderr)
	warnLedgerIgnored(stderr, res)
	chain := chainOf(res.Chain)
	if !res.Recovered {
		fmt.Fprintf(stdout, "data directory %s holds backup %s of tenant %s, set to recover to %s.\n"+
			"Start it as its owner with the storage credentials in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), e.g.\n"+
			"  postgres -D %s\n"+
			"It replays WAL through restore_command = %s\n"+
			"and promotes at the target; then ALTER SYSTEM RESET each of %s.\n",
			dir, chain, *tenant, target, dir, confQuote(res.RestoreCommand), strings.Join(recoverySettings, ", "))
		return nil
	}
	var rows int64
	for _, t := range res.Tables {
		rows += t.Rows
	}
	how, last2 := howFar(target, res), lastTransactionOf(res)
	fmt.Fprintf(stdout, "restored tenant %s to %s into %s: backup %s, replayed to %s, %s, promoted to timeline %d; database %s has %d tables, %d rows, %d large objects\n",
		*tenant, how, dir, chain, res.ReplayLSN, last2, res.Timeline, res.Database, len(res.Tables), rows, res.LargeObjects)
	if res.StopLine != "" {
		fmt.Fprintf(stdout, "server: %s\n", res.StopLine)
	}
	fmt.Fprintf(stdout, "start it with: postgres -D %s (WAL archiving is off in it: ALTER SYSTEM RESET archive_mode when it becomes the tenant's server)\n", dir)
	return nil
}

// warnLedgerIgnored says, even without -v, that a point-in-time restore may hold data erased on
// request.
func warnLedgerIgnored(stderr io.Writer, res PointInTimeResult) {
	if res.LedgerIgnored != "" {
		fmt.Fprintf(stderr, "warning: restored without replaying the erasure ledger (--ignore-ledger): %s\n", res.LedgerIgnored)
	}
}

// runWindow is backups window: what restore --to-time and --to-lsn can reach for a tenant.
func runWindow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("backups window", "backups window --storage LOCATION --tenant T [--schedule S] [--signing-public-key KEY...] [-o json]", stderr)
	loc := fs.String("storage", "", "where backups live (see backup -h)")
	tenant := fs.String("tenant", "", "tenant name")
	schedule := fs.String("schedule", "", "only this schedule's base backups (default: every schedule's)")
	var uids stringList
	fs.Var(&uids, "tenant-uid", "only backups made for this Tenant object's UID (repeatable; backups that recorded none always count)")
	output := fs.String("o", "text", "output format: text or json")
	tf := fs.trustBackups()
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := fs.required("storage", "tenant"); err != nil {
		return err
	}
	if *output != "text" && *output != "json" {
		return usageError(fmt.Sprintf("backups window: -o %q: want text or json", *output))
	}
	trust, err := tf.trust()
	if err != nil {
		return err
	}
	store, err := storage.Open(ctx, *loc)
	if err != nil {
		return err
	}
	var owners []catalog.ListOption
	if len(uids) > 0 {
		owners = append(owners, catalog.WithTenantUIDs(uids...))
	}
	w, ok, err := RecoverableWindow(ctx, store, *tenant, *schedule, owners, trust)
	if err != nil {
		return explainWALRefusal(explainRefusal(err, trust), trust)
	}
	if !ok {
		return fmt.Errorf("tenant %s cannot be restored to a point in time: no physical backup whose signature checks has its WAL archived up to its end", *tenant)
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(w)
	}
	fmt.Fprintf(stdout, "tenant %s, system %s: restore --to-time from %s to %s, --to-lsn from %s to %s (timeline %d, last archived segment %s); %d base backups, the oldest %s\n",
		*tenant, w.SystemID, w.EarliestTime.Format(time.RFC3339Nano), w.LatestWritten.Format(time.RFC3339Nano), w.EarliestLSN, w.LatestLSN,
		w.LatestTimeline, w.LastSegment, w.Backups, w.EarliestBackup)
	return nil
}

// chainOf names a restored chain: a full backup, then its incremental ones.
func chainOf(chain []catalog.Backup) string {
	ids := make([]string, len(chain))
	for i, b := range chain {
		ids[i] = b.ID
	}
	return strings.Join(ids, " + ")
}

// howFar says where a recovery stopped, in the target's terms.
func howFar(target Target, res PointInTimeResult) string {
	how := target.String()
	if res.ToEnd && !target.Latest {
		how += " (no later transaction is archived: the end of the archive)"
	}
	return how
}

func lastTransactionOf(res PointInTimeResult) string {
	if res.LastTransaction.IsZero() {
		return "no transaction replayed"
	}
	return "last transaction committed " + res.LastTransaction.Format(time.RFC3339Nano)
}

// redactedDSN is a DSN for output: without its password.
func redactedDSN(dsn string) string {
	ci, err := parseConnInfo(dsn)
	if err != nil {
		return "(the --dsn database)"
	}
	return ci.Redacted()
}

package backup_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"

	agentlib "github.com/tenantops/tenant-operator/internal/backup"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
	"github.com/tenantops/tenant-operator/test/stack"
)

// TestPointInTimeRecovery archives a PostgreSQL 18 server's WAL through the agent into S3, takes a
// full and an incremental physical backup through the command line an SRE uses, and restores:
// to a noted time and to a noted WAL position (rows exactly as they were then, none of what came
// after), and to the end of the archive through the incremental chain (rows exactly as the server
// has them).
func TestPointInTimeRecovery(t *testing.T) {
	t.Parallel()
	s3 := stack.StartS3(t)
	k, sg := newKey(t), newSigner(t)
	loc := s3.Location("backups")
	pg := startArchiving(t, "18", newArchiver(t, s3, loc, "acme", k, sg))
	env := append(append(s3.Env(), "PG_BIN_DIR="+pg.BinDir), sg.env()...)
	app := pg.CreateDatabase(t, "app")
	backup := func(extra ...string) result {
		t.Helper()
		return mustAgent(t, env, append([]string{"backup", "--method", "physical", "--dsn", app, "--storage", loc,
			"--tenant", "acme", "--schedule", "nightly", "--recipient", k.recipient}, extra...)...)
	}
	restore := func(dataDir string, target ...string) result {
		t.Helper()
		return mustAgent(t, env, append([]string{"restore", "--storage", loc, "--tenant", "acme",
			"--identity-file", k.identityFile, "--data-dir", dataDir, "-v"}, target...)...)
	}

	pg.Exec(t, "app", `CREATE TABLE items (id int PRIMARY KEY, v text);
		INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 20000) g`)
	full := backup().lastLine()
	m := readManifest(t, s3, "backups/acme/nightly/"+full+"/manifest.json")
	if m.Method != catalog.MethodPhysical || m.FormatVersion != catalog.PhysicalFormatVersion || m.Physical == nil || m.Physical.Parent != "" ||
		m.Physical.StopLSN <= m.Physical.StartLSN || m.Physical.Timeline != 1 || m.Physical.BackupManifest.Size == 0 || m.Physical.Superuser != "postgres" {
		t.Fatalf("manifest of the full backup: method %q format %d %+v", m.Method, m.FormatVersion, m.Physical)
	}

	// Rows until a noted moment, more until a noted WAL position, then more that a restore to
	// either must not bring back.
	pg.Exec(t, "app", `INSERT INTO items SELECT g, 'before' FROM generate_series(20001, 21000) g`)
	atNoted := contentOf(t, app, "items")
	noted := serverClock(t, pg)
	// A time target must lie a margin (commitTimeMargin) before the last archived segment was
	// written; a test running fast must not come closer.
	time.Sleep(2500 * time.Millisecond)
	pg.Exec(t, "app", `INSERT INTO items SELECT g, 'mid' FROM generate_series(21001, 21500) g`)
	atLSN := contentOf(t, app, "items")
	var notedLSN string
	query(t, pg.DSN, `SELECT pg_current_wal_insert_lsn()::text`, &notedLSN) // the test servers commit asynchronously: the insert position, not the write position, is past the commit
	pg.Exec(t, "app", `INSERT INTO items SELECT g, 'after' FROM generate_series(21501, 22000) g; DELETE FROM items WHERE id <= 100`)
	switchAndWait(t, pg)

	dataDir := shared(t) + "/to-time"
	r := restore(dataDir, "--to-time", noted)
	t.Logf("restore --to-time:\n%s%s", r.stdout, r.stderr)
	restoreOutput(t, r, "backup "+full+",", "promoted to timeline 2", "database app has 1 tables, 21000 rows")
	if got := contentOf(t, restoredServer(t, pg.BinDir, dataDir, "app"), "items"); got != atNoted {
		t.Fatalf("restored to %s: items has %s, want %s as at that moment", noted, got, atNoted)
	}

	// The same moment into an existing database of an ordinary role (how a TenantRestore reaches
	// a live tenant): recovered in a scratch directory, copied in one transaction, rows compared.
	pg.Exec(t, "postgres", `CREATE ROLE restorer LOGIN PASSWORD 'restorer-pw'`)
	pg.Exec(t, "postgres", `CREATE DATABASE restored OWNER restorer`)
	u, err := url.Parse(pg.DSNFor("restored"))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User("restorer")
	target := u.String()
	intoEnv := append(append([]string{}, env...), "PGPASSWORD=restorer-pw")
	// The backups recorded no Tenant UID (made as before UIDs were): --tenant-uid names the
	// Tenant the restore is recorded for.
	const uid = "7f3c1d2e-0000-4b5a-9c8d-1e2f3a4b5c6d"
	into := []string{"restore", "--storage", loc, "--tenant", "acme", "--identity-file", k.identityFile, "--to-time", noted,
		"--dsn", target, "--no-owner", "--scratch-dir", shared(t), "--tenant-uid", uid, "-v"}
	r = mustAgent(t, intoEnv, into...)
	t.Logf("restore --to-time --dsn:\n%s%s", r.stdout, r.stderr)
	restoreOutput(t, r, "backup "+full+",", "into database ", "the target has 1 tables, 21000 rows, as recovered")
	if strings.Contains(r.stdout+r.stderr, "restorer-pw") {
		t.Fatal("the target's password is in the output")
	}
	if got := contentOf(t, target+"&password=restorer-pw", "items"); got != atNoted {
		t.Fatalf("restored to %s into a database: items has %s, want %s as at that moment", noted, got, atNoted)
	}
	var owner string
	query(t, pg.DSNFor("restored"), `SELECT tableowner FROM pg_tables WHERE tablename = 'items'`, &owner)
	if owner != "restorer" {
		t.Fatalf("with --no-owner the restored table belongs to %q, want the target's role", owner)
	}
	// Recorded beside the backups: the point in time, the chain, the database's name only.
	records, _, err := catalog.ReadRestoreRecords(context.Background(), openS3Store(t, s3, loc), "acme", uid, 0)
	if err != nil || len(records) != 1 {
		t.Fatalf("restore records: %+v, %v; want 1", records, err)
	}
	if rec := records[0]; rec.Method != catalog.MethodPhysical || rec.PointInTime != noted || rec.Database != "restored" || rec.DataDirectory ||
		len(rec.BackupIDs) != 1 || rec.BackupIDs[0] != full || rec.LedgerNotReplayed != "" || rec.LedgerReplayed == nil {
		t.Errorf("restore record: %+v", rec)
	}
	// Into the same database again: refused before anything is fetched, unless forced.
	failAgent(t, intoEnv, "is not empty (1 tables", into...)
	restoreOutput(t, mustAgent(t, intoEnv, append(into, "--force")...), "the target has 1 tables, 21000 rows, as recovered")
	if _, total, err := catalog.ReadRestoreRecords(context.Background(), openS3Store(t, s3, loc), "acme", uid, 0); err != nil || total != 2 {
		t.Errorf("restore records after a refused and a forced restore: %d, %v; want 2", total, err)
	}

	dataDir = shared(t) + "/to-lsn"
	r = restore(dataDir, "--to-lsn", notedLSN)
	t.Logf("restore --to-lsn:\n%s%s", r.stdout, r.stderr)
	restoreOutput(t, r, "backup "+full+",", "promoted to timeline 2", "database app has 1 tables, 21500 rows", "recovery stopping before WAL location")
	if got := contentOf(t, restoredServer(t, pg.BinDir, dataDir, "app"), "items"); got != atLSN {
		t.Fatalf("restored to LSN %s: items has %s, want %s as at that position", notedLSN, got, atLSN)
	}

	// An incremental backup after 1% of the rows changed, then more writes; the end of the archive
	// comes back through the chain, exactly as the server has it.
	// A physical base backup is no dump to export: by id it is refused with what to do, and the
	// latest export looks at dumps only (there are none here).
	customer, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	for backupID, want := range map[string]string{full: "is a physical base backup", "latest": "no logical backups"} {
		r := agent(t, env, "export", "--storage", loc, "--tenant", "acme", "--backup", backupID, "--identity-file", k.identityFile,
			"--recipient", customer.Recipient().String(), "-o", shared(t)+"/refused.zip.age")
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("export --backup %s: exit %d, stderr %q; want a refusal saying %q", backupID, r.code, r.stderr, want)
		}
	}

	pg.Exec(t, "app", `UPDATE items SET v = 'changed' WHERE id % 100 = 0`)
	incr := backup("--incremental", "--identity-file", k.identityFile).lastLine()
	mi := readManifest(t, s3, "backups/acme/nightly/"+incr+"/manifest.json")
	// Smaller than the full backup, not much: it carries the WAL from its start to its end (-X
	// fetch), a 16 MiB segment that is most of it on a database this small.
	if mi.Physical == nil || mi.Physical.Parent != full || mi.Object.Size >= m.Object.Size {
		t.Fatalf("incremental backup: parent %q, %d bytes stored against the full backup's %d", mi.Physical.Parent, mi.Object.Size, m.Object.Size)
	}
	pg.Exec(t, "app", `INSERT INTO items SELECT g, 'latest' FROM generate_series(22001, 22500) g`)
	switchAndWait(t, pg)
	latest := contentOf(t, app, "items")
	dataDir = shared(t) + "/to-latest"
	r = restore(dataDir, "--to-latest")
	t.Logf("restore --to-latest:\n%s%s", r.stdout, r.stderr)
	restoreOutput(t, r, "backup "+full+" + "+incr+",", "database app has 1 tables, 22400 rows")
	if got := contentOf(t, restoredServer(t, pg.BinDir, dataDir, "app"), "items"); got != latest {
		t.Fatalf("restored to the latest: items has %s, want %s", got, latest)
	}

	// What the operator will show: the window from the full backup to the last archived segment.
	l, err := storage.ParseLocation(loc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := storage.OpenS3(context.Background(), l, storage.Credentials{AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := catalog.ListEntries(context.Background(), store, "acme", "nightly")
	if err != nil {
		t.Fatal(err)
	}
	wal, err := catalog.ListWAL(context.Background(), store, "acme")
	if err != nil {
		t.Fatal(err)
	}
	w, ok := catalog.RecoverableWindow(entries, wal)
	var last string
	query(t, pg.DSN, `SELECT last_archived_wal FROM pg_stat_archiver`, &last)
	if !ok || w.EarliestBackup != full || w.Backups != 2 || w.LastSegment != last || !strings.HasPrefix(w.SystemID, m.Physical.SystemID) {
		t.Fatalf("window %+v (ok %v), want from %s to %s", w, ok, full, last)
	}
	// What an SRE reads before choosing a target: the same window, to the moment the last
	// archived segment was written.
	wr := mustAgent(t, env, "backups", "window", "--storage", loc, "--tenant", "acme", "-o", "json")
	var shown agentlib.Window
	if err := json.Unmarshal([]byte(wr.stdout), &shown); err != nil {
		t.Fatalf("backups window -o json: %v\n%s", err, wr.stdout)
	}
	notedTime, _ := time.Parse(time.RFC3339Nano, noted)
	if shown.EarliestBackup != full || shown.LastSegment != last || shown.Backups != 2 ||
		shown.EarliestTime.After(notedTime) || !shown.LatestWritten.After(notedTime) || shown.LatestWritten.After(time.Now()) {
		t.Fatalf("backups window shows %+v; want from %s (before %s) to %s", shown, full, noted, last)
	}
	restoreOutput(t, mustAgent(t, env, "backups", "window", "--storage", loc, "--tenant", "acme"), "restore --to-time from ", "last archived segment "+last)

	// Retention keeping only the incremental chain deletes nothing it needs.
	d := catalog.DecideWAL(entries, wal)
	for _, f := range d.Delete {
		if f.SegNo(m.Physical.WALSegmentSize) >= m.Physical.StartSegment() {
			t.Fatalf("WAL retention deletes %s, which backup %s needs", f.Name, full)
		}
	}

	// verify checks a physical backup's two stored objects against its signed manifest; a
	// damaged backup_manifest (what the next incremental backup needs) is found too.
	verify := []string{"verify", "--storage", loc, "--tenant", "acme", "--schedule", "nightly", "--backup", full}
	restoreOutput(t, mustAgent(t, env, verify...), "checksum ok")
	manifestKey := "backups/acme/nightly/" + full + "/" + catalog.BackupManifestObject
	if _, err := s3.Client.PutObject(context.Background(), s3.Bucket, manifestKey, strings.NewReader("damaged"), 7, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	failAgent(t, env, `ChecksumMismatch: stored "backup_manifest.zst.age" sha256 `, verify...)
}

package backup_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantops/tenant-operator/internal/backup/pgcluster"
	"github.com/tenantops/tenant-operator/internal/datakey"
	"github.com/tenantops/tenant-operator/test/stack"
)

// shared is a directory the server's user (postgres, when tests run as root) can read, for what
// archive_command reads and for restored data directories; removed when the test ends.
func shared(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tenantops-pitr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// archiver is what a database pod gives its archive_command: the agent, the storage and the
// tenant's keys, in the server's environment.
type archiver struct {
	env    []string
	config string
}

// newArchiver sets archive_command to the agent's wal-archive, archiving into loc for tenant.
func newArchiver(t *testing.T, s3 *stack.S3, loc, tenant string, k key, sg signer) archiver {
	t.Helper()
	dir := shared(t)
	keyFile := filepath.Join(dir, "signing.key")
	data, err := os.ReadFile(sg.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := pgcluster.Chown(dir, ""); err != nil {
		t.Fatal(err)
	}
	return archiver{
		env: append(s3.Env(), "TENANTOPS_AGENT=1", "TENANTOPS_STORAGE="+loc, "TENANTOPS_TENANT="+tenant,
			"TENANTOPS_RECIPIENTS="+k.recipient, "TENANTOPS_SIGNING_KEY_FILE="+keyFile),
		config: fmt.Sprintf("archive_mode = on\narchive_command = '%s wal-archive %%p %%f'\nwal_level = replica\n", agentBinary),
	}
}

// withDataKey has the archiver encrypt to the tenant's data key instead of the recipients, with
// the key laid out as the operator mounts it, where the server's user can read it.
func (a archiver) withDataKey(t *testing.T, key datakey.Key, tenantUID string) archiver {
	t.Helper()
	dir := shared(t)
	writeFile(t, filepath.Join(dir, datakey.FileRecipient), []byte(key.Recipient))
	writeFile(t, filepath.Join(dir, datakey.FileWrapped), key.Wrapped)
	if err := pgcluster.Chown(dir, ""); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range a.env {
		if !strings.HasPrefix(kv, "TENANTOPS_RECIPIENTS=") {
			env = append(env, kv)
		}
	}
	a.env = append(env, "TENANTOPS_DATA_KEY="+dir, "TENANTOPS_TENANT_UID="+tenantUID)
	return a
}

// systemIDOf is the server's database system identifier, which names its WAL archive.
func systemIDOf(t *testing.T, pg *stack.Postgres) string {
	t.Helper()
	var id string
	query(t, pg.DSN, `SELECT system_identifier::text FROM pg_control_system()`, &id)
	return id
}

// startArchiving starts a server of major whose WAL the agent archives.
func startArchiving(t *testing.T, major string, a archiver) *stack.Postgres {
	t.Helper()
	programs := []string{"pg_basebackup"}
	config := a.config
	if major >= "17" {
		// Incremental backups need the server's WAL summaries.
		programs = append(programs, "pg_combinebackup")
		config += "summarize_wal = on\n"
	}
	return stack.StartPostgresWith(t, major, stack.PostgresOptions{Config: config, Env: a.env, Programs: programs})
}

// query runs one query and scans its single row.
func query(t *testing.T, dsn, sql string, dest ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, sql).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// switchAndWait ends the current WAL segment and waits until the server has archived it.
func switchAndWait(t *testing.T, pg *stack.Postgres) string {
	t.Helper()
	var seg string
	query(t, pg.DSN, `SELECT pg_walfile_name(pg_switch_wal())`, &seg)
	waitArchived(t, pg, seg, time.Minute)
	return seg
}

// waitArchived waits until the server reports seg (or a later segment) archived.
func waitArchived(t *testing.T, pg *stack.Postgres, seg string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var last string
		var failed int64
		query(t, pg.DSN, `SELECT coalesce(last_archived_wal, ''), failed_count FROM pg_stat_archiver`, &last, &failed)
		if len(last) >= 24 && last[:24] >= seg { // a .backup file is archived after its segment
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("segment %s not archived after %s (last archived %q, %d failures); server log:\n%s", seg, within, last, failed, pg.LogTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// contentOf is a table's rows as one checksum and a count, for exact comparison.
func contentOf(t *testing.T, dsn, table string) string {
	t.Helper()
	var n int64
	var sum string
	query(t, dsn, fmt.Sprintf(`SELECT count(*), coalesce(md5(string_agg(x::text, E'\n' ORDER BY x::text)), '') FROM %s x`, table), &n, &sum)
	return fmt.Sprintf("%d rows, md5 %s", n, sum)
}

// serverClock is the server's clock_timestamp(), in RFC 3339.
func serverClock(t *testing.T, pg *stack.Postgres) string {
	t.Helper()
	var now time.Time
	query(t, pg.DSN, `SELECT clock_timestamp()`, &now)
	return now.UTC().Format(time.RFC3339Nano)
}

// restoredServer starts a restored data directory, as its own server, until the test ends, and
// returns the DSN of database db on it.
func restoredServer(t *testing.T, binDir, dataDir, db string) string {
	t.Helper()
	run, err := os.MkdirTemp("", "pitr-run-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(run) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := pgcluster.StartDataDir(ctx, pgcluster.DataDirOptions{BinDir: binDir, DataDir: dataDir, RunDir: run})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	if err := srv.WaitAccepting(ctx, time.Minute, func() {}); err != nil {
		t.Fatalf("restored server: %v\n%s", err, srv.LogTail(10))
	}
	var inRecovery bool
	query(t, srv.DSN("postgres", db), `SELECT pg_is_in_recovery()`, &inRecovery)
	if inRecovery {
		t.Fatalf("the restored data directory starts in recovery")
	}
	return srv.DSN("postgres", db)
}

// restoreOutput finds the restore's summary line.
func restoreOutput(t *testing.T, r result, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(r.stdout, w) {
			t.Fatalf("restore's output lacks %q:\n%s\nstderr:\n%s", w, r.stdout, r.stderr)
		}
	}
}

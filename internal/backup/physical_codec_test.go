package backup_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	agentlib "github.com/tenantops/tenant-operator/internal/backup"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/test/stack"
)

// TestPhysicalBackupCodecs takes a full physical backup with the default codec (zstd), then an
// incremental one with --compression s2 (its WAL in its tar: -X fetch) against it, and one more whose -X fetch fails as when the server
// recycled the WAL (taken again with -X none), and restores: to a moment between the first two
// (the zstd backup alone) and to the end of the archive through the mixed chain. Each manifest
// names its codec, and each restore reads the codec from it.
func TestPhysicalBackupCodecs(t *testing.T) {
	t.Parallel()
	s3 := stack.StartS3(t)
	k, sg := newKey(t), newSigner(t)
	loc := s3.Location("backups")
	pg := startArchiving(t, "18", newArchiver(t, s3, loc, "acme", k, sg))
	env := append(append(s3.Env(), "PG_BIN_DIR="+pg.BinDir), sg.env()...)
	app := pg.CreateDatabase(t, "app")
	backup := func(extra ...string) string {
		t.Helper()
		return mustAgent(t, env, append([]string{"backup", "--method", "physical", "--dsn", app, "--storage", loc,
			"--tenant", "acme", "--schedule", "nightly", "--recipient", k.recipient, "--identity-file", k.identityFile}, extra...)...).lastLine()
	}
	restore := func(dataDir string, target ...string) result {
		t.Helper()
		return mustAgent(t, env, append([]string{"restore", "--storage", loc, "--tenant", "acme",
			"--identity-file", k.identityFile, "--data-dir", dataDir, "-v"}, target...)...)
	}

	pg.Exec(t, "app", `CREATE TABLE items (id int PRIMARY KEY, v text);
		INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 20000) g`)
	full := backup()
	m := readManifest(t, s3, "backups/acme/nightly/"+full+"/manifest.json")
	if m.Object.Compression != agentlib.CompressionZstd || m.Object.Name != catalog.BaseObject || m.Physical.BackupManifest.Compression != agentlib.CompressionZstd {
		t.Fatalf("full backup with the default codec: object %+v, backup_manifest %+v", m.Object, m.Physical.BackupManifest)
	}
	atNoted := contentOf(t, app, "items")
	noted := serverClock(t, pg)
	time.Sleep(2500 * time.Millisecond) // commitTimeMargin, as in TestPointInTimeRecovery

	pg.Exec(t, "app", `UPDATE items SET v = 'changed' WHERE id % 100 = 0`)
	incr := backup("--full-every", "720h", "--compression", "s2")
	mi := readManifest(t, s3, "backups/acme/nightly/"+incr+"/manifest.json")
	if mi.Physical == nil || mi.Physical.Parent != full || mi.Object.Compression != agentlib.CompressionS2 || mi.Object.Name != catalog.BaseObjectS2 ||
		mi.Physical.BackupManifest.Compression != agentlib.CompressionZstd {
		t.Fatalf("incremental backup with --compression s2: parent %q, object %+v, backup_manifest %+v", mi.Physical.Parent, mi.Object, mi.Physical.BackupManifest)
	}
	// The server no longer has the WAL of the backup's start when it ends (a checkpoint recycled
	// it during a long backup): -X fetch fails, and the backup is taken again with -X none.
	pg.Exec(t, "app", `UPDATE items SET v = 'again' WHERE id % 100 = 1`)
	recycled := t.TempDir()
	writeFile(t, filepath.Join(recycled, "pg_basebackup"), []byte(`#!/bin/sh
case " $* " in *" --wal-method=fetch "*)
  echo 'pg_basebackup: error: could not get COPY data stream: ERROR:  could not find WAL file "000000010000000000000002"' >&2
  exit 1;;
esac
exec `+filepath.Join(pg.BinDir, "pg_basebackup")+` "$@"
`))
	if err := os.Chmod(filepath.Join(recycled, "pg_basebackup"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := mustAgent(t, env, "backup", "--method", "physical", "--dsn", app, "--storage", loc, "--tenant", "acme", "--schedule", "nightly",
		"--recipient", k.recipient, "--identity-file", k.identityFile, "--full-every", "720h", "--pg-bin-dir", recycled, "-v")
	again := r.lastLine()
	if ma := readManifest(t, s3, "backups/acme/nightly/"+again+"/manifest.json"); ma.Physical.Parent != incr ||
		!strings.Contains(r.stderr, "the server recycled WAL of the backup's start before its end") || !strings.Contains(r.stderr, "taking it again with the WAL from the archive (-X none)") {
		t.Fatalf("incremental backup whose WAL was recycled: parent %q, stderr:\n%s", ma.Physical.Parent, r.stderr)
	}

	pg.Exec(t, "app", `INSERT INTO items SELECT g, 'latest' FROM generate_series(20001, 20500) g`)
	switchAndWait(t, pg)
	latest := contentOf(t, app, "items")

	dataDir := shared(t) + "/zstd"
	r = restore(dataDir, "--to-time", noted)
	t.Logf("restore --to-time:\n%s%s", r.stdout, r.stderr)
	restoreOutput(t, r, "backup "+full+",", "database app has 1 tables, 20000 rows")
	if got := contentOf(t, restoredServer(t, pg.BinDir, dataDir, "app"), "items"); got != atNoted {
		t.Fatalf("restored the zstd backup to %s: items has %s, want %s", noted, got, atNoted)
	}
	dataDir = shared(t) + "/mixed"
	r = restore(dataDir, "--to-latest")
	t.Logf("restore --to-latest:\n%s%s", r.stdout, r.stderr)
	restoreOutput(t, r, "backup "+full+" + "+incr+" + "+again+",", "database app has 1 tables, 20500 rows")
	if got := contentOf(t, restoredServer(t, pg.BinDir, dataDir, "app"), "items"); got != latest {
		t.Fatalf("restored the zstd + S2 chain to the latest: items has %s, want %s", got, latest)
	}
}

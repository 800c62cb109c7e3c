package backup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/test/stack"
)

// TestAgent proves every command against a real PostgreSQL of each supported major and a real
// S3-compatible server (and a volume), through the command line an SRE uses.
func TestAgent(t *testing.T) {
	for _, major := range []string{"15", "18"} {
		t.Run("postgres-"+major, func(t *testing.T) {
			t.Parallel()
			testAgent(t, major)
		})
	}
}

func testAgent(t *testing.T, major string) {
	pg := stack.StartPostgres(t, major)
	s3 := stack.StartS3(t)
	env := append(append(s3.Env(), "PG_BIN_DIR="+pg.BinDir), newSigner(t).env()...)
	loc := s3.Location("backups/prod")
	k := newKey(t)
	other := newKey(t)
	src := seed(t, pg, "app", "acme")
	var outputs strings.Builder
	run := func(args ...string) result {
		t.Helper()
		r := mustAgent(t, env, args...)
		outputs.WriteString(r.stdout + r.stderr)
		return r
	}
	fail := func(want string, args ...string) string {
		t.Helper()
		line := failAgent(t, env, want, args...)
		outputs.WriteString(line)
		return line
	}
	defer func() { assertNoSecrets(t, outputs.String(), pg.Password, s3.SecretKey) }()

	// backup, to S3 and to a volume
	r := run("backup", "--dsn", src, "--storage", loc, "--tenant", "acme", "--schedule", "daily",
		"--recipient", k.recipient, "--recipient", other.recipient, "-v")
	id := r.lastLine()
	if err := catalog.ValidateName("id", id); err != nil || !strings.Contains(r.stdout, "backup "+id) {
		t.Fatalf("backup's last stdout line %q is not the new id\n%s", id, r.stdout)
	}
	volume := t.TempDir()
	volLoc := "file://" + volume
	idVol := run("backup", "--dsn", src, "--storage", volLoc, "--tenant", "acme", "--schedule", "daily", "--recipient", k.recipient).lastLine()

	// The manifest says what the issue asks of it.
	m := readManifest(t, s3, "backups/prod/acme/daily/"+id+"/manifest.json")
	if m.FormatVersion != catalog.FormatVersion || m.ID != id || m.Tenant != "acme" || m.Schedule != "daily" || m.Database != "app" {
		t.Fatalf("manifest identity fields: %+v", m)
	}
	if !strings.HasPrefix(m.PostgresVersion, major+".") || m.PostgresMajor != atoi(major) || m.PgDumpVersion == "" {
		t.Fatalf("manifest versions: postgres %q major %d pg_dump %q", m.PostgresVersion, m.PostgresMajor, m.PgDumpVersion)
	}
	if m.FinishedAt.Before(m.StartedAt) || time.Since(m.StartedAt) > 5*time.Minute {
		t.Fatalf("manifest times: %s .. %s", m.StartedAt, m.FinishedAt)
	}
	if len(m.Recipients) != 2 || m.Recipients[0] == m.Recipients[1] || strings.Contains(strings.Join(m.Recipients, ""), "age1") {
		t.Fatalf("manifest recipients should be two fingerprints: %v", m.Recipients)
	}
	if m.DumpSize <= 0 || m.CompressedSize <= 0 || m.CompressedSize >= m.DumpSize || m.Object.Size <= m.CompressedSize {
		t.Fatalf("manifest sizes: dump %d compressed %d stored %d", m.DumpSize, m.CompressedSize, m.Object.Size)
	}
	stat, err := s3.Client.StatObject(context.Background(), s3.Bucket, "backups/prod/acme/daily/"+id+"/"+catalog.DataObject, minio.StatObjectOptions{})
	if err != nil || stat.Size != m.Object.Size {
		t.Fatalf("stored object: %v, size %d, manifest says %d", err, stat.Size, m.Object.Size)
	}
	wantRows := map[string]int64{"shop.customers": 1500, "public.Ünïcødé ✓": 4, "public.docs": 6, "public.events_2025": 1698,
		"public.events_2026": 1302, "public.empty_table": 0, "many.t1": 1, "many.t150": 150}
	gotRows := map[string]int64{}
	for _, tr := range m.Tables {
		gotRows[tr.QualifiedName()] = tr.Rows
	}
	for name, n := range wantRows {
		if gotRows[name] != n {
			t.Errorf("manifest row count of %s = %d, want %d", name, gotRows[name], n)
		}
	}
	if len(m.Tables) != 156 || m.LargeObjects != 6 {
		t.Fatalf("manifest has %d tables and %d large objects, want 156 and 6", len(m.Tables), m.LargeObjects)
	}

	// list, newest first
	time.Sleep(1100 * time.Millisecond) // ids and start times have second resolution
	id2 := run("backup", "--dsn", src, "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--recipient", k.recipient).lastLine()
	list := listJSON(t, env, loc, "--tenant", "acme")
	if len(list) != 2 || list[0].ID != id2 || list[1].ID != id {
		t.Fatalf("backups list = %v, want [%s %s]", ids(list), id2, id)
	}
	table := run("backups", "list", "--storage", loc).stdout
	if !strings.Contains(table, "TENANT") || strings.Index(table, id2) > strings.Index(table, id) || !strings.Contains(table, "never") {
		t.Fatalf("backups list table:\n%s", table)
	}

	// restore: a round trip equal in schema and data, from S3 and from the volume
	pg.CreateDatabase(t, "restored")
	run("restore", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", id,
		"--identity-file", k.identityFile, "--dsn", pg.DSNFor("restored"))
	assertSameDatabase(t, pg, "app", "restored")
	pg.CreateDatabase(t, "restored_vol")
	run("restore", "--storage", volLoc, "--tenant", "acme", "--schedule", "daily", "--backup", "latest",
		"--identity-file", k.identityFile, "--dsn", pg.DSNFor("restored_vol"))
	assertSameDatabase(t, pg, "app", "restored_vol")
	if l := listJSON(t, env, volLoc); len(l) != 1 || l[0].ID != idVol {
		t.Fatalf("volume lists %v, want [%s]", ids(l), idVol)
	}

	// a non-empty target is refused unless forced
	fail("is not empty", "restore", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", "latest",
		"--identity-file", k.identityFile, "--dsn", pg.DSNFor("restored"))
	pg.Exec(t, "restored", `DELETE FROM shop.customers WHERE id > 10; DROP TABLE many.t7`)
	run("restore", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", id,
		"--identity-file", other.identityFile, "--dsn", pg.DSNFor("restored"), "--force")
	assertSameDatabase(t, pg, "app", "restored")

	// wrong identity and missing backup: clear errors, nothing touched
	pg.CreateDatabase(t, "untouched")
	stranger := newKey(t)
	fail("error: wrong identity: no identity matches the backup's recipients", "restore", "--storage", loc, "--tenant", "acme",
		"--schedule", "daily", "--backup", id, "--identity-file", stranger.identityFile, "--dsn", pg.DSNFor("untouched"))
	fail(`error: backup "20200101T000000Z-000000" not found for tenant acme schedule daily`, "restore", "--storage", loc,
		"--tenant", "acme", "--schedule", "daily", "--backup", "20200101T000000Z-000000", "--identity-file", k.identityFile, "--dsn", pg.DSNFor("untouched"))
	fail("error: no backups found for tenant nobody schedule daily", "verify", "--storage", loc, "--tenant", "nobody", "--schedule", "daily", "--backup", "latest")
	fail("error: wrong identity", "verify", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", id, "--identity-file", stranger.identityFile)
	if n := tableCount(t, pg, "untouched"); n != 0 {
		t.Fatalf("failed restores left %d tables in the target", n)
	}

	// verify: checksum without a key, a restore drill with one; results stored and listed
	out := run("verify", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", id).stdout
	if !strings.Contains(out, "checksum ok") || !strings.Contains(out, m.Object.SHA256) {
		t.Fatalf("verify: %s", out)
	}
	out = run("verify", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", id, "--identity-file", k.identityFile).stdout
	if !strings.Contains(out, "restore drill ok") || !strings.Contains(out, "156 tables") {
		t.Fatalf("verify drill: %s", out)
	}
	list = listJSON(t, env, loc, "--tenant", "acme", "--schedule", "daily")
	v := list[1].Verification
	if list[1].ID != id || v == nil || !v.OK || v.Kind != catalog.KindRestoreDrill || !strings.HasPrefix(v.ScratchPostgresVersion, major) || v.ObjectSHA256 != m.Object.SHA256 {
		t.Fatalf("verification after drill: %+v", v)
	}
	if list[0].Verification != nil {
		t.Fatalf("backup %s was never verified but lists %+v", id2, list[0].Verification)
	}

	// one flipped byte: verify finds it with or without a key, restore refuses it
	flipByte(t, s3, "backups/prod/acme/daily/"+id+"/"+catalog.DataObject, m.Object.Size/2)
	fail("error: verification of backup "+id+" failed: ChecksumMismatch: stored object sha256 ", "verify", "--storage", loc,
		"--tenant", "acme", "--schedule", "daily", "--backup", id)
	list = listJSON(t, env, loc, "--tenant", "acme", "--schedule", "daily")
	if v := list[1].Verification; v == nil || v.OK || v.Kind != catalog.KindChecksum || v.Reason != "ChecksumMismatch" || !strings.Contains(strings.Join(v.Problems, ""), "manifest says "+m.Object.SHA256) {
		t.Fatalf("verification after a flipped byte: %+v", v)
	}
	fail("ChecksumMismatch: stored object sha256 ", "verify", "--storage", loc, "--tenant", "acme", "--schedule", "daily",
		"--backup", id, "--identity-file", k.identityFile)
	fail("error: checksum mismatch: stored object sha256 ", "restore", "--storage", loc, "--tenant", "acme", "--schedule", "daily",
		"--backup", id, "--identity-file", k.identityFile, "--dsn", pg.DSNFor("untouched"))
	if n := tableCount(t, pg, "untouched"); n != 0 {
		t.Fatalf("restoring a damaged backup left %d tables in the target", n)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func readManifest(t *testing.T, s3 *stack.S3, key string) catalog.Manifest {
	t.Helper()
	obj, err := s3.Client.GetObject(context.Background(), s3.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	var m catalog.Manifest
	if err := json.NewDecoder(obj).Decode(&m); err != nil {
		t.Fatalf("manifest %s: %v", key, err)
	}
	return m
}

func listJSON(t *testing.T, env []string, loc string, args ...string) []catalog.Backup {
	t.Helper()
	r := mustAgent(t, env, append([]string{"backups", "list", "--storage", loc, "-o", "json"}, args...)...)
	var out []catalog.Backup
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("backups list -o json: %v\n%s", err, r.stdout)
	}
	return out
}

func ids(bs []catalog.Backup) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Tenant+"/"+b.Schedule+"/"+b.ID)
	}
	return out
}

// flipByte inverts one byte of a stored object in place, as bit rot or tampering would.
func flipByte(t *testing.T, s3 *stack.S3, key string, at int64) {
	t.Helper()
	ctx := context.Background()
	obj, err := s3.Client.GetObject(ctx, s3.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(obj)
	obj.Close()
	if err != nil {
		t.Fatal(err)
	}
	data[at] ^= 0xff
	if _, err := s3.Client.PutObject(ctx, s3.Bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}

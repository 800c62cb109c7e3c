package backup_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"

	"github.com/tenantops/tenant-operator/internal/backup"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/datakey"
	"github.com/tenantops/tenant-operator/internal/storage"
	"github.com/tenantops/tenant-operator/test/stack"
)

// exportSQL is a database with what a CSV gets wrong: NULL beside the empty string; tabs, line
// breaks, carriage returns, backslashes, quotes, commas and control characters in text; unicode;
// bytea with zero bytes and backslashes; numeric beyond float precision and NaN; timestamps with
// offsets, microseconds and infinities; arrays and JSON; a table in another schema with a foreign
// key; a quoted mixed-case name with a quote and a comma in it and in its columns; a generated
// column; a one-column table whose NULL rows are empty lines; an empty table; a large object.
const exportSQL = `
CREATE TABLE people (
  id int PRIMARY KEY, name text, note text, nick varchar(20), born date, seen timestamptz,
  local_time timestamp, score numeric(12,4), big numeric, ratio double precision, flag boolean,
  photo bytea, tags text[], doc jsonb, uid uuid);
INSERT INTO people VALUES
  (1, 'Ada', E'tab\there\nnewline\r\ncrlf \\ backslash "quoted", comma', 'ada', '1815-12-10',
   '2026-03-01 12:34:56.789012+02', '2026-03-01 12:34:56.5', 1234.5678, 123456789012345678901234567890.123456789,
   0.1, true, '\x00015c0a22ff', ARRAY['a,b', 'c"d', NULL], '{"k": "v\nw", "n": [1, 2.5]}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
  (2, '', '', '', NULL, NULL, NULL, NULL, 'NaN', 'NaN', false, '', '{}', '{}', NULL),
  (3, NULL, NULL, NULL, 'infinity', '-infinity', 'infinity', -0.0001, '-1e-20', '-Infinity', NULL, NULL, NULL, 'null', NULL),
  (4, E'\\N', E'\\.', ' ', '-infinity', 'epoch', 'epoch', 0, 0, 1e308, NULL, '\x5c4e', ARRAY[''], '"\\"', NULL),
  (5, 'Ünïcødé ✓ 日本語 🐘🔐 👩‍💻', E'\x01\x02\x1f\x7f control', '"', '2000-02-29',
   '2000-02-29 23:59:59.999999-12', '0001-01-01 00:00:00', 99999999.9999, 1, 2.2250738585072014e-308, true, '\x', NULL, '[]', NULL);

CREATE SCHEMA billing;
CREATE TABLE billing.invoices (id bigserial PRIMARY KEY, person int NOT NULL REFERENCES people,
  amount numeric(10,2) NOT NULL, issued timestamptz NOT NULL, memo text);
INSERT INTO billing.invoices (person, amount, issued, memo)
  SELECT 1 + g % 5, g * 1.25, timestamptz '2026-01-01 00:00+00' + g * interval '1 hour 1.5 seconds',
    CASE g % 3 WHEN 0 THEN NULL WHEN 1 THEN '' ELSE 'memo ' || g || E'\t' || repeat('x', g % 7) END
  FROM generate_series(1, 2000) g;

CREATE TABLE "CamelCase ""Quoted"", Table" ("Id" int, "Value, with ""comma""" text, "naïve" text);
INSERT INTO "CamelCase ""Quoted"", Table" VALUES (1, 'x', NULL), (2, NULL, 'y');

CREATE TABLE generated (a int, b int GENERATED ALWAYS AS (a * 2) STORED, c text);
INSERT INTO generated (a, c) VALUES (1, 'one'), (2, NULL);

CREATE TABLE single (v text);
INSERT INTO single VALUES (NULL), (''), ('x'), (NULL);

CREATE TABLE empty_table (id int, v text);
SELECT lo_from_bytea(0, 'a large object');
`

// TestExport makes a backup of exportSQL, exports it for a customer, and checks what the customer
// gets: an archive only their key opens, whose manifest and checksums hold, whose dump.sql
// imported into an empty database, and whose CSVs loaded into an empty copy of the schema, each
// give back every table exactly. The same export into storage is recorded once whole; a wrong
// identity, a tampered backup and an unknown id are refused with nothing left behind.
func TestExport(t *testing.T) {
	t.Parallel()
	pg := stack.StartPostgres(t, "18")
	s3 := stack.StartS3(t)
	env := append(append(s3.Env(), "PG_BIN_DIR="+pg.BinDir), newSigner(t).env()...)
	loc := s3.Location("backups")
	platform, customer, customer2 := newKey(t), newKey(t), newKey(t)
	src := pg.CreateDatabase(t, "shop")
	pg.Exec(t, "shop", exportSQL)
	id := mustAgent(t, env, "backup", "--dsn", src, "--storage", loc, "--tenant", "acme", "--schedule", "daily",
		"--recipient", platform.recipient).lastLine()
	source := readManifest(t, s3, "backups/acme/daily/"+id+"/manifest.json")
	want := tableDigests(t, pg, "shop")

	dir := t.TempDir()
	out := filepath.Join(dir, "export.zip.age")
	r := mustAgent(t, env, "export", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", id,
		"--identity-file", platform.identityFile, "--recipient", customer.recipient, "--recipient", customer2.recipient, "-o", out)
	if !strings.Contains(r.stdout, "export of backup "+id+" (tenant acme, schedule daily): 6 tables, 2013 rows") {
		t.Errorf("export's summary: %s", r.stdout)
	}
	encrypted, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	assertNoSecrets(t, r.stdout+r.stderr+string(encrypted), pg.Password, s3.SecretKey)
	if _, err := age.Decrypt(bytes.NewReader(encrypted), identity(t, platform)); !errors.As(err, new(*age.NoIdentityMatchError)) {
		t.Fatalf("the platform's identity opens the customer's export: %v", err)
	}
	for _, k := range []key{customer, customer2} { // each recipient opens it
		openExport(t, encrypted, k)
	}
	files := openExport(t, encrypted, customer)
	m := checkExportManifest(t, files, source)
	if m.BackupID != id || m.Tenant != "acme" || m.Schedule != "daily" || !m.BackupStartedAt.Equal(source.StartedAt) ||
		m.PostgresVersion != source.PostgresVersion || m.Encoding != "UTF8" || m.LargeObjects != 1 || len(m.Recipients) != 2 {
		t.Errorf("export manifest: %+v", m)
	}

	// dump.sql, imported as the README says, gives back every table.
	dump := filepath.Join(dir, "dump.sql")
	if err := os.WriteFile(dump, files.data["dump.sql"], 0o600); err != nil {
		t.Fatal(err)
	}
	pg.CreateDatabase(t, "from_sql")
	psql(t, pg, "from_sql", "-f", dump)
	assertSameTables(t, want, tableDigests(t, pg, "from_sql"), "dump.sql")
	if got := queryString(t, pg, "from_sql", "SELECT convert_from(lo_get(oid), 'UTF8') FROM pg_largeobject_metadata"); got != "a large object" {
		t.Errorf("large object after importing dump.sql: %q", got)
	}

	// Every CSV, loaded into an empty copy of the schema, gives back its table.
	pg.CreateDatabase(t, "from_csv")
	schema, err := exec.Command(filepath.Join(pg.BinDir, "pg_dump"), "--schema-only", "--dbname="+pg.DSNFor("shop")).Output()
	if err != nil {
		t.Fatalf("pg_dump --schema-only: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "schema.sql"), schema, 0o600); err != nil {
		t.Fatal(err)
	}
	psql(t, pg, "from_csv", "-f", filepath.Join(dir, "schema.sql"))
	loadCSVs(t, pg, "from_csv", m, files)
	assertSameTables(t, want, tableDigests(t, pg, "from_csv"), "the CSVs")

	// Into storage, without naming the schedule: the archive, then its record.
	storeEnv := append(env, "TENANTOPS_OUTPUT_AWS_ACCESS_KEY_ID="+s3.AccessKey, "TENANTOPS_OUTPUT_AWS_SECRET_ACCESS_KEY="+s3.SecretKey)
	exports := s3.Location("exports")
	mustAgent(t, storeEnv, "export", "--storage", loc, "--tenant", "acme", "--backup", "latest",
		"--identity-file", platform.identityFile, "--recipient", customer.recipient, "--output-storage", exports, "--export-id", "contract-end")
	stored := readS3Object(t, s3, "exports/acme/exports/contract-end.age")
	var rec catalog.ExportRecord
	if err := json.Unmarshal(readS3Object(t, s3, "exports/acme/exports/contract-end.json"), &rec); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(stored)
	if rec.ID != "contract-end" || rec.BackupID != id || rec.Schedule != "daily" || rec.Size != int64(len(stored)) ||
		rec.SHA256 != hex.EncodeToString(sum[:]) || rec.Tables != 6 || rec.Rows != 2013 || rec.Object != "acme/exports/contract-end.age" {
		t.Errorf("export record %+v for an archive of %d bytes", rec, len(stored))
	}
	if got := checkExportManifest(t, openExport(t, stored, customer), source); got.BackupID != id {
		t.Errorf("stored export is of backup %s, want %s", got.BackupID, id)
	}

	// Refusals: one clear line, no file, nothing stored.
	exportArgs := func(extra ...string) []string {
		return append([]string{"export", "--storage", loc, "--tenant", "acme", "--recipient", customer.recipient}, extra...)
	}
	refused := filepath.Join(dir, "refused.zip.age")
	failAgent(t, env, "error: wrong identity: no identity matches the backup's recipients",
		exportArgs("--schedule", "daily", "--backup", id, "--identity-file", customer.identityFile, "-o", refused)...)
	failAgent(t, env, `error: backup "20200101T000000Z-000000" not found for tenant acme schedule daily`,
		exportArgs("--schedule", "daily", "--backup", "20200101T000000Z-000000", "--identity-file", platform.identityFile, "-o", refused)...)
	failAgent(t, env, `error: backup "20200101T000000Z-000000" not found for tenant acme in any schedule`,
		exportArgs("--backup", "20200101T000000Z-000000", "--identity-file", platform.identityFile, "-o", refused)...)
	secret := identity(t, customer).(*age.X25519Identity).String() // pasted where the public key belongs
	line := failAgent(t, env, "error: export: recipient 1 is not an age public key (age1...)",
		"export", "--storage", loc, "--tenant", "acme", "--backup", id, "--identity-file", platform.identityFile, "--recipient", secret, "-o", refused)
	assertNoSecrets(t, line)
	flipByte(t, s3, "backups/acme/daily/"+id+"/"+catalog.DataObject, source.Object.Size/2)
	failAgent(t, env, "error: checksum mismatch: stored object sha256 ",
		exportArgs("--schedule", "daily", "--backup", id, "--identity-file", platform.identityFile, "-o", refused)...)
	failAgent(t, storeEnv, "error: checksum mismatch: stored object sha256 ",
		exportArgs("--backup", id, "--identity-file", platform.identityFile, "--output-storage", exports, "--export-id", "tampered")...)
	rewriteManifest(t, s3, "backups/acme/daily/"+id+"/manifest.json", func(m *catalog.Manifest) { m.Tables[0].Rows++ })
	failAgent(t, env, "error: backup "+id+" of tenant acme schedule daily is refused: ",
		exportArgs("--schedule", "daily", "--backup", id, "--identity-file", platform.identityFile, "-o", refused)...)
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "*refused*")); len(leftovers) > 0 {
		t.Errorf("refused exports left files: %v", leftovers)
	}
	for o := range s3.Client.ListObjects(context.Background(), s3.Bucket, minio.ListObjectsOptions{Prefix: "exports/", Recursive: true}) {
		if strings.Contains(o.Key, "tampered") {
			t.Errorf("a refused export left %s in storage", o.Key)
		}
	}
}

// exportFiles are an export archive's files, in archive order.
type exportFiles struct {
	names []string
	data  map[string][]byte
}

// openExport decrypts an export with k and unzips it.
func openExport(t *testing.T, encrypted []byte, k key) exportFiles {
	t.Helper()
	plain, err := age.Decrypt(bytes.NewReader(encrypted), identity(t, k))
	if err != nil {
		t.Fatalf("decrypt the export: %v", err)
	}
	zipped, err := io.ReadAll(plain)
	if err != nil {
		t.Fatalf("decrypt the export: %v", err)
	}
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		t.Fatalf("the decrypted export is not a zip: %v", err)
	}
	files := exportFiles{data: map[string][]byte{}}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc) // checks the CRC too
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		files.names = append(files.names, f.Name)
		files.data[f.Name] = data
	}
	return files
}

func identity(t *testing.T, k key) age.Identity {
	t.Helper()
	ids, err := backup.ReadIdentities(k.identityFile)
	if err != nil {
		t.Fatal(err)
	}
	return ids[0]
}

// checkExportManifest checks an export's layout, that manifest.json and SHA256SUMS describe its
// files exactly, and that every table of the backup has its CSV with the manifest's rows.
func checkExportManifest(t *testing.T, files exportFiles, source catalog.Manifest) backup.ExportManifest {
	t.Helper()
	var m backup.ExportManifest
	if err := json.Unmarshal(files.data["manifest.json"], &m); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	n := len(files.names)
	if n < 4 || files.names[0] != "README.txt" || files.names[1] != "dump.sql" || files.names[n-2] != "manifest.json" || files.names[n-1] != "SHA256SUMS" {
		t.Fatalf("archive layout %v", files.names)
	}
	if len(m.Files) != n-2 {
		t.Fatalf("manifest lists %d files, the archive has %d besides manifest.json and SHA256SUMS", len(m.Files), n-2)
	}
	var sums strings.Builder
	for i, f := range m.Files {
		data := files.data[f.Name]
		sum := sha256.Sum256(data)
		if f.Name != files.names[i] || f.Size != int64(len(data)) || f.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("manifest says %+v; the archive's file %d is %s, %d bytes, sha256 %x", f, i, files.names[i], len(data), sum)
		}
		fmt.Fprintf(&sums, "%x  %s\n", sum, f.Name)
	}
	sum := sha256.Sum256(files.data["manifest.json"])
	fmt.Fprintf(&sums, "%x  manifest.json\n", sum)
	if got := string(files.data["SHA256SUMS"]); got != sums.String() {
		t.Errorf("SHA256SUMS:\n%s\nwant\n%s", got, sums.String())
	}
	rows := map[string]int64{}
	for _, tb := range m.Tables {
		if !strings.HasPrefix(tb.File, "tables/") || files.data[tb.File] == nil {
			t.Errorf("table %s.%s: file %q is not in the archive", tb.Schema, tb.Name, tb.File)
		}
		rows[tb.Schema+"."+tb.Name] = tb.Rows
	}
	if len(m.Tables) != len(source.Tables) {
		t.Errorf("export has %d tables, the backup %d", len(m.Tables), len(source.Tables))
	}
	for _, tb := range source.Tables {
		if got, ok := rows[tb.QualifiedName()]; !ok || got != tb.Rows {
			t.Errorf("table %s: %d rows exported (listed: %v), the backup has %d", tb.QualifiedName(), got, ok, tb.Rows)
		}
	}
	return m
}

// loadCSVs unpacks the CSVs and loads each into db with psql's \copy as docs/export.md says, with
// HEADER MATCH so that the header must name the table's columns, and triggers off so that the
// foreign key does not dictate an order.
func loadCSVs(t *testing.T, pg *stack.Postgres, db string, m backup.ExportManifest, files exportFiles) {
	t.Helper()
	dir := t.TempDir()
	args := []string{"-c", "SET session_replication_role = replica"}
	for _, tb := range m.Tables {
		path := filepath.Join(dir, filepath.FromSlash(tb.File))
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, files.data[tb.File], 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-c", fmt.Sprintf(`\copy %s FROM '%s' WITH (FORMAT csv, HEADER MATCH)`,
			pgx.Identifier{tb.Schema, tb.Name}.Sanitize(), strings.ReplaceAll(path, "'", "''")))
	}
	psql(t, pg, db, args...)
}

// tableDigests is every table's row count and a hash of its rows in a stable order.
func tableDigests(t *testing.T, pg *stack.Postgres, db string) map[string]string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSNFor(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, tbl := range tables {
		var n int64
		var sum string
		q := fmt.Sprintf(`SELECT count(*), coalesce(md5(string_agg(x::text, E'\n' ORDER BY x::text)), '') FROM %s x`, tbl)
		if err := conn.QueryRow(ctx, q).Scan(&n, &sum); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		out[tbl] = fmt.Sprintf("%d rows, md5 %s", n, sum)
	}
	return out
}

func assertSameTables(t *testing.T, want, got map[string]string, via string) {
	t.Helper()
	if len(want) == 0 {
		t.Fatal("no tables to compare")
	}
	for tbl, w := range want {
		if got[tbl] != w {
			t.Errorf("table %s after loading %s: %s, want %s", tbl, via, got[tbl], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("loading %s gave %d tables, want %d", via, len(got), len(want))
	}
}

// psql runs psql on db, stopping at the first error.
func psql(t *testing.T, pg *stack.Postgres, db string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(pg.BinDir, "psql"), append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", pg.DSNFor(db)}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("psql %v: %v\n%s", args, err, out)
	}
}

// rewriteManifest changes a stored manifest as someone with write access to the bucket could,
// without the signing key.
func rewriteManifest(t *testing.T, s3 *stack.S3, key string, change func(*catalog.Manifest)) {
	t.Helper()
	m := readManifest(t, s3, key)
	change(&m)
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3.Client.PutObject(context.Background(), s3.Bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestExportMemoryIsFlat exports a database of about 70 MB (a table of 50 MB and a single value of
// 16 MiB) and one of a single row, and compares the agent's peak resident memory: it must not grow
// with the data, nor with the size of one value.
func TestExportMemoryIsFlat(t *testing.T) {
	t.Parallel()
	pg := stack.StartPostgres(t, "18")
	loc := "file://" + t.TempDir()
	env := []string{"PG_BIN_DIR=" + pg.BinDir}
	platform, customer := newKey(t), newKey(t)
	pg.CreateDatabase(t, "small")
	pg.Exec(t, "small", `CREATE TABLE t (v text); INSERT INTO t VALUES ('one row')`)
	pg.CreateDatabase(t, "big")
	pg.Exec(t, "big", `CREATE TABLE wide (id bigint, payload text);
		INSERT INTO wide SELECT g, repeat(md5(g::text), 16) FROM generate_series(1, 100000) g;
		CREATE TABLE huge (v text);
		INSERT INTO huge SELECT string_agg(md5(g::text), '') FROM generate_series(1, 524288) g`)
	peak := map[string]int64{}
	for _, db := range []string{"small", "big"} {
		mustAgent(t, env, "backup", "--dsn", pg.DSNFor(db), "--storage", loc, "--tenant", db, "--schedule", "daily", "--recipient", platform.recipient)
		out := filepath.Join(t.TempDir(), db+".zip.age")
		start := time.Now()
		cmd := agentCmd(env, "export", "--storage", loc, "--tenant", db, "--backup", "latest", "--allow-unsigned",
			"--identity-file", platform.identityFile, "--recipient", customer.recipient, "-o", out)
		var output bytes.Buffer
		cmd.Stdout, cmd.Stderr = &output, &output
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		hwm := watchHWM(cmd.Process.Pid)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("export %s: %v\n%s", db, err, output.String())
		}
		peak[db] = hwm()
		fi, err := os.Stat(out)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("export of %s: %s, %d bytes, peak RSS %d MiB", db, time.Since(start).Round(time.Millisecond), fi.Size(), peak[db]>>20)
	}
	tableBytes := queryInt(t, pg, "big", "SELECT sum(length(payload)) FROM wide")
	if tableBytes < 50e6 {
		t.Fatalf("the wide table holds %d bytes, want 50 MB", tableBytes)
	}
	// Measured on 2 cores: 29 MiB for one row, 42 MiB here, 43 MiB with twice the rows and a
	// 32 MiB value; the Go heap (GODEBUG=gctrace=1) holds 3 MB live for one row and 7 to 9 MB here,
	// and peaks at 18 MB. A table or a value held whole would add its 50 MB or 16 MiB.
	if peak["small"] == 0 || peak["big"]-peak["small"] > 24<<20 {
		t.Errorf("peak RSS %d MiB for one row, %d MiB for %d MB of rows and a 16 MiB value", peak["small"]>>20, peak["big"]>>20, tableBytes/1e6)
	}
}

// watchHWM samples a running process's peak resident memory (VmHWM, which only grows) until asked
// for it. Not the rusage of wait4: that counts the memory of the parent the child was forked
// from, here the test binary.
func watchHWM(pid int) func() int64 {
	var peak atomic.Int64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			if v := vmHWM(pid); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() int64 {
		close(done)
		<-stopped
		return peak.Load()
	}
}

// TestExportWithTenantDataKeys exports a backup encrypted to the tenant's own data key (backup
// --data-key, manifest format 2) with the platform identity alone, as restore reads it: through the
// key's escrow copy in the same storage. The customer's archive gives back every table. A backup
// of before per-tenant keys (format 1, encrypted to the platform directly) beside it still
// exports with the same identity. A stranger's identity is refused as restore refuses it, and once
// the key is destroyed (crypto-erasure), the export fails with restore's "cannot be decrypted by
// anyone" and leaves nothing behind.
func TestExportWithTenantDataKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg := stack.StartPostgres(t, "18")
	s3 := stack.StartS3(t)
	sign := newSigner(t)
	env := append(append(s3.Env(), "PG_BIN_DIR="+pg.BinDir), sign.env()...)
	storeEnv := append(env, "TENANTOPS_OUTPUT_AWS_ACCESS_KEY_ID="+s3.AccessKey, "TENANTOPS_OUTPUT_AWS_SECRET_ACCESS_KEY="+s3.SecretKey)
	loc := s3.Location("backups")
	parsed, err := storage.ParseLocation(loc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := storage.OpenS3(ctx, parsed, storage.Credentials{AccessKeyID: s3.AccessKey, SecretAccessKey: s3.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	platform, stranger, customer := newKey(t), newKey(t), newKey(t)
	dataKey, err := datakey.Generate([]string{platform.recipient})
	if err != nil {
		t.Fatal(err)
	}
	const uid = "7d2f4c1e-8b3a-4e6f-a1d2-5c9e0b7f3a64"
	src := pg.CreateDatabase(t, "shop")
	pg.Exec(t, "shop", exportSQL)
	id := mustAgent(t, env, "backup", "--dsn", src, "--storage", loc, "--tenant", "acme", "--tenant-uid", uid, "--schedule", "daily",
		"--data-key", writeDataKeyDir(t, dataKey)).lastLine()
	source := readManifest(t, s3, "backups/acme/daily/"+id+"/manifest.json")
	if source.FormatVersion != 2 || source.DataKeyID != dataKey.ID {
		t.Fatalf("backup manifest format %d, data key %q; want format 2 naming key %s", source.FormatVersion, source.DataKeyID, dataKey.ID)
	}
	want := tableDigests(t, pg, "shop")

	dir := t.TempDir()
	out := filepath.Join(dir, "export.zip.age")
	exportArgs := func(extra ...string) []string {
		return append([]string{"export", "--storage", loc, "--tenant", "acme", "--tenant-uid", uid, "--schedule", "daily", "--backup", id,
			"--recipient", customer.recipient}, extra...)
	}
	mustAgent(t, env, exportArgs("--identity-file", platform.identityFile, "-o", out)...)
	encrypted, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// Neither the platform nor the tenant key opens the customer's archive.
	tenantIdentity, err := datakey.Unwrap(dataKey.Wrapped, dataKey.ID, []age.Identity{identity(t, platform)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := age.Decrypt(bytes.NewReader(encrypted), identity(t, platform), tenantIdentity); !errors.As(err, new(*age.NoIdentityMatchError)) {
		t.Fatalf("the platform's or the tenant's key opens the customer's export: %v", err)
	}
	files := openExport(t, encrypted, customer)
	m := checkExportManifest(t, files, source)
	if m.BackupID != id || m.TenantUID != uid {
		t.Errorf("export manifest of backup %s, tenant UID %q; want %s, %s", m.BackupID, m.TenantUID, id, uid)
	}
	dump := filepath.Join(dir, "dump.sql")
	if err := os.WriteFile(dump, files.data["dump.sql"], 0o600); err != nil {
		t.Fatal(err)
	}
	pg.CreateDatabase(t, "from_sql")
	psql(t, pg, "from_sql", "-f", dump)
	assertSameTables(t, want, tableDigests(t, pg, "from_sql"), "dump.sql of a data-key backup")

	// A backup of before per-tenant keys: encrypted to the platform's recipient, its manifest
	// stamped format 1 and signed again with the policy's key, as an older agent stored it.
	legacyID := mustAgent(t, env, "backup", "--dsn", src, "--storage", loc, "--tenant", "acme", "--tenant-uid", uid, "--schedule", "legacy",
		"--recipient", platform.recipient).lastLine()
	legacy := readManifest(t, s3, "backups/acme/legacy/"+legacyID+"/manifest.json")
	legacy.FormatVersion = 1
	pemKey, err := os.ReadFile(sign.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	signingKey, err := catalog.ParseSigningKey(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := catalog.WriteSignedManifest(ctx, store, legacy, signingKey); err != nil {
		t.Fatal(err)
	}
	legacyOut := filepath.Join(dir, "legacy.zip.age")
	mustAgent(t, env, "export", "--storage", loc, "--tenant", "acme", "--tenant-uid", uid, "--schedule", "legacy", "--backup", legacyID,
		"--recipient", customer.recipient, "--identity-file", platform.identityFile, "-o", legacyOut)
	encrypted, err = os.ReadFile(legacyOut)
	if err != nil {
		t.Fatal(err)
	}
	if m := checkExportManifest(t, openExport(t, encrypted, customer), legacy); m.BackupID != legacyID {
		t.Errorf("export of the format 1 backup %s is of backup %s", legacyID, m.BackupID)
	}

	refused := filepath.Join(dir, "refused.zip.age")
	failAgent(t, env, "error: wrong identity: the backup is encrypted to tenant data key "+dataKey.ID,
		exportArgs("--identity-file", stranger.identityFile, "-o", refused)...)

	// Crypto-erasure destroys the escrowed key first; the backup's objects are still there (as
	// between the two steps of an erasure, or in a copy kept elsewhere), and nobody can export them.
	plan, err := catalog.PlanErasure(ctx, store, "acme", []string{uid}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.DataKeys) != 1 || len(plan.Unreadable) != 1 || len(plan.Plain) != 1 {
		t.Fatalf("erasure plan %+v: want the one key, the backup encrypted to it and the format 1 backup", plan)
	}
	plan.Unreadable, plan.Plain = nil, nil // destroy the key only
	if err := catalog.Erase(ctx, store, plan); err != nil {
		t.Fatal(err)
	}
	destroyed := "error: backup " + id + " of tenant acme cannot be decrypted by anyone: its data key " + dataKey.ID + " is destroyed"
	failAgent(t, env, destroyed, exportArgs("--identity-file", platform.identityFile, "-o", refused)...)
	failAgent(t, storeEnv, destroyed, exportArgs("--identity-file", platform.identityFile, "--output-storage", s3.Location("exports"), "--export-id", "erased")...)
	if _, err := os.Stat(refused); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused export left %s: %v", refused, err)
	}
	for o := range s3.Client.ListObjects(ctx, s3.Bucket, minio.ListObjectsOptions{Prefix: "exports/", Recursive: true}) {
		t.Errorf("an export of an erased tenant left %s in storage", o.Key)
	}
}

package backup_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/test/stack"
)

// seedSQL builds a small database with what tends to break backups: non-ASCII names and data,
// control characters, large objects, many tables, partitions, TOASTed values, and objects that are
// not tables. %[1]s is a tag that makes two tenants' databases differ.
const seedSQL = `
CREATE SCHEMA shop;
CREATE TYPE shop.mood AS ENUM ('ok', 'happy', 'très heureux');
CREATE TABLE shop.customers (
  id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE, mood shop.mood DEFAULT 'ok',
  created timestamptz NOT NULL DEFAULT '2026-01-01 00:00:00+00');
INSERT INTO shop.customers (name, email) SELECT '%[1]s customer ' || g, 'c' || g || '@%[1]s.example' FROM generate_series(1, 1500) g;
CREATE VIEW shop.recent AS SELECT * FROM shop.customers WHERE id > 1400;
CREATE FUNCTION shop.greet(n text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'hi ' || n $$;
CREATE INDEX customers_name ON shop.customers (name);

CREATE TABLE "Ünïcødé ✓" ("名前" text PRIMARY KEY, emoji text, note text);
INSERT INTO "Ünïcødé ✓" VALUES
  ('日本語テキスト', '🐘🔐', E'line1\nline2\ttab \\ backslash, "quotes" and ''apostrophes'''),
  ('Ελληνικά', '👩‍💻', 'ñ ß ø å — – …'),
  ('עברית', '🏳️‍🌈', E'\\N is not null'),
  ('%[1]s', '', NULL);

CREATE TABLE docs (id int PRIMARY KEY, body jsonb, digest bytea, doc oid, big text);
INSERT INTO docs
  SELECT g, jsonb_build_object('k', g, 'tag', '%[1]s', 'ünï', 'cødé'), decode(md5(g::text), 'hex'),
         lo_from_bytea(0, convert_to(repeat('large object ' || g || ' %[1]s ', 2000 * g), 'UTF8')),
         repeat(md5(g::text), 5000)
  FROM generate_series(1, 6) g;

CREATE TABLE events (id bigint, at date, payload text) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO events SELECT g, date '2025-06-01' + (g %% 400), 'p' || g FROM generate_series(1, 3000) g;

CREATE TABLE empty_table (id int);
CREATE SEQUENCE counter START 42;
SELECT nextval('counter');

CREATE SCHEMA many;
DO $$ BEGIN
  FOR i IN 1..150 LOOP
    EXECUTE format('CREATE TABLE many.t%%s (id int PRIMARY KEY, v text)', i);
    EXECUTE format('INSERT INTO many.t%%s SELECT g, md5(g::text) FROM generate_series(1, %%s) g', i, i);
  END LOOP;
END $$;
`

// seed creates database db on pg and fills it; tag makes its content distinguishable.
func seed(t *testing.T, pg *stack.Postgres, db, tag string) string {
	t.Helper()
	dsn := pg.CreateDatabase(t, db)
	pg.Exec(t, db, fmt.Sprintf(seedSQL, tag))
	return dsn
}

// fingerprint describes a database's schema and data for comparison: the schema as pg_dump prints
// it (minus version lines and the random \restrict key of newer pg_dump), a hash of every table's
// rows in a stable order, every large object's hash, and sequence positions.
func fingerprint(t *testing.T, pg *stack.Postgres, db string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(pg.BinDir, "pg_dump"), "--schema-only", "--no-password", "--dbname="+pg.DSNFor(db))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pg_dump --schema-only %s: %v\n%s", db, err, out)
	}
	var schema []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "-- Dumped ") || strings.HasPrefix(line, `\restrict`) || strings.HasPrefix(line, `\unrestrict`) {
			continue
		}
		schema = append(schema, line)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
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
	var b strings.Builder
	b.WriteString(strings.Join(schema, "\n"))
	for _, tbl := range tables {
		var n int64
		var sum string
		q := fmt.Sprintf(`SELECT count(*), coalesce(md5(string_agg(x::text, E'\n' ORDER BY x::text)), '') FROM %s x`, tbl)
		if err := conn.QueryRow(ctx, q).Scan(&n, &sum); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		fmt.Fprintf(&b, "\n%s %d %s", tbl, n, sum)
	}
	var los string
	if err := conn.QueryRow(ctx, `SELECT coalesce(string_agg(oid::text || ':' || md5(lo_get(oid)), ',' ORDER BY oid), '') FROM pg_largeobject_metadata`).Scan(&los); err != nil {
		t.Fatal(err)
	}
	var seq int64
	if err := conn.QueryRow(ctx, `SELECT last_value FROM counter`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "\nlarge objects %s\nsequence %d", los, seq)
	return b.String()
}

// assertSameDatabase fails when two databases differ in schema or data.
func assertSameDatabase(t *testing.T, pg *stack.Postgres, want, got string) {
	t.Helper()
	a, b := fingerprint(t, pg, want), fingerprint(t, pg, got)
	if a == b {
		return
	}
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) && i < len(bl); i++ {
		if al[i] != bl[i] {
			t.Fatalf("database %s differs from %s at line %d:\n  %s: %q\n  %s: %q", got, want, i+1, want, al[i], got, bl[i])
		}
	}
	t.Fatalf("database %s differs from %s in length: %d vs %d lines", got, want, len(bl), len(al))
}

// tableCount is the number of tables in db outside the system schemas.
func tableCount(t *testing.T, pg *stack.Postgres, db string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSNFor(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg\_toast%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// key is an age key pair with its identity in a file.
type key struct {
	recipient    string
	identityFile string
}

func newKey(t *testing.T) key {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "identity.txt")
	if err := os.WriteFile(f, []byte("# test key\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return key{recipient: id.Recipient().String(), identityFile: f}
}

// signer is a BackupPolicy's signing key as its jobs get it: the private key in a file, the
// public key in text form.
type signer struct {
	keyFile, publicKey string
}

func newSigner(t *testing.T) signer {
	t.Helper()
	pemData, pub, err := catalog.GenerateSigningKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "signing.key")
	if err := os.WriteFile(f, pemData, 0o600); err != nil {
		t.Fatal(err)
	}
	return signer{keyFile: f, publicKey: pub}
}

// env has the agent sign what it backs up and trust that signature when it reads, as a
// policy's backup and verification jobs do together.
func (s signer) env() []string {
	return []string{"TENANTOPS_SIGNING_KEY_FILE=" + s.keyFile, "TENANTOPS_SIGNING_PUBLIC_KEYS=" + s.publicKey}
}

// assertNoSecrets fails when output shows a password or a private key.
func assertNoSecrets(t *testing.T, output string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(output, s) {
			t.Fatalf("output reveals a secret:\n%s", output)
		}
	}
	if regexp.MustCompile(`AGE-SECRET-KEY-|PRIVATE KEY`).MatchString(output) {
		t.Fatalf("output reveals a secret key:\n%s", output)
	}
}

package stack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantops/tenant-operator/internal/backup/pgcluster"
)

// Postgres is a running PostgreSQL server on 127.0.0.1 with password authentication.
type Postgres struct {
	Major   string
	Version string
	// BinDir holds both the server and the client tools of this major.
	BinDir   string
	Port     int
	Password string
	// DSN points at the "postgres" database; DSNFor names another.
	DSN     string
	cluster *pgcluster.Cluster
}

// BinDir is where the programs of a PostgreSQL major are expected: Debian's own directory for 15
// (the machine's package), the repository's bin/postgres/<major>/bin for the others.
func BinDir(t testing.TB, major string) string {
	t.Helper()
	dirs := []string{filepath.Join(RepoRoot(t), "bin", "postgres", major, "bin")}
	if major == "15" {
		dirs = append([]string{"/usr/lib/postgresql/15/bin"}, dirs...)
	}
	for _, d := range dirs {
		if allExecutable(d, "initdb", "postgres", "pg_dump", "pg_restore") {
			// Resolved, because the server runs as the postgres user when tests run as root, and
			// that user may not be able to enter the checkout that holds the symlink.
			if real, err := filepath.EvalSymlinks(d); err == nil {
				return real
			}
			return d
		}
	}
	install := "bash hack/postgres.sh"
	if major == "15" {
		install = "apt-get install postgresql-15"
	}
	t.Fatalf("stack: PostgreSQL %s not found (looked in %s); install it with `%s`", major, strings.Join(dirs, ", "), install)
	return ""
}

func allExecutable(dir string, names ...string) bool {
	for _, n := range names {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// StartPostgres starts a fresh server of the given major ("15", "18") on a free loopback port and
// stops it when the test ends.
func StartPostgres(t testing.TB, major string) *Postgres {
	t.Helper()
	return StartPostgresWith(t, major, PostgresOptions{})
}

// PostgresOptions change the server StartPostgresWith starts.
type PostgresOptions struct {
	// Config is appended to postgresql.conf (archive_mode, archive_command, ...).
	Config string
	// Env is added to the server's environment: what archive_command needs.
	Env []string
	// Programs are what the test needs in the bin directory besides the server and pg_dump, so
	// that an older build of it fails with the command that installs a newer one.
	Programs []string
}

// StartPostgresWith is StartPostgres with a configuration of the test's.
func StartPostgresWith(t testing.TB, major string, o PostgresOptions) *Postgres {
	t.Helper()
	bin := BinDir(t, major)
	if !allExecutable(bin, o.Programs...) {
		t.Fatalf("stack: %s lacks one of %s; build it again with `bash hack/postgres.sh` (or install Debian's postgresql-%s)", bin, strings.Join(o.Programs, ", "), major)
	}
	password := randomHex(t, 12)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var c *pgcluster.Cluster
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		c, err = pgcluster.Start(ctx, pgcluster.Options{BinDir: bin, Port: freePort(t), Password: password, Config: o.Config, Env: o.Env})
		if err == nil || !strings.Contains(err.Error(), "Address already in use") {
			break
		}
	}
	if err != nil {
		t.Fatalf("stack: start PostgreSQL %s from %s: %v", major, bin, err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stack: stop PostgreSQL %s: %v", major, err)
		}
	})
	p := &Postgres{Major: major, Version: c.Version, BinDir: bin, Port: c.Port, Password: password, DSN: c.DSN("postgres"), cluster: c}
	if c.Major == 0 || !strings.HasPrefix(c.Version, major) {
		t.Fatalf("stack: %s/postgres is version %s, want major %s", bin, c.Version, major)
	}
	return p
}

// DSNFor is the URL of database db on this server.
func (p *Postgres) DSNFor(db string) string { return p.cluster.DSN(db) }

// CreateDatabase creates an empty database and returns its URL.
func (p *Postgres) CreateDatabase(t testing.TB, name string) string {
	t.Helper()
	p.Exec(t, "postgres", `CREATE DATABASE "`+name+`"`)
	return p.DSNFor(name)
}

// Exec runs SQL (several statements allowed) in database db and fails the test on error.
func (p *Postgres) Exec(t testing.TB, db, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.DSNFor(db))
	if err != nil {
		t.Fatalf("stack: connect to %s: %v", db, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("stack: exec in %s: %v\n%s", db, err, sql)
	}
}

// DataDir is the server's data directory.
func (p *Postgres) DataDir() string { return p.cluster.DataDir }

// LogTail is the end of the server's log, for failure messages.
func (p *Postgres) LogTail() string { return tail(p.cluster.LogFile(), 20) }

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("stack: random: %v", err)
	}
	return hex.EncodeToString(b)
}

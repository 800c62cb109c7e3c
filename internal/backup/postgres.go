package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantops/tenant-operator/internal/catalog"
)

// connInfo is a connection string split for PostgreSQL's programs: the string without its password
// (safe on a command line, which other processes can read in /proc) and the password, which goes
// into the child's environment as PGPASSWORD. Messages use Redacted.
type connInfo struct {
	dsn      string // as given; only ever handed to pgx
	noSecret string
	password string
}

var kvPasswordRE = regexp.MustCompile(`(?i)(^|\s+)password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']\S*)`)

func parseConnInfo(dsn string) (connInfo, error) {
	if strings.TrimSpace(dsn) == "" {
		return connInfo{}, fmt.Errorf("no database: pass --dsn postgres://USER@HOST:PORT/DB")
	}
	ci := connInfo{dsn: dsn}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			// url's error quotes the input, password included.
			return connInfo{}, fmt.Errorf("invalid --dsn: not a valid postgres:// URL")
		}
		if u.User != nil {
			if pw, ok := u.User.Password(); ok {
				ci.password = pw
				u.User = url.User(u.User.Username())
			}
		}
		q := u.Query()
		if pw := q.Get("password"); pw != "" {
			ci.password = pw
			q.Del("password")
			u.RawQuery = q.Encode()
		}
		ci.noSecret = u.String()
		return ci, nil
	}
	// keyword=value form
	if m := kvPasswordRE.FindStringSubmatch(dsn); m != nil {
		pw := m[2]
		if strings.HasPrefix(pw, "'") {
			pw = strings.NewReplacer(`\'`, `'`, `\\`, `\`).Replace(pw[1 : len(pw)-1])
		}
		ci.password = pw
	}
	ci.noSecret = strings.TrimSpace(kvPasswordRE.ReplaceAllString(dsn, ""))
	return ci, nil
}

// Redacted is the connection string with the password masked, for messages.
func (c connInfo) Redacted() string {
	if c.password == "" {
		return c.noSecret
	}
	return c.noSecret + " (password hidden)"
}

// env is the environment for a PostgreSQL program connecting with this connection string.
func (c connInfo) env(base []string) []string {
	if c.password == "" {
		return base
	}
	return append(base, "PGPASSWORD="+c.password)
}

// scrub removes the password from text that came from elsewhere (a driver's error, a program's
// stderr) in case it was echoed there.
func (c connInfo) scrub(s string) string {
	if c.password == "" {
		return s
	}
	s = strings.ReplaceAll(s, c.password, "xxxxx")
	return strings.ReplaceAll(s, url.QueryEscape(c.password), "xxxxx")
}

func (c connInfo) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, c.dsn)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %s", c.Redacted(), c.scrub(connectFailure(err)))
	}
	return conn, nil
}

// connectFailure is the part of pgx's connection error that says what went wrong: the server's
// answer or the network's. pgx's own text repeats itself once per attempt (with and without TLS).
func connectFailure(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Severity + ": " + pgErr.Message
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return opErr.Error()
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.Error()
	}
	return err.Error()
}

// snapshotSource is a read-only REPEATABLE READ transaction on the database being backed up, whose
// snapshot pg_dump adopts (pg_dump --snapshot). The row counts are taken in that same transaction,
// so they describe exactly the rows in the dump even while the tenant keeps writing; counted in any
// other snapshot they could disagree with a perfectly good dump and fail every verify drill. The
// transaction must stay open until pg_dump has imported the snapshot, and we keep it until the end.
type snapshotSource struct {
	conn     *pgx.Conn
	tx       pgx.Tx
	snapshot string
	version  string
	major    int
	database string
	tables   []catalog.TableRows
}

func openSnapshot(ctx context.Context, ci connInfo) (*snapshotSource, error) {
	conn, err := ci.connect(ctx)
	if err != nil {
		return nil, err
	}
	s := &snapshotSource{conn: conn}
	fail := func(what string, err error) (*snapshotSource, error) {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("%s: %s", what, ci.scrub(err.Error()))
	}
	s.tx, err = conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fail("begin snapshot transaction", err)
	}
	var versionNum int
	err = s.tx.QueryRow(ctx, `SELECT pg_export_snapshot(), current_setting('server_version'),
		current_setting('server_version_num')::int, current_database()`).Scan(&s.snapshot, &s.version, &versionNum, &s.database)
	if err != nil {
		return fail("export snapshot", err)
	}
	s.major = versionNum / 10000
	// The version string may carry a distribution suffix ("15.13 (Debian 15.13-0+deb12u1)").
	if i := strings.IndexByte(s.version, ' '); i > 0 {
		s.version = s.version[:i]
	}
	s.tables, err = listTables(ctx, s.tx)
	if err != nil {
		return fail("list tables", err)
	}
	return s, nil
}

// tablesQuery lists the tables whose rows pg_dump writes: ordinary tables and partitions (a
// partitioned parent holds no rows itself), not temporary ones, not the catalogs, and not tables
// that belong to an extension (pg_dump leaves those to CREATE EXTENSION).
const tablesQuery = `
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2`

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func listTables(ctx context.Context, q querier) ([]catalog.TableRows, error) {
	rows, err := q.Query(ctx, tablesQuery)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []catalog.TableRows
	for rows.Next() {
		var t catalog.TableRows
		if err := rows.Scan(&t.Schema, &t.Name); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// countRows fills in exact row counts (count(*), not the planner's estimate) and returns the number
// of large objects.
func countRows(ctx context.Context, q querier, tables []catalog.TableRows) (int64, error) {
	for i := range tables {
		sql := "SELECT count(*) FROM " + pgx.Identifier{tables[i].Schema, tables[i].Name}.Sanitize()
		if err := q.QueryRow(ctx, sql).Scan(&tables[i].Rows); err != nil {
			return 0, fmt.Errorf("count rows of %s: %w", tables[i].QualifiedName(), err)
		}
	}
	var los int64
	if err := q.QueryRow(ctx, "SELECT count(*) FROM pg_largeobject_metadata").Scan(&los); err != nil {
		return 0, fmt.Errorf("count large objects: %w", err)
	}
	return los, nil
}

func (s *snapshotSource) close(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	if s.tx != nil {
		_ = s.tx.Rollback(ctx)
	}
	_ = s.conn.Close(ctx)
}

// tailBuffer keeps the last bytes written to it: a child's stderr, for the error message, without
// growing with a chatty child.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

// lastError is the most telling line of a PostgreSQL program's stderr: the last one that says
// "error" (pg_dump and pg_restore print context after it), else the last line.
func (t *tailBuffer) lastError() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(t.buf)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "error:") || strings.Contains(lines[i], "FATAL:") {
			msg := strings.TrimSpace(lines[i])
			// pg_restore puts the failing statement's error on the next line.
			if i+1 < len(lines) && strings.Contains(msg, "could not execute query") {
				msg += " " + strings.TrimSpace(lines[i+1])
			}
			return msg
		}
	}
	return strings.TrimSpace(lines[len(lines)-1])
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}

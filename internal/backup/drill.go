package backup

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantops/tenant-operator/internal/backup/pgcluster"
	"github.com/tenantops/tenant-operator/internal/catalog"
)

// A restore drill restores a backup into a scratch PostgreSQL, and so runs SQL that the tenant
// chose: a function called by a CHECK constraint, an index expression, a generated column or a
// materialized view executes during the restore. It therefore runs in two processes that share
// nothing but a stream socket:
//
//   - the agent (verify --identity-file) holds the age identity and the storage credentials. It
//     fetches the object, checks it against the manifest, decrypts and decompresses it, and sends
//     the plain archive to the restorer; it compares the restorer's row counts with the manifest
//     and records the verification.
//   - the restorer (verify --serve-drills, or a child the agent starts) holds no secret at all. It
//     starts the scratch server, creates an unprivileged role, drillRole, and a database it owns,
//     and has pg_restore load the archive as that role with --no-owner --no-privileges, so that
//     whatever the backup runs, it runs without superuser: it cannot read files, run programs,
//     load libraries or become anyone else. Only then does it count rows, as the same role.
//
// In the verification job the two are separate containers (see builders.VerifyCronJob): the
// restorer's has no identity volume, no credentials in its environment and its own uid, so even
// code that escaped PostgreSQL would find nothing to take.
//
// On the socket: the agent sends a drillRequest (one JSON line); the restorer answers drillReady
// once its scratch server is up; the agent sends the archive as frames (frameData, then frameEnd
// only after the whole object matched its manifest, or frameAbort); the restorer answers one
// drillReport. The restorer holds back the archive's last byte until frameEnd arrives, so a
// stream that breaks or is aborted can never be committed.

// drillProtocol is the version of the exchange; both sides come from the same binary.
const drillProtocol = 1

// Names inside the scratch server.
const (
	// drillRole restores and counts: no superuser, no role creation, a member of no role but the
	// implicit pg_database_owner of its database (whose CREATE on schema public it needs);
	// BYPASSRLS so that row-level security (a policy is tenant SQL too) neither runs nor hides
	// rows from the count.
	drillRole = "tenantops_drill"
	// drillDatabase is the database the drill restores into, owned by drillRole.
	drillDatabase = "restore_drill"
)

// scratchConfig is added to the scratch server's postgresql.conf. Every log line starts with its
// SQLSTATE, so that a failed restore is classified by code rather than by its words; statements
// are not logged (they are the backup's SQL); and the restore writes as little WAL as it can.
const scratchConfig = `log_line_prefix = '%e '
log_min_messages = error
log_min_error_statement = panic
log_error_verbosity = terse
wal_level = minimal
max_wal_senders = 0
archive_mode = off
`

// Sizes on the socket.
const (
	maxFrame       = 256 << 10
	maxRequestSize = 64 << 10
	maxReadySize   = 64 << 10
	// maxReportSize bounds the restorer's report, which lists every table: about a million.
	maxReportSize = 64 << 20
)

// Frame types.
const (
	frameData  byte = 'D'
	frameEnd   byte = 'E'
	frameAbort byte = 'A'
)

// drillRequest opens a drill.
type drillRequest struct {
	Protocol      int `json:"protocol"`
	PostgresMajor int `json:"postgresMajor"`
	// Roles are created in the scratch server, without login or privileges, so that objects naming
	// them (a row-level security policy TO app) restore.
	Roles []string `json:"roles,omitempty"`
}

// drillReady says the scratch server is up, or why it is not.
type drillReady struct {
	Version string `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Outcomes of a drill, as the restorer reports them.
const (
	outcomeRestored      = "restored"
	outcomeRestoreFailed = "restore-failed"
	outcomeCountFailed   = "count-failed"
	outcomeAborted       = "aborted"
	outcomeError         = "error"
)

// drillReport is the restorer's answer. It carries no text from the backup or the database beyond
// table names and the description of the object pg_restore stopped at: the restorer's own log has
// the rest.
type drillReport struct {
	Outcome string `json:"outcome"`
	// SQLState is the code of the error that stopped pg_restore or the count.
	SQLState string `json:"sqlstate,omitempty"`
	// ObjectType and ObjectName describe the archive entry pg_restore stopped at.
	ObjectType string `json:"objectType,omitempty"`
	ObjectName string `json:"objectName,omitempty"`
	// Error is the restorer's own account of an outcomeError, in its own words.
	Error        string              `json:"error,omitempty"`
	Tables       []catalog.TableRows `json:"tables,omitempty"`
	LargeObjects int64               `json:"largeObjects,omitempty"`
}

// errStreamAborted is the restorer's view of a frameAbort.
var errStreamAborted = errors.New("the agent aborted the stream")

// writeMessage sends v as one JSON line.
func writeMessage(w io.Writer, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// readMessage reads one JSON line of at most max bytes into v.
func readMessage(r *bufio.Reader, v any, max int) error {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > max {
			return fmt.Errorf("message longer than %d bytes", max)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
	return json.Unmarshal(line, v)
}

// frameWriter sends the archive as frames: a type byte, a 4-byte big-endian length, the payload.
type frameWriter struct {
	w io.Writer
}

func (f *frameWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), maxFrame)
		if err := f.frame(frameData, p[:n]); err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

func (f *frameWriter) frame(kind byte, payload []byte) error {
	var head [5]byte
	head[0] = kind
	binary.BigEndian.PutUint32(head[1:], uint32(len(payload)))
	if _, err := f.w.Write(head[:]); err != nil {
		return err
	}
	_, err := f.w.Write(payload)
	return err
}

// frameReader reads the archive out of frames: io.EOF at frameEnd, errStreamAborted at
// frameAbort, io.ErrUnexpectedEOF when the connection ends without either.
type frameReader struct {
	r    io.Reader
	left int
	err  error
}

func (f *frameReader) Read(p []byte) (int, error) {
	for f.left == 0 {
		if f.err != nil {
			return 0, f.err
		}
		var head [5]byte
		if _, err := io.ReadFull(f.r, head[:]); err != nil {
			f.err = io.ErrUnexpectedEOF
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				f.err = err
			}
			return 0, f.err
		}
		size := binary.BigEndian.Uint32(head[1:])
		switch {
		case head[0] == frameData && size <= maxFrame:
			f.left = int(size)
		case head[0] == frameEnd && size == 0:
			f.err = io.EOF
		case head[0] == frameAbort && size == 0:
			f.err = errStreamAborted
		default:
			f.err = fmt.Errorf("bad frame %q of %d bytes", head[0], size)
		}
	}
	n, err := f.r.Read(p[:min(len(p), f.left)])
	f.left -= n
	switch {
	case err == nil, n > 0 && errors.Is(err, io.EOF):
		return n, nil
	case errors.Is(err, io.EOF):
		f.err = io.ErrUnexpectedEOF
	default:
		f.err = err
	}
	return n, f.err
}

// complete tells whether the stream reached frameEnd or frameAbort, after which the agent sends
// nothing more.
func (f *frameReader) complete() bool {
	return errors.Is(f.err, io.EOF) || errors.Is(f.err, errStreamAborted)
}

// DrillServerOptions configure a restorer.
type DrillServerOptions struct {
	// PgBinDir holds initdb, postgres and pg_restore (see pgcluster.Find when empty).
	PgBinDir string
	// ScratchDir is where scratch servers keep their data: the one place the backup's plaintext
	// touches a disk, so it should be a volume of its own, sized for the database.
	ScratchDir string
	// Log receives progress and, on failure, the bounded end of pg_restore's output; nil for none.
	Log io.Writer
}

// maxLoggedOutput bounds what the restorer prints of pg_restore's output on a failure.
const maxLoggedOutput = 4 << 10

// ServeDrills serves restore drills on ln, one at a time, until ctx ends, which is not an error.
func ServeDrills(ctx context.Context, ln net.Listener, o DrillServerOptions) error {
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	logf(o.Log, "drill restorer: waiting for drills on %s", ln.Addr())
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept a drill: %w", err)
		}
		if err := ServeDrill(ctx, conn, o); err != nil {
			logf(o.Log, "drill restorer: %v", err)
		}
	}
}

// ServeDrill serves one restore drill on conn and closes it.
func ServeDrill(ctx context.Context, conn net.Conn, o DrillServerOptions) error {
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	br := bufio.NewReaderSize(conn, 256<<10)
	var req drillRequest
	if err := readMessage(br, &req, maxRequestSize); err != nil {
		return fmt.Errorf("read the drill request: %w", err)
	}
	s, err := startScratch(ctx, o, req)
	if err != nil {
		_ = writeMessage(conn, drillReady{Error: err.Error()})
		return err
	}
	defer func() {
		if err := s.cluster.Stop(); err != nil {
			logf(o.Log, "drill restorer: %v", err)
		}
	}()
	if err := writeMessage(conn, drillReady{Version: s.cluster.Version}); err != nil {
		return fmt.Errorf("answer the agent: %w", err)
	}
	frames := &frameReader{r: br}
	report, err := s.restore(ctx, frames, o)
	if err != nil {
		return err
	}
	if err := writeMessage(conn, report); err != nil {
		return fmt.Errorf("report to the agent: %w", err)
	}
	// A restore that failed early leaves the agent sending: read on, so that it is never stuck
	// writing, until it ends the stream or goes.
	if !frames.complete() {
		_, _ = io.Copy(io.Discard, frames)
	}
	return nil
}

// scratch is one drill's server.
type scratch struct {
	cluster   *pgcluster.Cluster
	pgRestore string
}

var roleNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// startScratch starts the scratch server and, as its superuser and before any byte of the backup
// arrives, creates drillRole, the requested roles and drillDatabase. From then on nothing
// connects as superuser.
func startScratch(ctx context.Context, o DrillServerOptions, req drillRequest) (*scratch, error) {
	if req.Protocol != drillProtocol {
		return nil, fmt.Errorf("drill protocol %d, this restorer speaks %d: run the agent and the restorer from the same image", req.Protocol, drillProtocol)
	}
	for _, r := range req.Roles {
		if !roleNameRE.MatchString(r) || r == drillRole || r == pgcluster.DefaultSuperuser || strings.HasPrefix(r, "pg_") {
			return nil, fmt.Errorf("cannot create role %q in the scratch server", r)
		}
	}
	initdb, err := pgcluster.Find(o.PgBinDir, req.PostgresMajor, "initdb")
	if err != nil {
		return nil, err
	}
	_, major, err := pgcluster.Version(ctx, initdb)
	if err != nil {
		return nil, err
	}
	if major < req.PostgresMajor {
		return nil, fmt.Errorf("the backup is of PostgreSQL %d but %s is %d; point --pg-bin-dir at PostgreSQL %d or newer", req.PostgresMajor, initdb, major, req.PostgresMajor)
	}
	binDir := filepath.Dir(initdb)
	logf(o.Log, "drill restorer: starting a scratch PostgreSQL %d", major)
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{BinDir: binDir, ParentDir: o.ScratchDir, Config: scratchConfig})
	if err != nil {
		return nil, fmt.Errorf("start scratch PostgreSQL: %w", err)
	}
	if err := prepareScratch(ctx, cluster, req.Roles); err != nil {
		_ = cluster.Stop()
		return nil, err
	}
	return &scratch{cluster: cluster, pgRestore: filepath.Join(binDir, "pg_restore")}, nil
}

func prepareScratch(ctx context.Context, cluster *pgcluster.Cluster, roles []string) error {
	conn, err := pgx.Connect(ctx, cluster.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("connect to the scratch server: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	stmts := []string{"CREATE ROLE " + drillRole + " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION BYPASSRLS"}
	for _, r := range roles {
		stmts = append(stmts, "CREATE ROLE "+pgx.Identifier{r}.Sanitize()+" NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS")
	}
	stmts = append(stmts, "CREATE DATABASE "+drillDatabase+" OWNER "+drillRole)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("prepare the scratch server: %s: %w", s, err)
		}
	}
	return nil
}

// scratchEnv is pg_restore's whole environment: none of ours (a PGOPTIONS would change what the
// restore does), and English messages, which failedObject reads.
func scratchEnv() []string {
	env := []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "LANG=C"}
	if tz := os.Getenv("TZ"); tz != "" {
		env = append(env, "TZ="+tz)
	}
	return env
}

// restore loads the archive from frames as drillRole and counts what it restored. An error means
// there is nobody to report to: the agent went away.
func (s *scratch) restore(ctx context.Context, frames *frameReader, o DrillServerOptions) (drillReport, error) {
	logf(o.Log, "drill restorer: restoring as %s", drillRole)
	args := []string{"--dbname=" + s.cluster.SocketDSN(drillRole, drillDatabase), "--no-password",
		"--single-transaction", "--exit-on-error",
		// --verbose names the archive entry a failure happened at ("from TOC entry ..."), which
		// failedObject reads; its chatter stays within the bounded tail kept of the output.
		"--verbose",
		// Nothing the scratch server lacks: the source's owners and grants, tablespaces,
		// subscriptions (which would connect out) and security labels (which need a provider).
		"--no-owner", "--no-privileges", "--no-tablespaces", "--no-subscriptions", "--no-security-labels"}
	// What the server logs from here on is this restore's.
	var logOffset int64
	if info, err := os.Stat(s.cluster.LogFile()); err == nil {
		logOffset = info.Size()
	}
	run := runPgRestore(ctx, s.pgRestore, args, scratchEnv(), &holdLastByte{br: bufio.NewReaderSize(frames, 64<<10)})
	switch {
	case errors.Is(run.readErr, errStreamAborted):
		logf(o.Log, "drill restorer: the agent aborted the stream; nothing was restored")
		return drillReport{Outcome: outcomeAborted}, nil
	case run.readErr != nil:
		return drillReport{}, fmt.Errorf("the agent's stream broke: %w; nothing was restored", run.readErr)
	case run.waitErr != nil:
		return s.restoreFailed(run, logOffset, o), nil
	case run.writeErr != nil:
		// pg_restore succeeded without reading its whole input: it cannot have, since it needs
		// the archive's last byte to finish.
		return drillReport{Outcome: outcomeError, Error: "pg_restore ended before the end of the archive"}, nil
	}
	tables, los, err := countRestored(ctx, s.cluster)
	if err != nil {
		logf(o.Log, "drill restorer: counting rows failed: %s", escapeForLog(truncate(err.Error(), maxLoggedOutput)))
		return drillReport{Outcome: outcomeCountFailed, SQLState: sqlState(err)}, nil
	}
	logf(o.Log, "drill restorer: restored %d tables and %d large objects", len(tables), los)
	return drillReport{Outcome: outcomeRestored, Tables: tables, LargeObjects: los}, nil
}

// restoreFailed describes a failed pg_restore by the SQLSTATE the server logged for it and the
// archive entry pg_restore names, and logs pg_restore's own words, bounded and escaped, for the
// operator's eyes only.
func (s *scratch) restoreFailed(run pgRestoreRun, logOffset int64, o DrillServerOptions) drillReport {
	out := run.stderr.String()
	r := drillReport{Outcome: outcomeRestoreFailed, SQLState: restoreSQLState(s.cluster.LogFile(), logOffset)}
	r.ObjectType, r.ObjectName = failedObject(out)
	logf(o.Log, "drill restorer: pg_restore failed (%v, SQLSTATE %q); the end of its output:\n%s",
		run.waitErr, r.SQLState, escapeForLog(tail(out, maxLoggedOutput)))
	if r.SQLState == "" && (!s.cluster.Running() || strings.Contains(out, "connection to server") || strings.Contains(out, "server closed the connection")) {
		return drillReport{Outcome: outcomeError, Error: "the scratch server went away during the restore"}
	}
	return r
}

// countRestored lists the restored tables with exact row counts, as drillRole with a search path
// of the system catalogs only, so that no function or operator the backup defined can stand in
// for the ones the count uses.
func countRestored(ctx context.Context, cluster *pgcluster.Cluster) ([]catalog.TableRows, int64, error) {
	cfg, err := pgx.ParseConfig(cluster.SocketDSN(drillRole, drillDatabase))
	if err != nil {
		return nil, 0, err
	}
	cfg.RuntimeParams["search_path"] = "pg_catalog, pg_temp"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return tableRows(ctx, conn)
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

var (
	sqlStateLineRE = regexp.MustCompile(`^([0-9A-Z]{5}) (?:ERROR|FATAL|PANIC): `)
	sqlStateRE     = regexp.MustCompile(`^[0-9A-Z]{5}$`)
	// tocEntryRE finds pg_restore's "from TOC entry 123; 1259 16390 TABLE DATA orders app".
	tocEntryRE = regexp.MustCompile(`from TOC entry \d+; \d+ \d+ (.*)$`)
)

// restoreSQLState is the code of the error that stopped the restore: the first error the scratch
// server logged (see scratchConfig) from offset on, where the restore began. What follows it is
// pg_restore leaving once the restore had failed: the cancel of its COPY (57014) or the lost
// connection (class 08, e.g. 08006 "connection to client lost"). A connection exception is
// reported only when nothing else was logged.
func restoreSQLState(logFile string, offset int64) string {
	data, err := os.ReadFile(logFile)
	if err != nil {
		return ""
	}
	if offset > 0 && offset <= int64(len(data)) {
		data = data[offset:]
	}
	connectionLost := ""
	for _, line := range bytes.Split(data, []byte("\n")) {
		m := sqlStateLineRE.FindSubmatch(line)
		if m == nil {
			continue
		}
		code := string(m[1])
		if !strings.HasPrefix(code, "08") {
			return code
		}
		if connectionLost == "" {
			connectionLost = code
		}
	}
	return connectionLost
}

// tocTypes are the archive entry types failedObject recognizes, longest first so that "TABLE
// DATA" is not taken for "TABLE".
var tocTypes = []string{
	"MATERIALIZED VIEW DATA", "MATERIALIZED VIEW", "PUBLICATION TABLES IN SCHEMA", "PUBLICATION TABLE",
	"TEXT SEARCH CONFIGURATION", "TEXT SEARCH DICTIONARY", "TEXT SEARCH PARSER", "TEXT SEARCH TEMPLATE",
	"FOREIGN DATA WRAPPER", "SEQUENCE OWNED BY", "CHECK CONSTRAINT", "FK CONSTRAINT", "OPERATOR FAMILY",
	"OPERATOR CLASS", "EVENT TRIGGER", "LARGE OBJECT", "FOREIGN TABLE", "SEQUENCE SET", "USER MAPPING",
	"DEFAULT ACL", "TABLE ATTACH", "INDEX ATTACH", "TABLE DATA", "BLOB DATA", "BLOBS", "BLOB",
	"ACCESS METHOD", "STATISTICS DATA", "STATISTICS", "CONSTRAINT", "PUBLICATION", "SUBSCRIPTION",
	"PROCEDURE", "AGGREGATE", "COLLATION", "CONVERSION", "EXTENSION", "FUNCTION", "LANGUAGE",
	"OPERATOR", "SEQUENCE", "TRANSFORM", "TRIGGER", "COMMENT", "DEFAULT", "DOMAIN", "POLICY",
	"SCHEMA", "SERVER", "INDEX", "TABLE", "CAST", "RULE", "TYPE", "VIEW", "ACL",
}

// failedObject finds, in pg_restore's output, the type and name of the archive entry it stopped
// at. Only types it recognizes are taken; the name is the backup's and is quoted where shown.
func failedObject(stderr string) (string, string) {
	lines := strings.Split(stderr, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		m := tocEntryRE.FindStringSubmatch(strings.TrimSpace(lines[i]))
		if m == nil {
			continue
		}
		for _, t := range tocTypes {
			if rest, ok := strings.CutPrefix(m[1], t+" "); ok {
				// The entry ends with its owner, which the drill does not restore.
				if j := strings.LastIndexByte(rest, ' '); j > 0 {
					rest = rest[:j]
				}
				return t, rest
			}
		}
		return "", ""
	}
	return "", ""
}

// restorerEnvKeys are the variables a restorer child inherits: enough to find PostgreSQL and
// place its files, nothing that authenticates. TENANTOPS_AGENT is how this package's test binary
// becomes the agent; it carries no secret.
var restorerEnvKeys = map[string]bool{
	"PATH": true, "TZ": true, "TMPDIR": true, "LANG": true, "LC_ALL": true, pgcluster.EnvBinDir: true,
	"TENANTOPS_AGENT": true,
}

// restorerEnv keeps of env only what a restorer may have.
func restorerEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); ok && restorerEnvKeys[k] {
			out = append(out, kv)
		}
	}
	return out
}

// credentialEnvKeys name variables a restorer refuses to run with.
var credentialEnvKeys = []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "PGPASSWORD", "PGPASSFILE"}

// credentialsInEnv names the credential variables set in env.
func credentialsInEnv(env []string) []string {
	var found []string
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		for _, c := range credentialEnvKeys {
			if k == c && v != "" {
				found = append(found, k)
			}
		}
	}
	return found
}

// dialRestorer connects to the restorer's socket, waiting for it to appear: in the verification
// pod the restorer is a sidecar that starts alongside.
func dialRestorer(ctx context.Context, path string, wait time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(wait)
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			return conn, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no drill restorer at %s after %s: %w", path, wait, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// scratchTrouble tells whether an error code says the scratch server could not do the work (out
// of disk or memory, shut down, an I/O or internal error, a lost connection) rather than that the
// backup does not restore. Those fail the job for an operator to see, and record nothing.
func scratchTrouble(state string) bool {
	for _, class := range []string{"08", "53", "57", "58", "XX"} {
		if strings.HasPrefix(state, class) {
			return true
		}
	}
	return false
}

// sqlStateMeaning names an error code, or its class, in a few fixed words.
func sqlStateMeaning(state string) string {
	if m, ok := sqlStates[state]; ok {
		return m
	}
	if len(state) == 5 {
		if m, ok := sqlStateClasses[state[:2]]; ok {
			return m
		}
	}
	return "other error"
}

var sqlStates = map[string]string{
	"42501": "insufficient privilege",
	"P0001": "an error raised by a function",
	"23502": "not-null violation",
	"23503": "foreign key violation",
	"23505": "unique violation",
	"23514": "check violation",
	"42883": "undefined function",
	"42P01": "undefined table",
	"42704": "undefined object",
	"42710": "duplicate object",
	"22P02": "invalid text representation",
	"0A000": "feature not supported",
	"58P01": "undefined file",
}

var sqlStateClasses = map[string]string{
	"08": "connection exception",
	"0A": "feature not supported",
	"22": "data exception",
	"23": "integrity constraint violation",
	"25": "invalid transaction state",
	"28": "invalid authorization",
	"2B": "dependent objects still exist",
	"38": "external routine exception",
	"39": "external routine invocation exception",
	"3F": "invalid schema name",
	"40": "transaction rollback",
	"42": "syntax error or access rule violation",
	"44": "check option violation",
	"53": "insufficient resources",
	"54": "program limit exceeded",
	"55": "object not in prerequisite state",
	"57": "operator intervention",
	"58": "system error",
	"F0": "configuration file error",
	"HV": "foreign data wrapper error",
	"P0": "PL/pgSQL error",
	"XX": "internal error",
}

// restorerChild is a restorer this process started, for a drill outside the verification job.
type restorerChild struct {
	conn net.Conn
	cmd  *exec.Cmd
}

// startRestorer starts this program as a restorer (verify --serve-drill-fd) on one end of a
// socket pair. The child inherits none of this process's secrets: its environment is cut down to
// restorerEnv, the identity stays in this process's memory, and when this process is root the
// child runs as the postgres user, who cannot read the root-owned identity file.
func startRestorer(o VerifyOptions) (*restorerChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program to start a restorer: %w", err)
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket pair for the restorer: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "drill"), os.NewFile(uintptr(fds[1]), "drill-restorer")
	defer theirs.Close()
	conn, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		return nil, fmt.Errorf("socket pair for the restorer: %w", err)
	}
	args := []string{"verify", "--serve-drill-fd", "3"}
	if o.ScratchDir != "" {
		args = append(args, "--scratch-dir", o.ScratchDir)
	}
	if o.PgBinDir != "" {
		args = append(args, "--pg-bin-dir", o.PgBinDir)
	}
	if o.Log != nil {
		args = append(args, "-v")
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = restorerEnv(os.Environ())
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Stderr = o.Log
	cmd.Dir = "/"
	// The kernel ends the restorer if this process dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() == 0 {
		cred, err := unprivilegedUser()
		if err != nil {
			conn.Close()
			return nil, err
		}
		cmd.SysProcAttr.Credential = cred
	}
	if err := cmd.Start(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("start the restorer %s: %w", exe, err)
	}
	return &restorerChild{conn: conn, cmd: cmd}, nil
}

// wait ends the child's part: its end of the socket is closed, so it finishes and exits.
func (c *restorerChild) wait() error {
	_ = c.conn.Close()
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("the restorer: %w", err)
		}
		return nil
	case <-time.After(time.Minute):
		_ = c.cmd.Process.Kill()
		<-done
		return errors.New("the restorer did not exit within a minute of the drill")
	}
}

// unprivilegedUser is who a restorer started by root runs as: the postgres user, as pgcluster
// runs the scratch server.
func unprivilegedUser() (*syscall.Credential, error) {
	u, err := user.Lookup(pgcluster.DefaultSuperuser)
	if err != nil {
		return nil, fmt.Errorf("running as root, the restorer must run as the unprivileged user %q: %w", pgcluster.DefaultSuperuser, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", u.Username, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("user %s: %w", u.Username, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

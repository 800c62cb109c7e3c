package backup_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/test/stack"
)

// attemptsSQL is what a tenant who once was superuser of its database could leave in it: a
// function that, wherever the restore evaluates it, tries to take the drill's secrets and to
// escape the database. Every attempt is recorded as what it got, or the SQLSTATE that refused it,
// in one line starting with ATTEMPTS. %[1]s is a copy of the age identity the server's user could
// read if SQL let it, %[2]s the agent's own identity file, %[3]s a directory anyone may write to,
// %[4]s the database the backup is taken of, where the function does nothing.
const attemptsSQL = `
CREATE TABLE public.loot (line text);
CREATE FUNCTION public.attempts(tag text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
  report text := 'ATTEMPTS ' || tag;
  r text;
BEGIN
  BEGIN r := pg_read_file(%[1]s); report := report || ' identity=GOT:' || r;
  EXCEPTION WHEN others THEN report := report || ' identity=' || SQLSTATE; END;
  BEGIN r := pg_read_file(%[2]s); report := report || ' agent-identity=GOT:' || r;
  EXCEPTION WHEN others THEN report := report || ' agent-identity=' || SQLSTATE; END;
  BEGIN r := encode(pg_read_binary_file('/proc/1/environ'), 'escape'); report := report || ' proc1-environ=GOT:' || r;
  EXCEPTION WHEN others THEN report := report || ' proc1-environ=' || SQLSTATE; END;
  BEGIN r := encode(pg_read_binary_file('/proc/self/environ'), 'escape'); report := report || ' self-environ=GOT:' || r;
  EXCEPTION WHEN others THEN report := report || ' self-environ=' || SQLSTATE; END;
  BEGIN
    SELECT string_agg(encode(coalesce(pg_read_binary_file('/proc/' || d || '/environ', 0, 4096, true), ''), 'escape'), ' ') INTO r
      FROM pg_ls_dir('/proc') d WHERE d ~ '^[0-9]+$';
    report := report || ' all-environ=GOT:' || r;
  EXCEPTION WHEN others THEN report := report || ' all-environ=' || SQLSTATE; END;
  BEGIN r := current_setting('data_directory'); report := report || ' data-directory=GOT:' || r;
  EXCEPTION WHEN others THEN report := report || ' data-directory=' || SQLSTATE; END;
  BEGIN r := current_setting('AWS_SECRET_ACCESS_KEY'); report := report || ' env-setting=GOT:' || r;
  EXCEPTION WHEN others THEN report := report || ' env-setting=' || SQLSTATE; END;
  BEGIN
    EXECUTE 'COPY public.loot FROM PROGRAM ''id''';
    SELECT string_agg(line, ' ') INTO r FROM public.loot;
    report := report || ' program=GOT:' || r;
  EXCEPTION WHEN others THEN report := report || ' program=' || SQLSTATE; END;
  BEGIN EXECUTE format('COPY (SELECT 1) TO %%L', %[3]s || '/' || tag); report := report || ' write-file=GOT';
  EXCEPTION WHEN others THEN report := report || ' write-file=' || SQLSTATE; END;
  BEGIN PERFORM lo_import('/proc/self/environ'); report := report || ' lo-import=GOT';
  EXCEPTION WHEN others THEN report := report || ' lo-import=' || SQLSTATE; END;
  BEGIN EXECUTE 'SET ROLE postgres'; report := report || ' set-role=GOT';
  EXCEPTION WHEN others THEN report := report || ' set-role=' || SQLSTATE; END;
  BEGIN EXECUTE 'ALTER ROLE CURRENT_USER SUPERUSER'; report := report || ' alter-role=GOT';
  EXCEPTION WHEN others THEN report := report || ' alter-role=' || SQLSTATE; END;
  BEGIN
    EXECUTE 'CREATE OR REPLACE FUNCTION public.rf(text) RETURNS text LANGUAGE internal STRICT AS ''pg_read_file_all''';
    report := report || ' internal-function=GOT';
  EXCEPTION WHEN others THEN report := report || ' internal-function=' || SQLSTATE; END;
  BEGIN EXECUTE 'CREATE EXTENSION IF NOT EXISTS dblink'; report := report || ' dblink=GOT';
  EXCEPTION WHEN others THEN report := report || ' dblink=' || SQLSTATE; END;
  RETURN report;
END $f$;
`

// hostileVectors are the places a restore evaluates the backup's code, each in a database of its
// own; %[1]s is that database's name, where the code does nothing so that the backup is taken.
var hostileVectors = []struct {
	name string
	sql  string
	// loud vectors raise the attempts' report, failing the restore; the quiet one swallows it.
	loud bool
}{
	{"check", `
CREATE FUNCTION public.steal() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN IF current_database() = %[1]s THEN RETURN true; END IF; RAISE EXCEPTION '%%', public.attempts('check'); END $$;
CREATE TABLE public.victim (id int CHECK (public.steal()));
INSERT INTO public.victim VALUES (1), (2);`, true},
	{"index", `
CREATE FUNCTION public.steal(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$
BEGIN IF current_database() = %[1]s THEN RETURN $1; END IF; RAISE EXCEPTION '%%', public.attempts('index'); END $$;
CREATE TABLE public.victim (id int);
INSERT INTO public.victim VALUES (1), (2);
CREATE INDEX victim_steal ON public.victim (public.steal(id));`, true},
	{"generated", `
CREATE FUNCTION public.steal(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$
BEGIN IF current_database() = %[1]s THEN RETURN $1; END IF; RAISE EXCEPTION '%%', public.attempts('generated'); END $$;
CREATE TABLE public.victim (id int, x int GENERATED ALWAYS AS (public.steal(id)) STORED);
INSERT INTO public.victim (id) VALUES (1), (2);`, true},
	{"matview", `
CREATE FUNCTION public.steal() RETURNS text LANGUAGE plpgsql AS $$
BEGIN IF current_database() = %[1]s THEN RETURN 'ok'; END IF; RAISE EXCEPTION '%%', public.attempts('matview'); END $$;
CREATE MATERIALIZED VIEW public.mv AS SELECT public.steal() AS x;`, true},
	// A function only a superuser may create: it reads any file, its C code checking nothing.
	{"internal", `
CREATE FUNCTION public.rf(text) RETURNS text LANGUAGE internal STRICT AS 'pg_read_file_all';
CREATE TABLE public.victim (id int, CHECK (current_database() = %[1]s OR public.rf('/proc/self/environ') IS NULL));
INSERT INTO public.victim VALUES (1);`, false},
	// Swallows every refusal and hides its rows behind row-level security: the drill passes and
	// counts them all.
	{"quiet", `
CREATE FUNCTION public.steal() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN IF current_database() <> %[1]s THEN PERFORM public.attempts('quiet'); END IF; RETURN true; END $$;
CREATE TABLE public.victim (id int CHECK (public.steal()));
INSERT INTO public.victim SELECT generate_series(1, 1000);
ALTER TABLE public.victim ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.victim FORCE ROW LEVEL SECURITY;
CREATE POLICY hide ON public.victim TO app USING (false);`, false},
}

// TestDrillOfAHostileBackup restores backups whose source superuser planted code that runs during
// the restore and tries to read the age identity, the processes' environments and the server's
// files, to run programs, to write a file and to become superuser. The drill runs as the job runs
// it: the agent (root here, holding the identity and the S3 keys) and a restorer started
// separately as the postgres user, with no credential in its environment and no access to the
// identity's directory. Every attempt must be refused by PostgreSQL itself, and nothing secret may
// reach the verification, the agent's output, the restorer's log or a file.
func TestDrillOfAHostileBackup(t *testing.T) {
	for _, major := range []string{"15", "18"} {
		t.Run("postgres-"+major, func(t *testing.T) {
			t.Parallel()
			testDrillOfAHostileBackup(t, major)
		})
	}
}

func testDrillOfAHostileBackup(t *testing.T, major string) {
	pg := stack.StartPostgres(t, major)
	s3 := stack.StartS3(t)
	canary := "canary-" + randomHex(t)
	agentEnv := append(append(s3.Env(), "TENANTOPS_CANARY="+canary), newSigner(t).env()...)
	loc := s3.Location("drills")
	k := newKey(t)
	identity, err := os.ReadFile(k.identityFile)
	if err != nil {
		t.Fatal(err)
	}
	// A copy the server's own user could read, and a directory it could write: should SQL ever
	// let the backup's code at files, these would show it.
	open := sharedDir(t)
	exposed := filepath.Join(open, "identity.txt")
	if err := os.WriteFile(exposed, identity, 0o644); err != nil {
		t.Fatal(err)
	}
	markers := sharedDir(t)
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	pg.Exec(t, "postgres", `CREATE ROLE app NOLOGIN`)

	// The attempts work where privileges allow: run as the source's superuser, they read the
	// exposed identity and write a file.
	pg.CreateDatabase(t, "control")
	pg.Exec(t, "control", fmt.Sprintf(attemptsSQL, quote(exposed), quote(k.identityFile), quote(markers), quote("control")))
	control := queryString(t, pg, "control", `SELECT public.attempts('control')`)
	for _, want := range []string{"identity=GOT:", "AGE-SECRET-KEY-", "self-environ=GOT:", "program=GOT:uid=", "write-file=GOT", "internal-function=GOT"} {
		if !strings.Contains(control, want) {
			t.Fatalf("as superuser the attempts should succeed, want %q in:\n%s", want, control)
		}
	}
	if _, err := os.Stat(filepath.Join(markers, "control")); err != nil {
		t.Fatalf("as superuser the attempts should write a file: %v", err)
	}

	restorer := startRestorerProcess(t, stack.BinDir(t, major))
	ids := map[string]string{}
	for _, v := range hostileVectors {
		db := "src_" + v.name
		dsn := pg.CreateDatabase(t, db)
		pg.Exec(t, db, fmt.Sprintf(attemptsSQL, quote(exposed), quote(k.identityFile), quote(markers), quote(db))+fmt.Sprintf(v.sql, quote(db)))
		ids[v.name] = mustAgent(t, append(agentEnv, "PG_BIN_DIR="+pg.BinDir), "backup", "--dsn", dsn, "--storage", loc,
			"--tenant", v.name, "--schedule", "daily", "--recipient", k.recipient).lastLine()
	}

	var outputs strings.Builder
	for _, v := range hostileVectors {
		r := agent(t, agentEnv, "verify", "--storage", loc, "--tenant", v.name, "--schedule", "daily", "--backup", "latest",
			"--identity-file", k.identityFile, "--drill-socket", restorer.socket, "--drill-role", "app", "-v")
		outputs.WriteString(r.stdout + r.stderr)
		key := "drills/" + v.name + "/daily/" + ids[v.name] + "/" + catalog.VerificationObject
		if _, err := s3.Client.StatObject(context.Background(), s3.Bucket, key, minio.StatObjectOptions{}); err != nil {
			// verify records nothing when the drill itself could not run (not a finding about
			// the backup): say what the agent said.
			t.Fatalf("%s: verify exited %d and recorded no verification (%v):\n%s%s\nthe restorer's log:\n%s", v.name, r.code, err, r.stdout, r.stderr, restorer.log.String())
		}
		raw := readS3Object(t, s3, key)
		outputs.Write(raw)
		var ver catalog.Verification
		if err := json.Unmarshal(raw, &ver); err != nil {
			t.Fatalf("%s: verification.json: %v\n%s", v.name, err, raw)
		}
		problems := strings.Join(ver.Problems, "\n")
		switch {
		case v.name == "quiet":
			if r.code != 0 || !ver.OK || !strings.Contains(r.stdout, "restore drill ok") || !strings.Contains(r.stdout, "1000 rows") {
				t.Errorf("quiet: the refused attempts should leave a backup that restores and counts; exit %d, %+v\n%s%s", r.code, ver, r.stdout, r.stderr)
			}
		case v.name == "internal":
			if r.code == 0 || ver.OK || ver.Reason != "RestoreFailed" || !strings.Contains(problems, "SQLSTATE 42501") || !strings.Contains(problems, `FUNCTION "rf(text)"`) {
				t.Errorf("internal: want a failed restore at the function only a superuser may create; exit %d, %+v", r.code, ver)
			}
		default:
			if r.code == 0 || ver.OK || ver.Reason != "RestoreFailed" || !strings.Contains(problems, "SQLSTATE P0001") {
				t.Errorf("%s: want a failed restore (the function raises its report); exit %d, %+v\n%s", v.name, r.code, ver, r.stderr)
			}
		}
		if strings.Contains(problems, "ATTEMPTS") || strings.Contains(r.stdout+r.stderr, "ATTEMPTS") {
			t.Errorf("%s: the database's own words reached the verification or the agent's output:\n%s\n%s", v.name, problems, r.stderr)
		}
		if len(ver.Problems) > 5 {
			t.Errorf("%s: %d problems", v.name, len(ver.Problems))
		}
		for _, p := range ver.Problems {
			if len(p) > 200 || strings.ContainsAny(p, "\n\r") {
				t.Errorf("%s: problem not bounded to one line of 200 bytes: %q", v.name, p)
			}
		}
	}
	log := restorer.stop(t)
	outputs.WriteString(log)
	t.Logf("the restorer's log:\n%s", log)

	// Each loud vector's code ran during the restore (its report is in the restorer's log, in the
	// operator's namespace), and PostgreSQL refused every attempt.
	for _, v := range hostileVectors {
		if !v.loud {
			continue
		}
		line := attemptsLine(log, v.name)
		if line == "" {
			t.Errorf("%s: no ATTEMPTS report in the restorer's log: the code did not run where expected\n%s", v.name, log)
			continue
		}
		for _, attempt := range []string{"identity", "agent-identity", "proc1-environ", "self-environ", "all-environ", "data-directory",
			"program", "write-file", "lo-import", "set-role", "alter-role", "internal-function"} {
			if !strings.Contains(line, " "+attempt+"=42501") {
				t.Errorf("%s: %s was not refused for want of privilege: %s", v.name, attempt, line)
			}
		}
		if strings.Contains(line, "=GOT") {
			t.Errorf("%s: an attempt got through: %s", v.name, line)
		}
	}

	assertNoSecrets(t, outputs.String(), s3.SecretKey, s3.AccessKey, canary, strings.TrimSpace(lastLine(string(identity))))
	for _, v := range hostileVectors {
		if _, err := os.Stat(filepath.Join(markers, v.name)); !os.IsNotExist(err) {
			t.Errorf("%s: the restore wrote a file (%v)", v.name, err)
		}
	}
	if left, _ := os.ReadDir(restorer.scratch); len(left) != 0 {
		t.Errorf("the scratch directory keeps %d entries after the drills", len(left))
	}
}

// restorerProcess is a restorer serving drills, started as the verification job's scratch
// container runs it.
type restorerProcess struct {
	socket, scratch string
	cmd             *exec.Cmd
	log             *lockedBuffer
}

// startRestorerProcess starts `verify --serve-drills` with nothing in its environment but where to
// find PostgreSQL, as the postgres user when the test runs as root.
func startRestorerProcess(t *testing.T, pgBinDir string) *restorerProcess {
	t.Helper()
	r := &restorerProcess{socket: filepath.Join(sharedDir(t), "drill.sock"), scratch: sharedDir(t), log: &lockedBuffer{}}
	r.cmd = exec.Command(agentBinary, "verify", "--serve-drills", r.socket, "--scratch-dir", r.scratch, "--pg-bin-dir", pgBinDir, "-v")
	r.cmd.Env = []string{"PATH=/usr/bin:/bin", "TENANTOPS_AGENT=1"}
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	r.cmd.Dir = "/"
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		r.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, Pdeathsig: syscall.SIGKILL}
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.cmd.Process.Kill(); _, _ = r.cmd.Process.Wait() })
	return r
}

// stop ends the restorer as the kubelet ends a sidecar, and returns its log.
func (r *restorerProcess) stop(t *testing.T) string {
	t.Helper()
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the restorer exited with %v on SIGTERM:\n%s", err, r.log.String())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("the restorer did not stop on SIGTERM")
	}
	return r.log.String()
}

// sharedDir is a new directory both root and the postgres user may use.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tenantops-drill-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// attemptsLine is the restorer's log line reporting the attempts of one vector.
func attemptsLine(log, vector string) string {
	for _, line := range strings.Split(log, "\n") {
		if i := strings.Index(line, "ATTEMPTS "+vector+" "); i >= 0 {
			return line[i:]
		}
	}
	return ""
}

func queryString(t *testing.T, pg *stack.Postgres, db, sql string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSNFor(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var s string
	if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func readS3Object(t *testing.T, s3 *stack.S3, key string) []byte {
	t.Helper()
	obj, err := s3.Client.GetObject(context.Background(), s3.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	data, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return data
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

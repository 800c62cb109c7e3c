package backup_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"

	"github.com/tenantops/tenant-operator/test/stack"
)

// noiseSQL makes about 16 MB of incompressible data, so that an upload spans several 5 MiB parts.
const noiseSQL = `CREATE TABLE noise AS
  SELECT g AS id, decode(string_agg(md5(g::text || '-' || i::text), '' ORDER BY i), 'hex') AS b
  FROM generate_series(1, 8000) g CROSS JOIN generate_series(1, 128) i GROUP BY g`

// TestInterruptedBackupsAreNeverCounted kills and stops backups halfway through their upload, and
// makes pg_dump fail halfway, and checks that none of it ever counts as a backup, that a stopped
// upload is aborted, and that a killed one is cleaned up by the next run.
func TestInterruptedBackupsAreNeverCounted(t *testing.T) {
	t.Parallel()
	pg := stack.StartPostgres(t, "15")
	s3 := stack.StartS3(t)
	src := pg.CreateDatabase(t, "noisy")
	pg.Exec(t, "noisy", noiseSQL)
	k := newKey(t)
	env := append(append(s3.Env(), "PG_BIN_DIR="+pg.BinDir), newSigner(t).env()...)
	direct := s3.Location("bk")
	// Slow enough that the upload of ~16 MB takes seconds, so "halfway" is a moment we can hit.
	proxy := startThrottledProxy(t, s3.Endpoint, 4<<20)
	slow := strings.Replace(direct, s3.Endpoint, proxy.addr, 1)
	backupArgs := func(loc string, extra ...string) []string {
		return append([]string{"backup", "--dsn", src, "--storage", loc, "--tenant", "acme", "--schedule", "daily",
			"--recipient", k.recipient, "--part-size", "5MiB"}, extra...)
	}

	interrupt := func(sig syscall.Signal) result {
		t.Helper()
		start := proxy.sent.Load()
		cmd := agentCmd(env, backupArgs(slow)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(time.Minute)
		for proxy.sent.Load()-start < 7<<20 { // past the first part, inside the second
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("the upload never got 7 MiB through the proxy: %s", stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		_ = cmd.Process.Signal(sig)
		_ = cmd.Wait()
		return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	}
	assertNoBackups := func(when string) {
		t.Helper()
		if l := listJSON(t, env, direct); len(l) != 0 {
			t.Fatalf("%s: backups listed: %v", when, ids(l))
		}
		for o := range s3.Client.ListObjects(context.Background(), s3.Bucket, minio.ListObjectsOptions{Recursive: true}) {
			if strings.HasSuffix(o.Key, "manifest.json") {
				t.Fatalf("%s: a manifest exists: %s", when, o.Key)
			}
		}
	}

	// SIGKILL: nothing can clean up; the parts stay on the server as an unfinished upload, which is
	// not an object and not a backup.
	r := interrupt(syscall.SIGKILL)
	if r.code == 0 || r.stdout != "" {
		t.Fatalf("a killed backup exited %d with stdout %q", r.code, r.stdout)
	}
	assertNoBackups("after SIGKILL")
	if n := incompleteUploads(t, s3); n != 1 {
		t.Fatalf("after SIGKILL: %d unfinished uploads, want the killed one", n)
	}
	failAgent(t, env, "error: no backups found for tenant acme schedule daily", "verify", "--storage", direct,
		"--tenant", "acme", "--schedule", "daily", "--backup", "latest")

	// SIGTERM: the agent stops and aborts its multipart upload.
	r = interrupt(syscall.SIGTERM)
	if r.code == 0 || r.stdout != "" || !strings.HasPrefix(r.stderr, "error: backup ") || !strings.Contains(r.stderr, "interrupted") || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("a stopped backup exited %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	assertNoBackups("after SIGTERM")
	if n := incompleteUploads(t, s3); n != 1 {
		t.Fatalf("after SIGTERM: %d unfinished uploads, want only the killed one (the stopped one aborted)", n)
	}

	// pg_dump failing halfway: what it wrote is not stored.
	fake := t.TempDir()
	writeScript(t, filepath.Join(fake, "pg_dump"), `#!/bin/sh
if [ "$1" = --version ]; then echo "pg_dump (PostgreSQL) 15.99"; exit 0; fi
head -c 12000000 /dev/urandom
echo "pg_dump: error: simulated failure halfway" >&2
exit 1
`)
	failAgent(t, env, "pg_dump failed: pg_dump: error: simulated failure halfway", backupArgs(direct, "--pg-bin-dir", fake)...)
	assertNoBackups("after pg_dump failed")
	if n := incompleteUploads(t, s3); n != 1 {
		t.Fatalf("after pg_dump failed: %d unfinished uploads, want only the killed one", n)
	}

	// The next run removes what the killed one left, and is itself a backup.
	time.Sleep(1100 * time.Millisecond)
	id := mustAgent(t, env, backupArgs(direct, "--abandoned-after", "1s")...).lastLine()
	if n := incompleteUploads(t, s3); n != 0 {
		t.Fatalf("the next backup left %d unfinished uploads", n)
	}
	if l := listJSON(t, env, direct); len(l) != 1 || l[0].ID != id || l[0].Tables[0].Rows != 8000 {
		t.Fatalf("after a good backup: %v", ids(l))
	}
	mustAgent(t, env, "verify", "--storage", direct, "--tenant", "acme", "--schedule", "daily", "--backup", id)
}

// TestTenantsConcurrently backs up two tenants at the same time into the same bucket and checks
// that each one's backups hold its own data and nothing else.
func TestTenantsConcurrently(t *testing.T) {
	t.Parallel()
	pg := stack.StartPostgres(t, "18")
	s3 := stack.StartS3(t)
	env := append(append(s3.Env(), "PG_BIN_DIR="+pg.BinDir), newSigner(t).env()...)
	loc := s3.Location("shared")
	k := newKey(t)
	tenants := []string{"acme", "globex"}
	dsns := map[string]string{}
	for _, tn := range tenants {
		dsns[tn] = seed(t, pg, tn+"_db", tn)
	}

	var wg sync.WaitGroup
	got := map[string]result{}
	var mu sync.Mutex
	for _, tn := range tenants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := agent(t, env, "backup", "--dsn", dsns[tn], "--storage", loc, "--tenant", tn, "--schedule", "hourly", "--recipient", k.recipient)
			mu.Lock()
			got[tn] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, tn := range tenants {
		if got[tn].code != 0 {
			t.Fatalf("backup of %s: exit %d: %s", tn, got[tn].code, got[tn].stderr)
		}
	}
	if all := listJSON(t, env, loc); len(all) != 2 {
		t.Fatalf("two tenants, one backup each, but list shows %v", ids(all))
	}
	for _, tn := range tenants {
		l := listJSON(t, env, loc, "--tenant", tn, "--schedule", "hourly")
		if len(l) != 1 || l[0].ID != got[tn].lastLine() || l[0].Tenant != tn || l[0].Database != tn+"_db" {
			t.Fatalf("tenant %s lists %v", tn, ids(l))
		}
		pg.CreateDatabase(t, tn+"_restored")
		mustAgent(t, env, "restore", "--storage", loc, "--tenant", tn, "--schedule", "hourly", "--backup", "latest",
			"--identity-file", k.identityFile, "--dsn", pg.DSNFor(tn+"_restored"))
		assertSameDatabase(t, pg, tn+"_db", tn+"_restored")
	}
	if fingerprint(t, pg, "acme_db") == fingerprint(t, pg, "globex_db") {
		t.Fatal("the two tenants' databases are identical, so the test proves nothing")
	}

	// Unreachable storage is named as such.
	dead := deadAddress(t)
	failAgent(t, env, "error: storage unreachable: "+dead, "backup", "--dsn", dsns["acme"],
		"--storage", strings.Replace(loc, s3.Endpoint, dead, 1), "--tenant", "acme", "--schedule", "hourly", "--recipient", k.recipient)
	failAgent(t, env, "error: storage unreachable: ", "backups", "list", "--storage", strings.Replace(loc, s3.Endpoint, dead, 1))
}

func incompleteUploads(t *testing.T, s3 *stack.S3) int {
	t.Helper()
	n := 0
	for u := range s3.Client.ListIncompleteUploads(context.Background(), s3.Bucket, "", true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		n++
	}
	return n
}

func writeScript(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

func deadAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// throttledProxy forwards TCP connections to an upstream address, letting client-to-server bytes
// through at a fixed rate and counting them.
type throttledProxy struct {
	addr string
	sent atomic.Int64
}

func startThrottledProxy(t *testing.T, upstream string, bytesPerSecond int) *throttledProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &throttledProxy{addr: l.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				continue
			}
			wg.Add(2)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, u)
				c.Close()
			}()
			go func() {
				defer wg.Done()
				defer u.Close()
				chunk := make([]byte, 32<<10)
				interval := time.Duration(float64(time.Second) * float64(len(chunk)) / float64(bytesPerSecond))
				for {
					n, err := c.Read(chunk)
					if n > 0 {
						if _, werr := u.Write(chunk[:n]); werr != nil {
							return
						}
						p.sent.Add(int64(n))
						time.Sleep(interval * time.Duration(n) / time.Duration(len(chunk)))
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

// TestRestoreIntoAnotherCluster restores into a server that lacks the source's roles: pg_restore
// fails, the one-transaction restore leaves the target empty, and --no-owner gets it through.
func TestRestoreIntoAnotherCluster(t *testing.T) {
	t.Parallel()
	source := stack.StartPostgres(t, "18")
	target := stack.StartPostgres(t, "18")
	env := append([]string{"PG_BIN_DIR=" + source.BinDir}, newSigner(t).env()...)
	loc := "file://" + t.TempDir()
	k := newKey(t)
	source.Exec(t, "postgres", `CREATE ROLE acme_owner`)
	src := source.CreateDatabase(t, "app")
	source.Exec(t, "app", `CREATE TABLE orders (id int PRIMARY KEY, item text);
		INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 500) g;
		ALTER TABLE orders OWNER TO acme_owner`)
	mustAgent(t, env, "backup", "--dsn", src, "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--recipient", k.recipient)

	dst := target.CreateDatabase(t, "app")
	failAgent(t, env, `pg_restore failed, nothing was restored (it runs as one transaction): pg_restore: error: could not execute query: ERROR: role "acme_owner" does not exist`,
		"restore", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", "latest", "--identity-file", k.identityFile, "--dsn", dst)
	if n := tableCount(t, target, "app"); n != 0 {
		t.Fatalf("a failed restore left %d tables", n)
	}
	mustAgent(t, env, "restore", "--storage", loc, "--tenant", "acme", "--schedule", "daily", "--backup", "latest",
		"--identity-file", k.identityFile, "--dsn", dst, "--no-owner")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	var sum string
	if err := conn.QueryRow(ctx, `SELECT count(*), md5(string_agg(item, ',' ORDER BY id)) FROM orders`).Scan(&n, &sum); err != nil {
		t.Fatal(err)
	}
	var want string
	sconn, err := pgx.Connect(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer sconn.Close(ctx)
	if err := sconn.QueryRow(ctx, `SELECT md5(string_agg(item, ',' ORDER BY id)) FROM orders`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if n != 500 || sum != want {
		t.Fatalf("restored orders: %d rows, digest %s; want 500 and %s", n, sum, want)
	}
}

package builders

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/backup/pgcluster"
	"github.com/tenantops/tenant-operator/test/stack"
)

// databasePod is a real PostgreSQL set up as the database pod sets it up: the pod's pg_hba.conf,
// the superuser reached by peer authentication as the operating system user postgres, and the
// maintenance sidecar's setup script run with the sidecar's environment from DatabaseStatefulSet.
type databasePod struct {
	cluster  *pgcluster.Cluster
	binDir   string
	secrets  map[string]string // "secret/key" → value
	osUser   *syscall.Credential
	setupEnv []string
}

// startDatabasePod starts a server whose bootstrap superuser is superuser (postgres, as the
// operator's image settings make it now, or app, as an older operator's did) with password.
func startDatabasePod(t *testing.T, major, superuser, password string) *databasePod {
	t.Helper()
	bin := stack.BinDir(t, major)
	if _, err := os.Stat(filepath.Join(bin, "psql")); err != nil {
		t.Fatalf("psql not found in %s: %v", bin, err)
	}
	// The pod's pg_hba.conf, with one change for the test to reach the superuser too: an ident
	// map that lets the test's own user in as postgres beside the postgres user itself, which is
	// who runs the sidecar's script here as in the pod (uid 999 is postgres there).
	hba := strings.Replace(DatabaseHBA(), "local     all postgres           peer", "local     all postgres           peer map=pod", 1)
	if hba == DatabaseHBA() {
		t.Fatal("the pod's pg_hba.conf no longer has the peer line this test maps")
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	ident := "pod postgres postgres\npod " + me.Username + " postgres\n"
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		cred = credentialOf(t, "postgres")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{BinDir: bin, Superuser: superuser, Password: password, HBA: hba, Ident: ident})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	return &databasePod{cluster: c, binDir: bin, osUser: cred, secrets: map[string]string{}}
}

// connect logs in on the socket as user with password (none for postgres: peer).
func (p *databasePod) connect(t *testing.T, user, password, db string) (*pgx.Conn, error) {
	t.Helper()
	cfg, err := pgx.ParseConfig(p.cluster.SocketDSN(user, db))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = password
	return pgx.ConnectConfig(context.Background(), cfg)
}

// mustConnect logs in or fails the test.
func (p *databasePod) mustConnect(t *testing.T, user, password, db string) *pgx.Conn {
	t.Helper()
	conn, err := p.connect(t, user, password, db)
	if err != nil {
		t.Fatalf("log in as %s to %s: %v", user, db, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// runSetup runs the maintenance sidecar's DATABASE_SETUP with the environment
// DatabaseStatefulSet gives the sidecar, its Secrets resolved from p.secrets, and the socket
// moved to the test server's.
func (p *databasePod) runSetup(t *testing.T, tenant *v1alpha1.Tenant) string {
	t.Helper()
	sts := typed[appsv1.StatefulSet](t, DatabaseStatefulSet(tenant, testOptions()))
	var sidecar *corev1.Container
	for i, c := range sts.Spec.Template.Spec.Containers {
		if c.Name == maintenanceName {
			sidecar = &sts.Spec.Template.Spec.Containers[i]
		}
	}
	env := []string{"PATH=" + p.binDir + ":/usr/bin:/bin", "LC_ALL=C"}
	var script string
	for _, e := range sidecar.Env {
		value := e.Value
		if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil {
			v, ok := p.secrets[ref.SecretKeyRef.Name+"/"+ref.SecretKeyRef.Key]
			if !ok {
				if ref.SecretKeyRef.Optional != nil && *ref.SecretKeyRef.Optional {
					continue
				}
				t.Fatalf("the sidecar needs secret %s key %s", ref.SecretKeyRef.Name, ref.SecretKeyRef.Key)
			}
			value = v
		}
		switch e.Name {
		case "PGHOST":
			value = p.cluster.SocketDir
		case "PGPORT":
			value = strconv.Itoa(p.cluster.Port)
		case "DATABASE_SETUP":
			script = value
		}
		env = append(env, e.Name+"="+value)
	}
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = env
	cmd.Dir = "/"
	if p.osUser != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.osUser}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("the sidecar's setup failed: %v\n%s", err, out.String())
	}
	return out.String()
}

func credentialOf(t *testing.T, name string) *syscall.Credential {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
}

func randomPassword(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// setProbe gives the pod a probe verifier, as the controller would, and returns the password.
func (p *databasePod) setProbe(t *testing.T, tenant *v1alpha1.Tenant) string {
	t.Helper()
	password := randomPassword(t)
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		t.Fatal(err)
	}
	verifier, err := ScramSHA256Verifier(password, salt)
	if err != nil {
		t.Fatal(err)
	}
	p.secrets[DatabaseProbeSecretName(tenant)+"/"+ProbeSecretKeyVerifier] = verifier
	return password
}

func sqlCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// expectRefused runs each statement and wants it refused with the SQLSTATE given.
func expectRefused(t *testing.T, conn *pgx.Conn, who string, cases map[string]string) {
	t.Helper()
	for sql, code := range cases {
		_, err := conn.Exec(context.Background(), sql)
		if got := sqlCode(err); got != code {
			t.Errorf("%s: %s: %v (SQLSTATE %q), want SQLSTATE %s", who, sql, err, got, code)
		}
	}
}

// TestTenantUserIsNotSuperuser runs the database pod's setup, as the sidecar runs it, on a new
// database of each supported major and checks what the tenant's user, the probe role and the
// superuser can do: app owns its database and creates tables there, and can do nothing outside
// it; the probe logs in and runs SELECT 1 and reads nothing; the superuser has no password.
func TestTenantUserIsNotSuperuser(t *testing.T) {
	for _, major := range []string{"15", "18"} {
		t.Run("postgres-"+major, func(t *testing.T) {
			t.Parallel()
			tenant := minimal()
			// As the image initializes it: superuser postgres with a random password, database app.
			pod := startDatabasePod(t, major, "postgres", randomPassword(t))
			admin := pod.mustConnect(t, "postgres", "", "postgres")
			if _, err := admin.Exec(context.Background(), "CREATE DATABASE app"); err != nil {
				t.Fatal(err)
			}
			appPassword := randomPassword(t)
			pod.secrets[DatabaseSecretName(tenant)+"/"+SecretKeyPassword] = appPassword
			pod.secrets[DatabaseSecretName(tenant)+"/"+SecretKeyDatabase] = "app"
			pod.secrets[DatabaseBackupSecretName(tenant)+"/"+BackupSecretKeyPassword] = randomPassword(t)
			probePassword := pod.setProbe(t, tenant)
			pod.runSetup(t, tenant)
			pod.runSetup(t, tenant) // every start of the sidecar runs it again

			app := pod.mustConnect(t, "app", appPassword, "app")
			if _, err := app.Exec(context.Background(), `CREATE TABLE orders (id serial PRIMARY KEY, secret text);
				INSERT INTO orders (secret) VALUES ('the tenant''s data'); CREATE SCHEMA shop; CREATE TABLE shop.items (id int)`); err != nil {
				t.Fatalf("app cannot use its own database: %v", err)
			}
			expectRefused(t, app, "app", map[string]string{
				"CREATE ROLE intruder":                   "42501",
				"CREATE DATABASE another":                "42501",
				"ALTER ROLE app SUPERUSER":               "42501",
				"ALTER ROLE app CREATEROLE":              "42501",
				"ALTER ROLE app BYPASSRLS":               "42501",
				"SET ROLE postgres":                      "42501",
				"SET SESSION AUTHORIZATION postgres":     "42501",
				"GRANT pg_read_server_files TO app":      "42501",
				"GRANT pg_execute_server_program TO app": "42501",
				"GRANT postgres TO app":                  "42501",
				"SELECT pg_read_file('/etc/passwd')":     "42501",
				"SELECT pg_ls_dir('.')":                  "42501",
				"COPY orders (secret) FROM PROGRAM 'id'": "42501",
				"COPY (SELECT 1) TO PROGRAM 'id'":        "42501",
				"COPY orders TO '/tmp/tenantops-stolen'": "42501",
				"SELECT lo_import('/etc/passwd')":        "42501",
				"CREATE FUNCTION sys(cstring) RETURNS int LANGUAGE c AS 'libc.so.6', 'system'":    "42501",
				"ALTER SYSTEM SET work_mem = '1GB'":                                               "42501",
				"SELECT current_setting('data_directory')":                                        "42501",
				"CREATE EVENT TRIGGER spy ON ddl_command_start EXECUTE FUNCTION pg_catalog.now()": "42501",
			})
			var attrs string
			if err := admin.QueryRow(context.Background(), `SELECT format('%s %s %s %s %s %s', rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls,
				(SELECT count(*) FROM pg_auth_members WHERE member = r.oid)) FROM pg_roles r WHERE rolname = 'app'`).Scan(&attrs); err != nil {
				t.Fatal(err)
			}
			if attrs != "f f f f f 0" {
				t.Errorf("app's superuser, createrole, createdb, replication, bypassrls, memberships = %s", attrs)
			}
			var owner string
			if err := admin.QueryRow(context.Background(), `SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app'`).Scan(&owner); err != nil || owner != "app" {
				t.Errorf("database app owned by %q (%v), want app", owner, err)
			}

			// The probe logs in, runs SELECT 1, and reads and writes nothing of the tenant's.
			probe := pod.mustConnect(t, ProbeRoleName, probePassword, ProbeDatabase)
			var one int
			if err := probe.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
				t.Errorf("the probe's SELECT 1: %d, %v", one, err)
			}
			expectRefused(t, probe, "probe", map[string]string{
				"SELECT * FROM orders":               "42501",
				"SELECT * FROM shop.items":           "42501",
				"CREATE TABLE public.x (id int)":     "25006", // read-only by role default, and no CREATE on public either
				"SET ROLE app":                       "42501",
				"SELECT pg_read_file('/etc/passwd')": "42501",
			})
			if _, err := pod.connect(t, ProbeRoleName, "wrong-"+probePassword, ProbeDatabase); sqlCode(err) != "28P01" {
				t.Errorf("the probe with a wrong password: %v", err)
			}
			if _, err := pod.connect(t, "app", probePassword, "app"); sqlCode(err) != "28P01" {
				t.Errorf("app with the probe's password: %v", err)
			}
			if err := probe.QueryRow(context.Background(), "SELECT has_schema_privilege('public', 'CREATE')::int").Scan(&one); err != nil || one != 0 {
				t.Errorf("the probe may create in schema public: %d %v", one, err)
			}

			// The superuser has no password left: the only way in is peer, on the pod's socket.
			var pw *string
			if err := admin.QueryRow(context.Background(), "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'").Scan(&pw); err != nil || pw != nil {
				t.Errorf("postgres has a password (%v)", err)
			}
			if os.Geteuid() == 0 {
				// Any other operating system user is refused, with or without a password. (In the
				// pod, every container reaches the socket; here nobody is let into its directory.)
				for _, dir := range []string{pod.cluster.Dir, pod.cluster.SocketDir} {
					if err := os.Chmod(dir, 0o711); err != nil {
						t.Fatal(err)
					}
				}
				psql := exec.Command(filepath.Join(pod.binDir, "psql"), "-X", "-h", pod.cluster.SocketDir, "-p", strconv.Itoa(pod.cluster.Port),
					"-U", "postgres", "-d", "postgres", "-c", "SELECT 1")
				psql.Env = []string{"PGPASSWORD=" + appPassword}
				psql.Dir = "/"
				psql.SysProcAttr = &syscall.SysProcAttr{Credential: credentialOf(t, "nobody")}
				if out, err := psql.CombinedOutput(); err == nil || !strings.Contains(string(out), "Peer authentication failed") {
					t.Errorf("another OS user logging in as postgres: %v\n%s", err, out)
				}
			}
		})
	}
}

// TestOlderDatabaseIsMigrated runs the setup on a database as an older operator left it, whose
// superuser was the tenant's app, and in which that tenant planted what a superuser can: another
// superuser, privileged memberships, an event trigger that would run as whoever runs DDL, a
// SECURITY DEFINER function, settings for the server. After the setup app is an ordinary owner of
// the same objects with the same password, and none of the plants keep their power.
func TestOlderDatabaseIsMigrated(t *testing.T) {
	for _, major := range []string{"15", "18"} {
		t.Run("postgres-"+major, func(t *testing.T) {
			t.Parallel()
			tenant := minimal()
			appPassword := randomPassword(t)
			pod := startDatabasePod(t, major, "app", appPassword)
			ctx := context.Background()
			old := pod.mustConnect(t, "app", appPassword, "postgres")
			if _, err := old.Exec(ctx, "CREATE DATABASE app"); err != nil {
				t.Fatal(err)
			}
			plants := `
				CREATE ROLE evil LOGIN SUPERUSER PASSWORD 'evil';
				CREATE ROLE reader LOGIN PASSWORD 'reader';
				GRANT pg_execute_server_program, pg_read_server_files TO reader;
				CREATE ROLE heir LOGIN PASSWORD 'heir';
				GRANT app TO heir;`
			if _, err := old.Exec(ctx, plants); err != nil {
				t.Fatal(err)
			}
			if _, err := old.Exec(ctx, `ALTER SYSTEM SET work_mem = '77MB'`); err != nil {
				t.Fatal(err)
			}
			oldApp := pod.mustConnect(t, "app", appPassword, "app")
			objects := `
				CREATE SCHEMA shop;
				CREATE TYPE shop.mood AS ENUM ('ok', 'happy');
				CREATE DOMAIN shop.positive AS int CHECK (VALUE > 0);
				CREATE TYPE shop.pair AS (a int, b int);
				CREATE TABLE shop.customers (id serial PRIMARY KEY, name text, mood shop.mood, n shop.positive);
				CREATE TABLE shop.events (id bigint GENERATED ALWAYS AS IDENTITY, at date) PARTITION BY RANGE (at);
				CREATE TABLE shop.events_2026 PARTITION OF shop.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
				INSERT INTO shop.customers (name, mood, n) SELECT 'c' || g, 'ok', g FROM generate_series(1, 10) g;
				CREATE SEQUENCE shop.counter;
				CREATE VIEW shop.recent AS SELECT * FROM shop.customers WHERE id > 5;
				CREATE MATERIALIZED VIEW shop.totals AS SELECT count(*) AS n FROM shop.customers;
				CREATE FUNCTION shop.greet(text) RETURNS text LANGUAGE sql AS $$ SELECT 'hi ' || $1 $$;
				CREATE AGGREGATE shop.total(int) (SFUNC = int4pl, STYPE = int);
				CREATE TABLE public.notes (id int);
				SELECT lo_from_bytea(0, 'large');
				CREATE FUNCTION public.backdoor() RETURNS text LANGUAGE sql SECURITY DEFINER AS $$ SELECT pg_read_file('/etc/hostname') $$;
				GRANT EXECUTE ON FUNCTION public.backdoor() TO PUBLIC;`
			if _, err := oldApp.Exec(ctx, objects); err != nil {
				t.Fatal(err)
			}
			if major >= "17" {
				// A login trigger fires for everyone who connects, the operator's sidecar too.
				if _, err := oldApp.Exec(ctx, `
					CREATE FUNCTION public.on_login() RETURNS event_trigger LANGUAGE plpgsql AS $$
					BEGIN IF current_user = 'postgres' THEN RAISE EXCEPTION 'tenant code ran at login as %', current_user; END IF; END $$;
					CREATE EVENT TRIGGER on_login ON login EXECUTE FUNCTION public.on_login()`); err != nil {
					t.Fatal(err)
				}
			}
			// Last, since it fires on every DDL command from then on, whoever runs it.
			if _, err := oldApp.Exec(ctx, `
				CREATE FUNCTION public.tripwire() RETURNS event_trigger LANGUAGE plpgsql AS $$
				BEGIN RAISE EXCEPTION 'tenant code ran as %', current_user; END $$;
				CREATE EVENT TRIGGER tripwire ON ddl_command_start EXECUTE FUNCTION public.tripwire()`); err != nil {
				t.Fatal(err)
			}
			old.Close(ctx)
			oldApp.Close(ctx)

			pod.secrets[DatabaseSecretName(tenant)+"/"+SecretKeyPassword] = appPassword
			pod.secrets[DatabaseSecretName(tenant)+"/"+SecretKeyDatabase] = "app"
			pod.secrets[DatabaseBackupSecretName(tenant)+"/"+BackupSecretKeyPassword] = randomPassword(t)
			probePassword := pod.setProbe(t, tenant)
			out := pod.runSetup(t, tenant)
			if strings.Contains(out, "tenant code ran") {
				t.Errorf("a trigger the tenant planted ran in the operator's session:\n%s", out)
			}
			pod.runSetup(t, tenant)

			// app: the same password, an ordinary role that owns what it owned.
			app := pod.mustConnect(t, "app", appPassword, "app")
			var super bool
			if err := app.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil || super {
				t.Fatalf("app after the migration: superuser %v (%v)", super, err)
			}
			if _, err := app.Exec(ctx, `INSERT INTO shop.customers (name, mood, n) VALUES ('new', 'happy', 3);
				REFRESH MATERIALIZED VIEW shop.totals; ALTER TABLE shop.customers ADD COLUMN email text;
				SELECT nextval('shop.counter'); SELECT shop.total(n) FROM shop.customers; SELECT shop.greet('x');
				INSERT INTO shop.events (at) VALUES ('2026-05-01'); SELECT lo_get(oid) FROM pg_largeobject_metadata;
				DROP VIEW shop.recent; CREATE TABLE shop.more (id int); ALTER TYPE shop.mood ADD VALUE 'sad'`); err != nil {
				t.Fatalf("app cannot use what it owned before the migration: %v", err)
			}
			var notOwned string
			if err := app.QueryRow(ctx, `SELECT coalesce(string_agg(x, ', '), '') FROM (
				SELECT c.oid::regclass::text AS x FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				  WHERE n.nspname IN ('shop', 'public') AND c.relkind IN ('r','p','v','m','S') AND pg_get_userbyid(c.relowner) <> 'app'
				UNION ALL SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
				  WHERE n.nspname IN ('shop', 'public') AND pg_get_userbyid(p.proowner) <> 'app'
				UNION ALL SELECT t.oid::regtype::text FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
				  WHERE n.nspname = 'shop' AND t.typtype IN ('e','d','c') AND pg_get_userbyid(t.typowner) <> 'app'
				UNION ALL SELECT 'schema shop' FROM pg_namespace WHERE nspname = 'shop' AND pg_get_userbyid(nspowner) <> 'app'
				UNION ALL SELECT 'large object ' || oid FROM pg_largeobject_metadata WHERE pg_get_userbyid(lomowner) <> 'app'
				UNION ALL SELECT 'database app' FROM pg_database WHERE datname = 'app' AND pg_get_userbyid(datdba) <> 'app') o`).Scan(&notOwned); err != nil {
				t.Fatal(err)
			}
			if notOwned != "" {
				t.Errorf("not owned by app after the migration: %s", notOwned)
			}
			expectRefused(t, app, "app", map[string]string{
				"SELECT public.backdoor()":            "42501",
				"CREATE ROLE intruder":                "42501",
				"SELECT pg_read_file('/etc/passwd')":  "42501",
				"COPY (SELECT 1) TO PROGRAM 'id'":     "42501",
				"SET ROLE tenantops_former_superuser": "42501",
				"ALTER EVENT TRIGGER tripwire ENABLE": "42501",
			})

			admin := pod.mustConnect(t, "postgres", "", "app")
			var state string
			if err := admin.QueryRow(ctx, `SELECT format('%s|%s|%s|%s|%s|%s|%s',
				(SELECT rolname || ' login=' || rolcanlogin || ' password=' || (rolpassword IS NOT NULL) FROM pg_authid WHERE oid = 10),
				(SELECT rolsuper FROM pg_roles WHERE rolname = 'evil'),
				(SELECT count(*) FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member WHERE m.rolname IN ('reader', 'heir', 'app')),
				(SELECT string_agg(evtname || '=' || evtenabled::text, ',' ORDER BY evtname) FROM pg_event_trigger),
				(SELECT count(*) FROM pg_file_settings WHERE name = 'work_mem' AND setting = '77MB'),
				(SELECT rolcanlogin FROM pg_roles WHERE rolname = 'tenantops_probe'),
				(SELECT count(*) FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member JOIN pg_roles g ON g.oid = a.roleid
				  WHERE m.rolname = 'tenantops_backup' AND g.rolname = 'pg_read_all_data'))`).Scan(&state); err != nil {
				t.Fatal(err)
			}
			wantTriggers := "tripwire=D"
			if major >= "17" {
				wantTriggers = "on_login=D,tripwire=D"
			}
			if want := "tenantops_former_superuser login=false password=false|f|0|" + wantTriggers + "|0|t|1"; state != want {
				t.Errorf("after the migration: %s\nwant                 %s", state, want)
			}
			for _, who := range []struct{ user, password string }{{"evil", "evil"}, {"tenantops_former_superuser", appPassword}} {
				conn, err := pod.connect(t, who.user, who.password, "app")
				if err == nil {
					var s bool
					_ = conn.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&s)
					conn.Close(ctx)
					if s {
						t.Errorf("%s still logs in as a superuser", who.user)
					}
				}
			}
			probe := pod.mustConnect(t, ProbeRoleName, probePassword, ProbeDatabase)
			expectRefused(t, probe, "probe", map[string]string{"SELECT * FROM shop.customers": "42501"})
		})
	}
}

// TestScramSHA256Verifier: PostgreSQL takes the verifier as the role's password and the password
// then logs in (TestTenantUserIsNotSuperuser), the verifier is stable for one salt, and unfit
// input is refused.
func TestScramSHA256Verifier(t *testing.T) {
	salt := []byte("0123456789abcdef")
	a, err := ScramSHA256Verifier("8f3a", salt)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ScramSHA256Verifier("8f3a", salt)
	if a != b || !strings.HasPrefix(a, "SCRAM-SHA-256$4096:MDEyMzQ1Njc4OWFiY2RlZg==$") || strings.Contains(a, "8f3a") {
		t.Errorf("verifier %q", a)
	}
	if _, err := ScramSHA256Verifier("pässword", salt); err == nil {
		t.Error("a non-ASCII password was taken")
	}
	if _, err := ScramSHA256Verifier("x", salt[:8]); err == nil {
		t.Error("a short salt was taken")
	}
}

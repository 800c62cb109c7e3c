// Package pgcluster finds PostgreSQL's programs and runs throwaway clusters with them: the scratch
// server of a restore drill, and the servers that tests start.
//
// A cluster lives in one temporary directory (data, socket, log) that Stop removes. PostgreSQL
// refuses to run as root, so when we are root the server runs as an unprivileged user (postgres by
// default) who owns that directory; in a pod we already run as non-root and nothing changes.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// EnvBinDir names the environment variable that points at PostgreSQL's bin directory.
const EnvBinDir = "PG_BIN_DIR"

// Find returns the path of a PostgreSQL program: in binDir when given, else in $PG_BIN_DIR, else
// in Debian's directory for the wanted major (when wantMajor > 0 and it exists), else on PATH.
func Find(binDir string, wantMajor int, name string) (string, error) {
	if binDir == "" {
		binDir = os.Getenv(EnvBinDir)
	}
	if binDir != "" {
		p := filepath.Join(binDir, name)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s not found in %s: %w", name, binDir, err)
		}
		return p, nil
	}
	if wantMajor > 0 {
		p := filepath.Join("/usr/lib/postgresql", strconv.Itoa(wantMajor), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found on PATH; set --pg-bin-dir or %s to PostgreSQL's bin directory", name, EnvBinDir)
	}
	return p, nil
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

// Version runs `program --version` and returns the full version and the major number.
func Version(ctx context.Context, program string) (string, int, error) {
	out, err := exec.CommandContext(ctx, program, "--version").Output()
	if err != nil {
		return "", 0, fmt.Errorf("%s --version: %w", program, err)
	}
	m := versionRE.FindStringSubmatch(string(out))
	if m == nil {
		return "", 0, fmt.Errorf("%s --version: unexpected output %q", program, strings.TrimSpace(string(out)))
	}
	major, _ := strconv.Atoi(m[1])
	v := m[1]
	if m[2] != "" {
		v += "." + m[2]
	}
	return v, major, nil
}

// Options describe a cluster to start.
type Options struct {
	// BinDir holds initdb and postgres (see Find for the fallbacks when empty).
	BinDir string
	// ParentDir is where the cluster's temporary directory is made; empty means os.TempDir().
	ParentDir string
	// Port is the TCP port on 127.0.0.1; 0 means no TCP listener at all, only a Unix socket in the
	// cluster's own directory.
	Port int
	// Password for the superuser "postgres"; empty means trust authentication, which is only
	// offered without TCP, where the socket directory's permissions keep others out.
	Password string
	// RunAs is the user the server runs as when we are root; empty means "postgres".
	RunAs string
	// Superuser names the bootstrap superuser initdb creates; empty means "postgres".
	Superuser string
	// HBA, when set, replaces the pg_hba.conf initdb writes (trust, or scram-sha-256 with a
	// password), and with it the checks above: the caller answers for who may connect. Tests use it
	// to run a server with the database pod's own pg_hba.conf.
	HBA string
	// Ident, when set, is written as pg_ident.conf, for an HBA that maps users.
	Ident string
	// Config is appended to postgresql.conf after this package's own settings.
	Config string
	// Env is added to the server's environment, which is otherwise only PATH, the locale and the
	// time zone: what commands the server runs (archive_command) need.
	Env []string
}

// Cluster is a running throwaway PostgreSQL.
type Cluster struct {
	Dir       string // the temporary directory holding everything
	DataDir   string
	SocketDir string
	Port      int // TCP port, or the number in the socket's name when there is no TCP
	Password  string
	Major     int
	Version   string
	// Superuser is the bootstrap superuser's name.
	Superuser string

	tcp      bool // whether the server listens on 127.0.0.1:Port
	extraEnv []string
	server   *exec.Cmd
	exited   chan struct{}
	cred     *syscall.Credential
	uid      int
	gid      int
}

// DefaultSuperuser is the name of the cluster's superuser unless Options.Superuser names another.
const DefaultSuperuser = "postgres"

// Start runs initdb in a new temporary directory and starts the server, waiting until it accepts
// connections. On failure the directory is removed and the error quotes the server's log.
func Start(ctx context.Context, o Options) (_ *Cluster, err error) {
	if o.Port == 0 && o.Password != "" && o.HBA == "" {
		return nil, errors.New("pgcluster: a password needs a TCP port")
	}
	if o.Port != 0 && o.Password == "" && o.HBA == "" {
		return nil, errors.New("pgcluster: a TCP listener needs a password")
	}
	initdb, err := Find(o.BinDir, 0, "initdb")
	if err != nil {
		return nil, err
	}
	binDir := filepath.Dir(initdb)
	// The unprivileged user may not be able to follow the path we were given (a symlink inside a
	// checkout under /root, say) even though it can reach where it leads.
	if real, err := filepath.EvalSymlinks(binDir); err == nil {
		binDir = real
		initdb = filepath.Join(binDir, "initdb")
	}
	c := &Cluster{Port: o.Port, Password: o.Password, Superuser: o.Superuser, tcp: o.Port != 0, extraEnv: o.Env, uid: -1, gid: -1}
	if c.Superuser == "" {
		c.Superuser = DefaultSuperuser
	}
	if c.Version, c.Major, err = Version(ctx, filepath.Join(binDir, "postgres")); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		name := o.RunAs
		if name == "" {
			name = "postgres"
		}
		u, err := user.Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("running as root, and PostgreSQL refuses root: need the unprivileged user %q to run it (%v); create it or run as non-root", name, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.uid, c.gid = uid, gid
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}

	parent := o.ParentDir
	if parent == "" {
		parent = os.TempDir()
	}
	// A short name: the socket path must fit in 107 bytes.
	c.Dir, err = os.MkdirTemp(parent, "pgc-")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: temporary directory: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(c.Dir)
		}
	}()
	c.DataDir = filepath.Join(c.Dir, "data")
	c.SocketDir = filepath.Join(c.Dir, "run")
	if err := os.Mkdir(c.SocketDir, 0o700); err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	if c.cred != nil {
		if err := chownTree(c.Dir, c.uid, c.gid); err != nil {
			return nil, fmt.Errorf("pgcluster: hand %s to the postgres user: %w", c.Dir, err)
		}
		if err := c.probe(ctx, filepath.Join(binDir, "postgres")); err != nil {
			return nil, err
		}
	}

	args := []string{"-D", c.DataDir, "-U", c.Superuser, "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"}
	if o.Password != "" {
		pwfile := filepath.Join(c.Dir, "pwfile")
		if err := c.writeOwned(pwfile, []byte(o.Password+"\n")); err != nil {
			return nil, err
		}
		defer os.Remove(pwfile)
		args = append(args, "-A", "scram-sha-256", "--pwfile", pwfile)
	} else {
		args = append(args, "-A", "trust")
	}
	if out, err := c.run(ctx, initdb, args...); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", c.explain(err, binDir), lastLines(out, 5))
	}
	for name, content := range map[string]string{"pg_hba.conf": o.HBA, "pg_ident.conf": o.Ident} {
		if content == "" {
			continue
		}
		if err := c.writeOwned(filepath.Join(c.DataDir, name), []byte(content)); err != nil {
			return nil, err
		}
	}

	port := o.Port
	listen := "''"
	if port == 0 {
		port = 5432 // only names the socket file, which lives in our own directory
	} else {
		listen = "'127.0.0.1'"
	}
	c.Port = port
	// A throwaway cluster: durability settings off, since its data dies with it.
	conf := fmt.Sprintf("\n# pgcluster\nlisten_addresses = %s\nport = %d\nunix_socket_directories = '%s'\n"+
		"fsync = off\nfull_page_writes = off\nsynchronous_commit = off\nmax_connections = 30\n"+
		"logging_collector = off\n", listen, port, c.SocketDir) + o.Config + "\n"
	f, err := os.OpenFile(filepath.Join(c.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	_, werr := f.WriteString(conf)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("pgcluster: write postgresql.conf: %w", werr)
	}

	if err := c.startServer(ctx, filepath.Join(binDir, "postgres")); err != nil {
		return nil, err
	}
	return c, nil
}

// startServer runs postgres as our child rather than through pg_ctl's daemon, so that the kernel
// stops it (parent-death signal) if this process dies before calling Stop: a killed agent or test
// leaves no server behind.
func (c *Cluster) startServer(ctx context.Context, postgres string) error {
	logFile, err := os.Create(c.LogFile())
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	defer logFile.Close()
	cmd := exec.Command(postgres, "-D", c.DataDir)
	cmd.Env = append(c.env(), c.extraEnv...)
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// SIGQUIT is PostgreSQL's immediate shutdown.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", c.explain(err, filepath.Dir(postgres)))
	}
	c.server = cmd
	c.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(c.exited) }()

	// postmaster.pid's eighth line reads "ready" once connections are accepted (what pg_ctl -w
	// waits for).
	pidFile := filepath.Join(c.DataDir, "postmaster.pid")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if data, err := os.ReadFile(pidFile); err == nil {
			lines := strings.Split(string(data), "\n")
			if len(lines) >= 8 && strings.TrimSpace(lines[7]) == "ready" {
				return nil
			}
		}
		select {
		case <-c.exited:
			log, _ := os.ReadFile(c.LogFile())
			return fmt.Errorf("postgres exited at start: %s", lastLines(log, 5))
		case <-ctx.Done():
			c.kill()
			return fmt.Errorf("postgres start: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.kill()
			log, _ := os.ReadFile(c.LogFile())
			return fmt.Errorf("postgres not ready after 60s: %s", lastLines(log, 5))
		}
	}
}

func (c *Cluster) kill() {
	if c.server == nil {
		return
	}
	_ = c.server.Process.Signal(syscall.SIGQUIT)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		_ = c.server.Process.Kill()
		<-c.exited
	}
}

// DSN returns a libpq URL for database db as the superuser: over TCP when the cluster listens
// there, else over its Unix socket. The password is included, so never print it.
func (c *Cluster) DSN(db string) string {
	u := url.URL{Scheme: "postgres", Path: "/" + db}
	q := url.Values{"sslmode": {"disable"}}
	if c.Password != "" && c.tcp {
		u.User = url.UserPassword(c.Superuser, c.Password)
		u.Host = fmt.Sprintf("127.0.0.1:%d", c.Port)
	} else {
		u.User = url.User(c.Superuser)
		q.Set("host", c.SocketDir)
		q.Set("port", strconv.Itoa(c.Port))
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// SocketDSN returns a libpq URL for database db as user over the cluster's Unix socket, with no
// password: for a role that the cluster's pg_hba.conf lets in on the socket without one, or whose
// password the caller passes separately.
func (c *Cluster) SocketDSN(user, db string) string {
	u := url.URL{Scheme: "postgres", User: url.User(user), Path: "/" + db}
	u.RawQuery = url.Values{"sslmode": {"disable"}, "host": {c.SocketDir}, "port": {strconv.Itoa(c.Port)}}.Encode()
	return u.String()
}

// Running tells whether the server process is still there.
func (c *Cluster) Running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return c.server != nil
	}
}

// LogFile is the server's log, for failure messages.
func (c *Cluster) LogFile() string { return filepath.Join(c.Dir, "server.log") }

// Stop shuts the server down without waiting for clients (its data is disposable) and removes the
// cluster's directory.
func (c *Cluster) Stop() error {
	c.kill()
	if err := os.RemoveAll(c.Dir); err != nil {
		return fmt.Errorf("pgcluster: remove %s: %w", c.Dir, err)
	}
	return nil
}

// run executes a PostgreSQL program as the cluster's user, with no PG* variables of ours leaking
// into it (PGPORT, PGDATA and friends would change what it does).
func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = c.env()
	cmd.Dir = c.Dir
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.Bytes(), err
}

func (c *Cluster) env() []string { return baseEnv() }

// baseEnv is the environment PostgreSQL's programs get: a plain PATH and locale, the time zone.
func baseEnv() []string {
	env := []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "LANG=C"}
	if tz := os.Getenv("TZ"); tz != "" {
		env = append(env, "TZ="+tz)
	}
	return env
}

// probe checks, before anything else runs as the unprivileged user, that it can both run
// PostgreSQL's programs and enter the cluster's directory, and says which one it cannot: exec
// reports either as the same "permission denied".
func (c *Cluster) probe(ctx context.Context, postgres string) error {
	try := func(dir string) error {
		cmd := exec.CommandContext(ctx, postgres, "--version")
		cmd.Dir = dir
		cmd.Env = c.env()
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
		return cmd.Run()
	}
	if err := try("/"); err != nil {
		return fmt.Errorf("pgcluster: the server must run as uid %d (PostgreSQL refuses root), who cannot run %s: %w; its directories must be readable by that user", c.uid, postgres, err)
	}
	if err := try(c.Dir); err != nil {
		return fmt.Errorf("pgcluster: the server must run as uid %d (PostgreSQL refuses root), who cannot enter %s: %w; choose a scratch directory whose parents that user can search, such as /tmp", c.uid, c.Dir, err)
	}
	return nil
}

func (c *Cluster) explain(err error, binDir string) error {
	if c.cred != nil && errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w (running as uid %d for %s)", err, c.uid, binDir)
	}
	return err
}

func (c *Cluster) writeOwned(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if c.cred != nil {
		if err := os.Chown(path, c.uid, c.gid); err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
	}
	return nil
}

func chownTree(root string, uid, gid int) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

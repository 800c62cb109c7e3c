package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DataDirOptions describe a server to run on a data directory that exists already (a restored
// one), which, unlike a Cluster's, outlives the server.
type DataDirOptions struct {
	// BinDir holds postgres (see Find for the fallbacks when empty).
	BinDir  string
	DataDir string
	// RunDir holds the socket, the server's log and the pg_hba.conf it is given; it must be short
	// (the socket path fits in 107 bytes) and is the caller's to remove.
	RunDir string
	// Settings are passed as -c NAME=VALUE, over whatever the data directory's configuration says.
	Settings map[string]string
	// Env is the server's environment beyond PATH and the locale: what the commands it runs
	// (restore_command) need.
	Env []string
	// RunAs is the user the server runs as when we are root; empty means "postgres". The data
	// directory and RunDir must be that user's.
	RunAs string
}

// Server is a running PostgreSQL on an existing data directory, reachable only over a Unix socket
// in RunDir with trust authentication: the data directory's own pg_hba.conf and listen addresses
// are overridden, so nobody else can connect while it is checked.
type Server struct {
	DataDir, RunDir string
	cmd             *exec.Cmd
	exited          chan struct{}
}

// UserOf is the uid and gid a server runs as when we are root (RunAs, "postgres" when empty); ok
// is false when we are not root and nothing changes owner.
func UserOf(runAs string) (uid, gid int, ok bool, err error) {
	if os.Geteuid() != 0 {
		return 0, 0, false, nil
	}
	if runAs == "" {
		runAs = DefaultSuperuser
	}
	u, err := user.Lookup(runAs)
	if err != nil {
		return 0, 0, false, fmt.Errorf("running as root, and PostgreSQL refuses root: need the unprivileged user %q to run it (%v)", runAs, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, true, nil
}

// Chown hands a tree to the server's user when we are root.
func Chown(root, runAs string) error {
	uid, gid, ok, err := UserOf(runAs)
	if err != nil || !ok {
		return err
	}
	return chownTree(root, uid, gid)
}

// StartDataDir starts postgres on o.DataDir and returns at once; WaitAccepting waits until it
// accepts connections. The server is our child and stops if we die (parent-death signal).
func StartDataDir(ctx context.Context, o DataDirOptions) (*Server, error) {
	postgres, err := Find(o.BinDir, 0, "postgres")
	if err != nil {
		return nil, err
	}
	if real, err := filepath.EvalSymlinks(postgres); err == nil {
		postgres = real
	}
	hba := filepath.Join(o.RunDir, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte("local all all trust\n"), 0o600); err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	if err := Chown(o.RunDir, o.RunAs); err != nil {
		return nil, fmt.Errorf("pgcluster: hand %s to the server's user: %w", o.RunDir, err)
	}
	settings := map[string]string{
		"listen_addresses": "", "unix_socket_directories": o.RunDir, "port": "5432", "hba_file": hba,
		"ssl": "off", "logging_collector": "off", "log_destination": "stderr",
	}
	for k, v := range o.Settings {
		settings[k] = v
	}
	args := []string{"-D", o.DataDir}
	for k, v := range settings {
		args = append(args, "-c", k+"="+v)
	}
	log, err := os.Create(filepath.Join(o.RunDir, "server.log"))
	if err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	defer log.Close()
	cmd := exec.Command(postgres, args...)
	cmd.Env = append(baseEnv(), o.Env...)
	cmd.Dir = o.RunDir
	cmd.Stdout, cmd.Stderr = log, log
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	if uid, gid, ok, err := UserOf(o.RunAs); err != nil {
		return nil, err
	} else if ok {
		attr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s := &Server{DataDir: o.DataDir, RunDir: o.RunDir, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.exited) }()
	return s, nil
}

// ErrServerExited means the server stopped before it was ready; its log says why.
var ErrServerExited = errors.New("postgres exited")

// WaitAccepting waits until the server accepts connections (postmaster.pid says "ready", or
// "standby" for a server in recovery that is consistent), however long that takes, or until it
// exits (ErrServerExited) or ctx ends. progress, when set, is called every interval.
func (s *Server) WaitAccepting(ctx context.Context, interval time.Duration, progress func()) error {
	pidFile := filepath.Join(s.DataDir, "postmaster.pid")
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := time.Now()
	for {
		if data, err := os.ReadFile(pidFile); err == nil {
			lines := strings.Split(string(data), "\n")
			if len(lines) >= 8 && (strings.TrimSpace(lines[7]) == "ready" || strings.TrimSpace(lines[7]) == "standby") {
				return nil
			}
		}
		select {
		case <-s.exited:
			return ErrServerExited
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if progress != nil && time.Since(last) >= interval {
			progress()
			last = time.Now()
		}
	}
}

// Exited is closed once the server process is gone.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// LogFile is the server's log.
func (s *Server) LogFile() string { return filepath.Join(s.RunDir, "server.log") }

// LogTail is the end of the server's log, for messages.
func (s *Server) LogTail(n int) string {
	data, _ := os.ReadFile(s.LogFile())
	return lastLines(data, n)
}

// DSN is a libpq URL for database db as user over the server's socket.
func (s *Server) DSN(user, db string) string {
	u := url.URL{Scheme: "postgres", User: url.User(user), Path: "/" + db}
	u.RawQuery = url.Values{"sslmode": {"disable"}, "host": {s.RunDir}, "port": {"5432"}}.Encode()
	return u.String()
}

// Shutdown stops the server with a fast shutdown (SIGINT: sessions end, a checkpoint is written,
// the data directory is left clean) and waits for it.
func (s *Server) Shutdown(ctx context.Context) error {
	select {
	case <-s.exited:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
		return nil
	case <-ctx.Done():
		_ = s.cmd.Process.Signal(syscall.SIGQUIT)
		<-s.exited
		return fmt.Errorf("postgres did not shut down cleanly: %w", ctx.Err())
	}
}

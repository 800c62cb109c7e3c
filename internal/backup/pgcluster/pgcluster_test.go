package pgcluster_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantops/tenant-operator/internal/backup/pgcluster"
	"github.com/tenantops/tenant-operator/test/stack"
)

// TestScratchCluster is the verify drill's server: Unix socket only, its own directory, not root,
// and gone after Stop.
func TestScratchCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{BinDir: stack.BinDir(t, "15")})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = c.Stop()
		}
	}()
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatalf("connect over the socket: %v", err)
	}
	var listen string
	var pid int
	if err := conn.QueryRow(ctx, "SELECT current_setting('listen_addresses'), pg_backend_pid()").Scan(&listen, &pid); err != nil {
		t.Fatal(err)
	}
	// The backend exits with its connection: read what user it runs as while it is there.
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if listen != "" {
		t.Fatalf("listen_addresses = %q, want no TCP listener", listen)
	}
	fi, err := os.Stat(c.SocketDir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory %s: %v, mode %v; want 0700", c.SocketDir, err, fi.Mode().Perm())
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "Uid:") && strings.Fields(line)[1] == "0" {
			t.Fatal("the server runs as root")
		}
	}

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Fatalf("%s still exists after Stop (%v)", c.Dir, err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !os.IsNotExist(err) {
		t.Fatalf("backend %d still running after Stop", pid)
	}
}

// TestUnreachableScratchDir: as root, a scratch directory the postgres user cannot enter is named
// as the problem.
func TestUnreachableScratchDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root hands the server to another user")
	}
	_, err := pgcluster.Start(context.Background(), pgcluster.Options{BinDir: stack.BinDir(t, "15"), ParentDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "cannot enter") {
		t.Fatalf("Start in a root-only directory: %v", err)
	}
}

func TestStartRefusesUnsafeOptions(t *testing.T) {
	ctx := context.Background()
	if _, err := pgcluster.Start(ctx, pgcluster.Options{Port: 5432}); err == nil || !strings.Contains(err.Error(), "needs a password") {
		t.Fatalf("TCP without a password: %v", err)
	}
	if _, err := pgcluster.Start(ctx, pgcluster.Options{Password: "x"}); err == nil || !strings.Contains(err.Error(), "needs a TCP port") {
		t.Fatalf("a password without TCP: %v", err)
	}
}

func TestVersion(t *testing.T) {
	v, major, err := pgcluster.Version(context.Background(), stack.BinDir(t, "18")+"/pg_dump")
	if err != nil || major != 18 || !strings.HasPrefix(v, "18.") {
		t.Fatalf("Version = %q, %d, %v", v, major, err)
	}
}

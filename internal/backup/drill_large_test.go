package backup_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/test/stack"
)

// TestDrillOfA2GiBDatabase restores a database of about 2 GiB through the two-process drill, as
// the verification job does, and reports how long it took and the peak memory of the agent and
// the restorer, which must not grow with the database: the drill's data is on the scratch
// directory (in the job, a volume sized for the database), not in any process's memory. It takes
// minutes, so it runs only with TENANTOPS_LARGE_DRILL=1 (the size in GiB may follow: =4).
func TestDrillOfA2GiBDatabase(t *testing.T) {
	gib := 0
	switch v := os.Getenv("TENANTOPS_LARGE_DRILL"); v {
	case "":
		t.Skip("set TENANTOPS_LARGE_DRILL=1 to restore a 2 GiB database (minutes)")
	case "1":
		gib = 2
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TENANTOPS_LARGE_DRILL=%q: want 1 or a size in GiB", v)
		}
		gib = n
	}
	pg := stack.StartPostgres(t, "15")
	dsn := pg.CreateDatabase(t, "app")
	// Rows of about 1 KiB, below the size PostgreSQL would compress, so the heap is as large as
	// the data: about 1 million rows per GiB.
	start := time.Now()
	pg.Exec(t, "app", `CREATE TABLE big (id bigint PRIMARY KEY, payload text);
		INSERT INTO big SELECT g, repeat(md5(g::text), 31) FROM generate_series(1, `+strconv.Itoa(gib*1_000_000)+`) g;
		CREATE TABLE small (id int); INSERT INTO small SELECT generate_series(1, 1000)`)
	size := queryInt(t, pg, "app", "SELECT pg_database_size('app')")
	t.Logf("source database: %.2f GiB, filled in %s", float64(size)/(1<<30), time.Since(start).Round(time.Second))

	k := newKey(t)
	loc := "file://" + sharedDir(t)
	env := []string{"PG_BIN_DIR=" + pg.BinDir}
	start = time.Now()
	mustAgent(t, env, "backup", "--dsn", dsn, "--storage", loc, "--tenant", "big", "--schedule", "daily", "--recipient", k.recipient)
	t.Logf("backup: %s", time.Since(start).Round(time.Second))

	restorer := startRestorerProcess(t, pg.BinDir)
	start = time.Now()
	cmd := agentCmd(nil, "verify", "--storage", loc, "--tenant", "big", "--schedule", "daily", "--backup", "latest",
		"--identity-file", k.identityFile, "--drill-socket", restorer.socket)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	scratchPeak := watchDiskUse(restorer.scratch)
	err := cmd.Wait()
	elapsed := time.Since(start)
	agentPeak := peakRSSOf(cmd.ProcessState)
	restorerPeak := vmHWM(restorer.cmd.Process.Pid)
	if err != nil || !strings.Contains(stdout.String(), "restore drill ok") {
		t.Fatalf("drill of %d GiB: %v\n%s%s\n%s", gib, err, stdout.String(), stderr.String(), restorer.stop(t))
	}
	log := restorer.stop(t)
	scratchUsed := scratchPeak()
	t.Logf("drill: %s; peak RSS: agent %d MiB, restorer %d MiB; peak scratch use %.2f GiB\n%s%s", elapsed.Round(time.Second),
		agentPeak>>20, restorerPeak>>20, float64(scratchUsed)/(1<<30), stdout.String(), log)
	// The verification pod's scratch volume for a database volume that holds this database.
	tenant := &v1alpha1.Tenant{Spec: v1alpha1.TenantSpec{Database: v1alpha1.DatabaseSpec{Storage: v1alpha1.DatabaseStorage{
		Size: *resource.NewQuantity(size, resource.BinarySI)}}}}
	if limit := builders.ScratchSize(tenant); scratchUsed == 0 || scratchUsed > limit.Value() {
		t.Errorf("the drill used %d bytes of scratch space; the pod's volume for this database is %s", scratchUsed, limit.String())
	}
	if agentPeak > 256<<20 || restorerPeak > 256<<20 || restorerPeak == 0 {
		t.Errorf("memory grew with the database (or was not measured): agent %d MiB, restorer %d MiB", agentPeak>>20, restorerPeak>>20)
	}
}

func queryInt(t *testing.T, pg *stack.Postgres, db, sql string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(queryString(t, pg, db, "SELECT ("+sql+")::text"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// peakRSSOf is a finished process's peak resident memory.
func peakRSSOf(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss << 10
	}
	return 0
}

// watchDiskUse samples the bytes used under dir every half second until asked for the peak.
func watchDiskUse(dir string) func() int64 {
	var mu sync.Mutex
	var peak int64
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			var used int64
			_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					if fi, err := d.Info(); err == nil {
						used += fi.Size()
					}
				}
				return nil
			})
			mu.Lock()
			peak = max(peak, used)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	return func() int64 {
		close(done)
		<-stopped
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// vmHWM is a running process's peak resident memory.
func vmHWM(pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

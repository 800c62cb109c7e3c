package backup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/tenantops/tenant-operator/internal/backup/pgcluster"
	"github.com/tenantops/tenant-operator/internal/catalog"
)

// IntoDatabase is where RestorePointInTimeInto puts the recovered database: an existing database
// reached over the network, as an ordinary role. A tenant's server cannot take a data directory
// from a running pod, so a point in time reaches a live tenant (a new one, or the same one in
// place) as a logical copy out of a scratch server that recovered to it.
type IntoDatabase struct {
	// DSN of the target database, which must exist; the password may come from PGPASSWORD.
	DSN string
	// Force restores into a database that already holds objects, replacing those the copy holds.
	Force bool
	// NoOwner skips ownership and grants: the objects belong to the role of DSN.
	NoOwner bool
	// ScratchDir holds the scratch data directory while the copy runs; it is removed after.
	ScratchDir string
}

// PointInTimeCopy says what RestorePointInTimeInto did.
type PointInTimeCopy struct {
	PointInTimeResult
	// Target is the target database as checked after the copy: its tables and rows equal the
	// recovered database's.
	TargetTables []catalog.TableRows
	Copied       time.Duration
}

// RestorePointInTimeInto recovers the tenant's cluster to o.Target in a scratch data directory
// (RestorePointInTime, with every check it makes), copies the backed-up database from it into the
// target database in one transaction (pg_dump | pg_restore --single-transaction: a failure leaves
// the target as it was), compares every table's rows with the recovered server's, and removes the
// scratch directory. o.DataDir is ignored.
func RestorePointInTimeInto(ctx context.Context, o PointInTimeOptions, into IntoDatabase) (PointInTimeCopy, error) {
	var out PointInTimeCopy
	ci, err := parseConnInfo(into.DSN)
	if err != nil {
		return out, err
	}
	// Refuse a target that is not empty before the long part, not after it.
	targetMajor, err := checkTarget(ctx, ci, into.Force)
	if err != nil {
		return out, err
	}
	scratch, err := os.MkdirTemp(into.ScratchDir, "pitr-")
	if err != nil {
		return out, fmt.Errorf("scratch directory: %w", err)
	}
	defer os.RemoveAll(scratch)
	// Run as root, the server is another user, who must reach its data directory in here.
	if err := pgcluster.Chown(scratch, o.RunAs); err != nil {
		return out, fmt.Errorf("scratch directory: %w", err)
	}
	o.DataDir = scratch + "/pgdata"
	o.NoStart = false
	o.AfterRecovery = func(ctx context.Context, srv *pgcluster.Server, res *PointInTimeResult) error {
		last := res.Chain[len(res.Chain)-1]
		major := max(targetMajor, last.PostgresMajor)
		pgDump, err := pgcluster.Find(o.PgBinDir, major, "pg_dump")
		if err != nil {
			return err
		}
		pgRestore, err := pgcluster.Find(o.PgBinDir, major, "pg_restore")
		if err != nil {
			return err
		}
		start := time.Now()
		logf(o.Log, "restore: copying database %s into %s", res.Database, ci.Redacted())
		if err := copyDatabase(ctx, pgDump, srv.DSN(superuserOf(last), res.Database), pgRestore, ci, into); err != nil {
			return err
		}
		out.Copied = time.Since(start)
		got, los, err := targetTables(ctx, ci)
		if err != nil {
			return fmt.Errorf("count the restored target: %s", ci.scrub(err.Error()))
		}
		out.TargetTables = got
		if problems := compareCounts(catalog.Manifest{Tables: res.Tables, LargeObjects: res.LargeObjects}, got, los); len(problems) > 0 {
			msgs := make([]string, len(problems))
			for i, p := range problems {
				msgs[i] = p.summary
			}
			return fmt.Errorf("the target differs from the recovered database: %s", summary(msgs))
		}
		logf(o.Log, "restore: copied in %s; the target's %d tables have the recovered rows", out.Copied.Round(time.Millisecond), len(got))
		return nil
	}
	res, err := RestorePointInTime(ctx, o)
	out.PointInTimeResult = res
	return out, err
}

// copyDatabase pipes pg_dump of the recovered database into pg_restore of the target, as one
// transaction. The dump is the custom format (pg_restore needs it for --clean), uncompressed: it
// crosses a pipe, not a network.
func copyDatabase(ctx context.Context, pgDump, sourceDSN, pgRestore string, target connInfo, into IntoDatabase) error {
	dumpCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	dump := exec.CommandContext(dumpCtx, pgDump, "--format=custom", "--compress=0", "--no-password", "--dbname="+sourceDSN)
	dump.Env = serverEnv()
	dumpErr := newTailBuffer(16 << 10)
	dump.Stderr = dumpErr
	stdout, err := dump.StdoutPipe()
	if err != nil {
		return fmt.Errorf("pg_dump: %w", err)
	}
	if err := dump.Start(); err != nil {
		return fmt.Errorf("start pg_dump: %w", err)
	}
	args := []string{"--dbname=" + target.noSecret, "--no-password", "--single-transaction", "--exit-on-error"}
	if into.Force {
		args = append(args, "--clean", "--if-exists")
	}
	if into.NoOwner {
		args = append(args, "--no-owner", "--no-privileges")
	}
	// pg_restore must not commit what a failed pg_dump cut short: hold its input's last byte back
	// until pg_dump has exited 0.
	input := &dumpThenCheck{r: stdout, wait: dump.Wait}
	run := runPgRestore(ctx, pgRestore, args, target.env(os.Environ()), &holdLastByte{br: bufio.NewReaderSize(input, 64<<10)})
	if run.readErr != nil {
		return fmt.Errorf("pg_dump of the recovered database failed, nothing was restored: %s", stderrOr(dumpErr, run.readErr))
	}
	if run.waitErr != nil {
		return fmt.Errorf("pg_restore failed, nothing was restored (it runs as one transaction): %s", target.scrub(stderrOr(run.stderr, run.waitErr)))
	}
	if run.writeErr != nil {
		return fmt.Errorf("feed pg_restore: %w", run.writeErr)
	}
	return nil
}

// dumpThenCheck reads pg_dump's output; at its end, it waits for pg_dump and turns a failed exit
// into a read error, so that the stream ends in an error instead of a clean EOF.
type dumpThenCheck struct {
	r    io.Reader
	wait func() error
	done bool
}

func (d *dumpThenCheck) Read(p []byte) (int, error) {
	if d.done {
		// Wait closed the pipe: its end was read.
		return 0, io.EOF
	}
	n, err := d.r.Read(p)
	if errors.Is(err, io.EOF) && !d.done {
		d.done = true
		if werr := d.wait(); werr != nil {
			return n, fmt.Errorf("pg_dump: %w", werr)
		}
	}
	return n, err
}

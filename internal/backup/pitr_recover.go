package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantops/tenant-operator/internal/backup/pgcluster"
	"github.com/tenantops/tenant-operator/internal/catalog"
)

// recoveryMarker starts the settings a restore appends to postgresql.auto.conf.
const recoveryMarker = "# tenant-operator restore:"

// recoverySettings are what a restore sets, and removes once recovered (archive_mode stays off).
var recoverySettings = []string{"restore_command", "recovery_target_time", "recovery_target_lsn", "recovery_target_inclusive", "recovery_target_action", "recovery_target_timeline"}

// restoreCommand is the restore_command line: this agent's wal-restore with the storage, tenant,
// cluster, identity and trust of the restore. Storage credentials are not in it; they come from
// the server's environment.
//
// With a prefetch spool, a segment found there is moved into place by mv, a rename within pg_wal,
// before the agent is run at all: starting the agent's large binary costs tens of milliseconds
// a segment (measured 70 ms on a busy 2-core machine, against about 10 ms for sh and mv), which
// recovery waits for every time. Only a file that is not spooled runs wal-restore, which looks in
// the spool again, tells the prefetcher where recovery is, and fetches the file.
func restoreCommand(agent string, o PointInTimeOptions, systemID, identityFile, spool string) string {
	args := []string{agent, "wal-restore", "--storage", o.Location, "--tenant", o.Tenant, "--system-id", systemID, "--identity-file", identityFile}
	if spool != "" {
		args = append(args, "--spool", spool)
	}
	for _, k := range o.Trust.Keys {
		args = append(args, "--signing-public-key", catalog.FormatPublicKey(k))
	}
	if o.Trust.AllowUnsigned {
		args = append(args, "--allow-unsigned")
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		// PostgreSQL replaces %f and %p in the command; a literal % is %%. The shell then reads it.
		quoted[i] = shellQuote(strings.ReplaceAll(a, "%", "%%"))
	}
	command := strings.Join(quoted, " ") + " %f %p"
	if spool != "" {
		// %f is a WAL file name (PostgreSQL's own, letters and digits) and %p pg_wal/RECOVERYXLOG;
		// the spool path is relative to the data directory, where restore_command runs.
		command = "mv -f " + shellQuote(strings.ReplaceAll(spool, "%", "%%")+"/") + "%f %p 2>/dev/null || " + command
	}
	return command
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// confQuote is a value in postgresql.conf's syntax, whose quoted strings take backslash escapes.
func confQuote(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", "''") + "'"
}

// writeRecoverySettings appends the recovery settings to postgresql.auto.conf (replacing those a
// previous attempt appended) and creates recovery.signal.
func writeRecoverySettings(dataDir, command string, t Target, backupID string) error {
	auto := filepath.Join(dataDir, "postgresql.auto.conf")
	data, err := os.ReadFile(auto)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("recovery settings: %w", err)
	}
	text := string(data)
	if i := strings.Index(text, recoveryMarker); i >= 0 {
		text = text[:i]
	}
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s recover backup %s to %s; removed once recovered\n", recoveryMarker, backupID, t)
	fmt.Fprintf(&b, "restore_command = %s\n", confQuote(command))
	switch {
	case !t.Time.IsZero():
		fmt.Fprintf(&b, "recovery_target_time = %s\n", confQuote(t.Time.UTC().Format("2006-01-02 15:04:05.999999")+"+00"))
	case !t.Latest:
		// Replay stops before the first record that starts at or after the LSN, so the result is
		// the state as of that position: an LSN read with pg_current_wal_lsn() after a commit
		// (or pg_current_wal_insert_lsn() with synchronous_commit off) gives that commit and nothing later. PostgreSQL's default (inclusive) would also replay
		// the next record, which may be another transaction's commit.
		fmt.Fprintf(&b, "recovery_target_lsn = %s\nrecovery_target_inclusive = 'off'\n", confQuote(t.LSN.String()))
	}
	b.WriteString("recovery_target_action = 'promote'\nrecovery_target_timeline = 'latest'\n")
	b.WriteString("# a restored copy does not write into the tenant's WAL archive until told to\narchive_mode = 'off'\n")
	if err := os.WriteFile(auto, []byte(text+b.String()), 0o600); err != nil {
		return fmt.Errorf("recovery settings: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "recovery.signal"), nil, 0o600); err != nil {
		return fmt.Errorf("recovery settings: %w", err)
	}
	return nil
}

// recoverAndCheck runs the server on the restored data directory until it has recovered to the
// target, checks the result and shuts it down cleanly.
func recoverAndCheck(ctx context.Context, o PointInTimeOptions, agent string, last catalog.Backup, plan []catalog.WALName, res *PointInTimeResult) error {
	runDir, err := os.MkdirTemp("", "pitr-") // short: the socket lives here
	if err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	defer os.RemoveAll(runDir)
	if err := os.Chmod(runDir, 0o700); err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	identity := o.IdentityFile
	if _, _, root, err := pgcluster.UserOf(o.RunAs); err != nil {
		return err
	} else if root {
		// The server, and the restore_command it runs, are another user, who may not read the
		// caller's file: a copy of theirs, removed with the run directory.
		identity = filepath.Join(runDir, "identity")
		data, err := os.ReadFile(o.IdentityFile)
		if err != nil {
			return fmt.Errorf("read identity file: %w", err)
		}
		if err := os.WriteFile(identity, data, 0o600); err != nil {
			return fmt.Errorf("identity for the server: %w", err)
		}
	}
	spool := ""
	if o.WALPrefetchBytes >= 0 && len(plan) > 0 {
		spool = walSpoolDir
	}
	res.RestoreCommand = restoreCommand(agent, o, last.Physical.SystemID, identity, spool)
	target := o.Target
	for attempt := 0; ; attempt++ {
		if err := writeRecoverySettings(o.DataDir, res.RestoreCommand, target, last.ID); err != nil {
			return err
		}
		if err := pgcluster.Chown(o.DataDir, o.RunAs); err != nil {
			return fmt.Errorf("hand the data directory to the server's user: %w", err)
		}
		err := runRecovery(ctx, o, runDir, last, target, spool, plan, res)
		var short *targetNotReachedError
		if errors.As(err, &short) && attempt == 0 && !target.Latest {
			// Nothing after the target is archived (no later commit for a time, no later record
			// for an LSN), while the archive holds all WAL up to the target
			// (choosePointInTimeBase made sure): the end of the archive is the same state.
			logf(o.Log, "restore: nothing after %s is archived; recovering to the end of the archive, which is the same state", target)
			target, res.ToEnd = Target{Latest: true}, true
			continue
		}
		return err
	}
}

// targetNotReachedError is the server's "recovery ended before configured recovery target was
// reached".
type targetNotReachedError struct{ log string }

func (e *targetNotReachedError) Error() string {
	return "recovery ended before the target was reached: " + e.log
}

// runRecovery starts the server, waits until it has recovered and promoted, checks and cleans up.
// With a spool, segments of plan are prefetched into it while the server recovers.
func runRecovery(ctx context.Context, o PointInTimeOptions, runDir string, last catalog.Backup, target Target, spool string, plan []catalog.WALName, res *PointInTimeResult) error {
	binDir := o.PgBinDir
	if binDir == "" {
		postgres, err := pgcluster.Find("", last.PostgresMajor, "postgres")
		if err != nil {
			return err
		}
		binDir = filepath.Dir(postgres)
	}
	start := time.Now()
	stopPrefetch := func() {}
	if spool != "" {
		var err error
		if stopPrefetch, err = startWALPrefetch(ctx, o, last, plan, spool); err != nil {
			return err
		}
		// Also on every early return: no fetch outlives the recovery, and the spool goes.
		defer stopPrefetch()
	}
	srv, err := pgcluster.StartDataDir(ctx, pgcluster.DataDirOptions{BinDir: binDir, DataDir: o.DataDir, RunDir: runDir, RunAs: o.RunAs, Env: serverEnv()})
	if err != nil {
		return err
	}
	stop := func() error {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		return srv.Shutdown(sctx)
	}
	progress := func() { logf(o.Log, "restore: still recovering after %s", time.Since(start).Round(time.Second)) }
	err = srv.WaitAccepting(ctx, 30*time.Second, progress)
	if err == nil {
		err = waitPromoted(ctx, srv, last, 30*time.Second, progress)
	}
	// Promoted, the server asks for no more WAL: what is left in the spool was fetched past
	// the target.
	stopPrefetch()
	if errors.Is(err, pgcluster.ErrServerExited) {
		tail := srv.LogTail(5)
		if logHas(srv.LogFile(), "recovery ended before configured recovery target was reached") {
			return &targetNotReachedError{log: tail}
		}
		return fmt.Errorf("the restored server stopped during recovery: %s", tail)
	}
	if err != nil {
		_ = stop()
		return fmt.Errorf("recovery: %w", err)
	}
	logf(o.Log, "restore: recovered and promoted in %s", time.Since(start).Round(time.Millisecond))
	if err := checkRecovered(ctx, o, srv, last, target, res); err != nil {
		_ = stop()
		return err
	}
	scanLines(srv.LogFile(), func(line string) {
		_, msg, ok := strings.Cut(line, "LOG:")
		if ok && (strings.Contains(msg, "recovery stopping") || (res.StopLine == "" && strings.Contains(msg, "last completed transaction"))) {
			res.StopLine = strings.TrimSpace(msg)
		}
	})
	if o.AfterRecovery != nil {
		if err := o.AfterRecovery(ctx, srv, res); err != nil {
			_ = stop()
			return err
		}
	}
	if err := stop(); err != nil {
		return err
	}
	res.Recovered = true
	return nil
}

// waitPromoted waits until the server has left recovery, asking it every fraction of a second: a
// server in recovery accepts connections once it is consistent, and promotes when it reaches the
// target.
func waitPromoted(ctx context.Context, srv *pgcluster.Server, last catalog.Backup, interval time.Duration, progress func()) error {
	lastProgress := time.Now()
	for {
		var inRecovery bool
		conn, err := pgx.Connect(ctx, srv.DSN(superuserOf(last), last.Database))
		if err == nil {
			err = conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery)
			conn.Close(context.WithoutCancel(ctx))
		}
		if err == nil && !inRecovery {
			return nil
		}
		select {
		case <-srv.Exited():
			return pgcluster.ErrServerExited
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Since(lastProgress) >= interval {
			progress()
			lastProgress = time.Now()
		}
	}
}

func superuserOf(b catalog.Backup) string {
	if b.Physical.Superuser != "" {
		return b.Physical.Superuser
	}
	return pgcluster.DefaultSuperuser
}

// serverEnv is what the restored server passes on to restore_command: this process's
// environment (the storage's credentials), without the PG* variables, which would point
// PostgreSQL's programs, and wal-restore's --pgdata, elsewhere.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

func logHas(path, text string) bool {
	found := false
	scanLines(path, func(line string) { found = found || strings.Contains(line, text) })
	return found
}

// checkRecovered checks the promoted server and records what it shows, then removes the
// recovery settings.
func checkRecovered(ctx context.Context, o PointInTimeOptions, srv *pgcluster.Server, last catalog.Backup, target Target, res *PointInTimeResult) error {
	conn, err := pgx.Connect(ctx, srv.DSN(superuserOf(last), last.Database))
	if err != nil {
		return fmt.Errorf("connect to the restored server: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var inRecovery bool
	var replay string
	var lastXact *time.Time
	if err := conn.QueryRow(ctx, `SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, pg_last_xact_replay_timestamp(),
		(SELECT timeline_id FROM pg_control_checkpoint())`).Scan(&inRecovery, &replay, &lastXact, &res.Timeline); err != nil {
		return fmt.Errorf("inspect the restored server: %w", err)
	}
	if inRecovery {
		return errors.New("the restored server is still in recovery")
	}
	if res.ReplayLSN, err = catalog.ParseLSN(replay); err != nil {
		return fmt.Errorf("inspect the restored server: %w", err)
	}
	if lastXact != nil {
		res.LastTransaction = lastXact.UTC()
	}
	// Reaching an LSN target is the server's own check: it refuses to promote when recovery ends
	// before it (targetNotReachedError), and stops before the first record that starts at or
	// after it. The replay position it reports is the end of the last record replayed, which may
	// cross the target, so it is not compared with it.
	if target.Latest {
		if err := reachedArchiveEnd(ctx, o, res); err != nil {
			return err
		}
	}
	switch {
	case !target.Time.IsZero() && res.LastTransaction.After(target.Time):
		return fmt.Errorf("the restored server replayed a transaction of %s, after the target %s", res.LastTransaction.Format(time.RFC3339Nano), target)
	case res.ReplayLSN < last.Physical.StopLSN:
		return fmt.Errorf("the restored server stopped replay at %s, before its backup was consistent (%s)", res.ReplayLSN, last.Physical.StopLSN)
	}
	if err := replayLedgerAfterRecovery(ctx, o, conn, last, target, res); err != nil {
		return err
	}
	res.Database = last.Database
	if res.Tables, res.LargeObjects, err = tableRows(ctx, conn); err != nil {
		return fmt.Errorf("count the restored rows: %w", err)
	}
	for _, name := range recoverySettings {
		if _, err := conn.Exec(ctx, "ALTER SYSTEM RESET "+name); err != nil {
			return fmt.Errorf("remove the recovery settings: %w", err)
		}
	}
	return nil
}

// reachedArchiveEnd checks that a recovery to the end of the archive got to the last segment the
// archive was seen to hold. Recovery ends wherever restore_command first finds nothing, so a
// segment that went missing meanwhile (pruned, or deleted by hand) would end it early, and the
// restore would be short of data without a word.
func reachedArchiveEnd(ctx context.Context, o PointInTimeOptions, res *PointInTimeResult) error {
	last := res.Reach.LastSegment
	info, err := catalog.ReadWALInfo(ctx, o.Store, o.Tenant, res.Reach.SystemID, last.WALName, o.Trust)
	if err != nil {
		return fmt.Errorf("read the description of the archive's last segment %s: %w", last.Name, err)
	}
	if info.SegmentSize <= 0 {
		return nil // a file that is no segment ends the run; nothing to compare with
	}
	start := catalog.LSN(last.SegNo(info.SegmentSize) * uint64(info.SegmentSize))
	if res.ReplayLSN < start {
		return fmt.Errorf("recovery ended at %s, before the archive's last segment %s (from %s): a segment went missing from the archive during the restore, and the result would be short of data; restore again", res.ReplayLSN, last.Name, start)
	}
	return nil
}

// startWALPrefetch creates the spool in the data directory (the server's user's, as the data
// directory is) and prefetches plan into it (walPrefetcher) until the returned stop is called,
// which waits for the fetches to end and removes the spool; stop may be called more than once.
func startWALPrefetch(ctx context.Context, o PointInTimeOptions, last catalog.Backup, plan []catalog.WALName, spool string) (stop func(), err error) {
	dir := filepath.Join(o.DataDir, spool)
	// A spool left by an earlier attempt on this data directory holds checked segments, but
	// its .requested is stale: start afresh.
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("WAL prefetch spool: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("WAL prefetch spool: %w", err)
	}
	uid, gid, root, err := pgcluster.UserOf(o.RunAs)
	if err != nil {
		return nil, err
	}
	var prepare func(*os.File) error
	if root {
		// wal-restore, run by the server as its user, writes .requested here and moves the
		// segments, which the server then reads.
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, fmt.Errorf("WAL prefetch spool: %w", err)
		}
		prepare = func(f *os.File) error { return f.Chown(uid, gid) }
	}
	bytes := o.WALPrefetchBytes
	if bytes == 0 {
		bytes = DefaultWALPrefetchBytes
	}
	p := &walPrefetcher{
		src:  walSource{Store: o.Store, Tenant: o.Tenant, SystemID: last.Physical.SystemID, Identities: o.Identities, Trust: o.Trust, keys: &keyCache{}},
		plan: plan, dir: dir, ahead: int(max(1, bytes/last.Physical.WALSegmentSize)), workers: walPrefetchWorkers,
		prepare: prepare, poll: 20 * time.Millisecond, log: o.Log,
	}
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan prefetchStats, 1)
	go func() { done <- p.run(pctx) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			st := <-done
			_ = os.RemoveAll(dir)
			logf(o.Log, "restore: WAL prefetch (%d segments ahead): %d fetched, %d taken by recovery, %d dropped, %d failed", p.ahead, st.Fetched, st.Taken, st.Dropped, st.Failed)
		})
	}, nil
}

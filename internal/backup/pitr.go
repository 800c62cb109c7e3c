package backup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/tenantops/tenant-operator/internal/backup/pgcluster"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// Target is where a point-in-time restore stops: a time, an LSN, or the end of the archive.
type Target struct {
	Time   time.Time
	LSN    catalog.LSN
	Latest bool
}

func (t Target) String() string {
	switch {
	case t.Latest:
		return "the end of the archive"
	case !t.Time.IsZero():
		return t.Time.UTC().Format(time.RFC3339Nano)
	}
	return "LSN " + t.LSN.String()
}

// PointInTimeOptions for one point-in-time restore into a new data directory.
type PointInTimeOptions struct {
	Store storage.Store
	// Location is the storage's location string, which restore_command is given.
	Location string
	Tenant   string
	// Schedule limits the base backups to one schedule's; empty takes every schedule's.
	Schedule string
	// Owners, when given, is catalog.WithTenantUIDs: only backups of these Tenant objects.
	Owners     []catalog.ListOption
	Identities []age.Identity
	// IdentityFile is where Identities came from: restore_command reads it.
	IdentityFile string
	// Trust is what base backups and WAL files must be signed by.
	Trust  catalog.Trust
	Target Target
	// DataDir is the new data directory: it must not exist, or be empty.
	DataDir string
	// PgBinDir holds postgres and pg_combinebackup (see pgcluster.Find).
	PgBinDir string
	// Agent is this program, which restore_command runs; empty is os.Executable().
	Agent string
	// RunAs is the user the server runs as, and owns the data directory, when we are root.
	RunAs string
	// NoStart lays out the data directory and its recovery settings and stops there: the caller
	// starts the server (with the storage credentials in its environment), which recovers.
	NoStart bool
	// WALPrefetchBytes bounds the WAL fetched ahead of recovery while this restore runs the
	// server (see walprefetch.go): about this many bytes of segments, at least one, in
	// pg_wal/tenantops-prefetch of the data directory until recovery ends. Zero is
	// DefaultWALPrefetchBytes; negative turns prefetch off (wal-restore fetches each segment as
	// recovery asks for it).
	WALPrefetchBytes int64
	// AfterRecovery, when set, runs while the recovered server is up, after the checks and
	// before the clean shutdown (RestorePointInTimeInto copies the database out here). Its error
	// fails the restore.
	AfterRecovery func(ctx context.Context, srv *pgcluster.Server, res *PointInTimeResult) error
	Log           io.Writer
	// Ledger is the erasure ledger's replay after recovery (see replayLedgerAfterRecovery).
	Ledger PointInTimeLedger
}

// PointInTimeResult says what was restored and what the recovered server showed.
type PointInTimeResult struct {
	// Chain is the base backup restored: a full backup, then its incremental backups in order.
	Chain []catalog.Backup
	// Reach is how far the archive carries it.
	Reach catalog.Reach
	// RestoreCommand is the restore_command written into the data directory's settings.
	RestoreCommand string
	// Recovered says the server was started and recovered (false with NoStart); the rest is
	// what it showed then.
	Recovered bool
	// ToEnd says that recovery replayed the whole archive: asked for, or because no transaction
	// after the target time is archived, when the archive still holds all WAL written before it.
	ToEnd bool
	// Timeline is the new timeline the server promoted to; ReplayLSN where replay stopped;
	// LastTransaction the commit time of the last transaction replayed (zero if none).
	Timeline        uint32
	ReplayLSN       catalog.LSN
	LastTransaction time.Time
	// StopLine is the server's own words on where recovery stopped.
	StopLine string
	// LedgerReplayed counts the erasure requests replayed after promotion; LedgerEntries names
	// them by their ErasureRequest's UID. LedgerIgnored is why the ledger was not replayed
	// (PointInTimeLedger.Ignore), empty when it was.
	LedgerReplayed int
	LedgerEntries  []string
	LedgerIgnored  string
	// Database, Tables and LargeObjects are the backed-up database as restored.
	Database     string
	Tables       []catalog.TableRows
	LargeObjects int64
}

// RestorePointInTime restores a tenant's cluster as it was at o.Target into o.DataDir: the newest
// physical base backup (with its incremental chain, combined by pg_combinebackup) that is
// consistent before the target and from which the archive reaches it, unpacked from storage
// (checked against its signed manifest), with recovery settings whose restore_command is this
// agent's wal-restore. Unless NoStart, it then runs the server until it has recovered to the
// target and promoted, checks that (not in recovery, where replay stopped, the last transaction,
// the database's tables and rows), removes the recovery settings and shuts the server down
// cleanly: the data directory is ready to be started as a server of its own, on a new timeline.
// WAL archiving is off in it (archive_mode), so that a copy never writes into the tenant's archive
// unless told to.
func RestorePointInTime(ctx context.Context, o PointInTimeOptions) (PointInTimeResult, error) {
	var res PointInTimeResult
	if len(o.Identities) == 0 || o.IdentityFile == "" {
		return res, errors.New("no identity: pass --identity-file")
	}
	chain, reach, plan, err := choosePointInTimeBase(ctx, o)
	if err != nil {
		return res, err
	}
	res.Chain, res.Reach = chain, reach
	last := chain[len(chain)-1]
	// Each backup of a chain may be encrypted to another tenant data key (a rotation between
	// them), opened through its own escrow copy.
	ids := make(map[string][]age.Identity, len(chain))
	for _, b := range chain {
		if ids[b.ID], err = identitiesFor(ctx, o.Store, b.Manifest, o.Identities); err != nil {
			return res, fmt.Errorf("backup %s: %w", b.ID, err)
		}
	}
	logf(o.Log, "restore: %s from backup %s (consistent at %s, %s; %d in its chain), WAL up to %s on timeline %d",
		o.Target, last.ID, last.Physical.StopLSN, last.Physical.StopTime.Format(time.RFC3339), len(chain), reach.ToLSN, reach.Timeline)

	if err := emptyDir(o.DataDir); err != nil {
		return res, err
	}
	done := false
	defer func() {
		if !done {
			// Half a data directory must not be taken for a restored one.
			clearDir(o.DataDir)
		}
	}()
	if err := restoreChain(ctx, o, chain, ids); err != nil {
		return res, err
	}
	agent := o.Agent
	if agent == "" {
		if agent, err = os.Executable(); err != nil {
			return res, fmt.Errorf("find this program for restore_command: %w", err)
		}
	}
	if o.NoStart {
		res.RestoreCommand = restoreCommand(agent, o, last.Physical.SystemID, o.IdentityFile, "")
		if err := writeRecoverySettings(o.DataDir, res.RestoreCommand, o.Target, last.ID); err != nil {
			return res, err
		}
		if err := pgcluster.Chown(o.DataDir, o.RunAs); err != nil {
			return res, fmt.Errorf("hand the data directory to the server's user: %w", err)
		}
		done = true
		return res, nil
	}
	if err := recoverAndCheck(ctx, o, agent, last, plan, &res); err != nil {
		return res, err
	}
	done = true
	return res, nil
}

// choosePointInTimeBase lists the tenant's physical backups and WAL, and picks the newest base
// backup from which the archive reaches the target; plan is the segments recovery from it will
// ask for (catalog.RecoverySegments).
func choosePointInTimeBase(ctx context.Context, o PointInTimeOptions) (chain []catalog.Backup, reach catalog.Reach, plan []catalog.WALName, err error) {
	listed, err := catalog.List(ctx, o.Store, o.Tenant, o.Schedule, append(o.Owners, catalog.WithTrust(o.Trust))...)
	if err != nil {
		return nil, catalog.Reach{}, nil, err
	}
	var physical []catalog.Backup
	var entries []catalog.Entry
	for _, b := range listed {
		if b.Physical == nil || !b.Signature.Trusted() {
			continue
		}
		physical = append(physical, b)
		entries = append(entries, catalog.Entry{ID: b.ID, Tenant: b.Tenant, Schedule: b.Schedule, StartedAt: b.StartedAt,
			FinishedAt: b.FinishedAt, Signature: b.Signature, Method: b.MethodOf(), Physical: b.Physical})
	}
	where := "tenant " + o.Tenant
	if o.Schedule != "" {
		where += " schedule " + o.Schedule
	}
	if len(physical) == 0 {
		return nil, catalog.Reach{}, nil, fmt.Errorf("no physical backups of %s whose signature checks (take one with backup --method physical)", where)
	}
	wal, err := catalog.ListWAL(ctx, o.Store, o.Tenant, catalog.WithTrust(o.Trust))
	if err != nil {
		return nil, catalog.Reach{}, nil, err
	}
	reaches := catalog.Reaches(entries, wal)
	if len(reaches) == 0 {
		return nil, catalog.Reach{}, nil, fmt.Errorf("no physical backup of %s can be restored: the WAL archive does not hold the WAL up to any backup's end (is wal-archive the server's archive_command?)", where)
	}
	var chosen *catalog.Reach
	for i, r := range reaches {
		t := o.Target
		switch {
		case t.Latest:
		case !t.Time.IsZero() && r.FromTime.After(t.Time), t.Time.IsZero() && r.FromLSN > t.LSN:
			continue // consistent only after the target
		case !t.Time.IsZero():
			written, err := lastWrittenAt(ctx, o, r)
			if err != nil {
				return nil, catalog.Reach{}, nil, err
			}
			// A commit's time is taken just before its record is written, so a commit of a
			// moment before the last segment was written may still be in the next segment,
			// which is not archived: keep a margin.
			if t.Time.After(written.Add(-commitTimeMargin)) {
				return nil, catalog.Reach{}, nil, fmt.Errorf("the WAL archive of %s holds what was written until %s (segment %s); %s is later: restore --to-latest for all of it, or wait for the next segment to be archived",
					where, written.Format(time.RFC3339Nano), r.LastSegment.Name, t)
			}
		case t.LSN > r.ToLSN:
			return nil, catalog.Reach{}, nil, fmt.Errorf("the WAL archive of %s ends at %s (segment %s); %s is later", where, r.ToLSN, r.LastSegment.Name, t)
		}
		chosen = &reaches[i]
		break
	}
	if chosen == nil {
		oldest := reaches[len(reaches)-1]
		return nil, catalog.Reach{}, nil, fmt.Errorf("%s is before the earliest point the backups of %s reach: backup %s is consistent at %s (%s)",
			o.Target, where, oldest.Backup, oldest.FromTime.Format(time.RFC3339Nano), oldest.FromLSN)
	}
	if chain, err = catalog.Chain(physical, chosen.Schedule, chosen.Backup); err != nil {
		return nil, catalog.Reach{}, nil, err
	}
	for _, f := range catalog.RecoverySegments(chain[len(chain)-1].Physical, wal) {
		plan = append(plan, f.WALName)
	}
	return chain, *chosen, plan, nil
}

// commitTimeMargin is how far before the last archived segment was written a time target must be
// for all of its commits to be in the archive.
const commitTimeMargin = 2 * time.Second

// lastWrittenAt is when the last segment a reach ends with was written (see WALInfo.WrittenAt).
func lastWrittenAt(ctx context.Context, o PointInTimeOptions, r catalog.Reach) (time.Time, error) {
	info, err := catalog.ReadWALInfo(ctx, o.Store, o.Tenant, r.SystemID, r.LastSegment.WALName, o.Trust)
	if err != nil {
		return time.Time{}, err
	}
	return info.WrittenAt, nil
}

// restoreChain unpacks a base backup into o.DataDir: directly for a full one; for an incremental
// one, each backup of the chain beside it, combined by pg_combinebackup.
func restoreChain(ctx context.Context, o PointInTimeOptions, chain []catalog.Backup, ids map[string][]age.Identity) error {
	if len(chain) == 1 {
		return unpackBackup(ctx, o, chain[0], ids[chain[0].ID], o.DataDir)
	}
	var dirs []string
	defer func() {
		for _, d := range dirs {
			_ = os.RemoveAll(d)
		}
	}()
	for _, b := range chain {
		d := o.DataDir + ".tenantops-" + b.ID
		dirs = append(dirs, d)
		if err := emptyDir(d); err != nil {
			return err
		}
		if err := unpackBackup(ctx, o, b, ids[b.ID], d); err != nil {
			return err
		}
	}
	combine, err := pgcluster.Find(o.PgBinDir, chain[0].PostgresMajor, "pg_combinebackup")
	if err != nil {
		return err
	}
	_, major, err := pgcluster.Version(ctx, combine)
	if err != nil {
		return err
	}
	// The inputs are removed afterwards, so the output may take their files by hard link
	// (PostgreSQL 18): no second copy of the cluster on disk.
	args := append([]string{}, dirs...)
	if major >= 18 {
		args = append(args, "--link")
	}
	if err := os.Remove(o.DataDir); err != nil { // pg_combinebackup makes it
		return fmt.Errorf("data directory: %w", err)
	}
	args = append(args, "--output", o.DataDir)
	start := time.Now()
	out, err := exec.CommandContext(ctx, combine, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_combinebackup failed: %s", lastLine(out, err))
	}
	if err := os.Chmod(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	logf(o.Log, "restore: %d backups combined in %s", len(chain), time.Since(start).Round(time.Millisecond))
	return nil
}

// unpackBackup streams one base backup from storage into dir: checksum gate, age, zstd, tar.
// Nothing in dir may be used unless this returns nil: the gate's verdict on the whole object comes
// at its end.
func unpackBackup(ctx context.Context, o PointInTimeOptions, b catalog.Backup, ids []age.Identity, dir string) error {
	start := time.Now()
	key := storage.Join(catalog.Dir(b.Tenant, b.Schedule, b.ID), b.Object.Name)
	a, err := openSealedAhead(ctx, o.Store, b.ID, key, b.Object, b.Recipients, ids)
	if err != nil {
		return err
	}
	defer a.Close()
	// The manifest (signed) says how long the tar is: a stream that decompresses to more is not
	// this backup, and must not fill the disk before the gate says so.
	stream := &cappedReader{r: a, left: b.DumpSize}
	files, size, err := untar(stream, dir)
	if err == nil {
		_, err = io.Copy(io.Discard, stream) // the tar's padding, and the gate's verdict
	}
	if err != nil {
		return fmt.Errorf("restore backup %s: %w", b.ID, a.explain("unpack", err))
	}
	logf(o.Log, "restore: backup %s unpacked, %d files, %s, in %s", b.ID, files, humanBytes(size), time.Since(start).Round(time.Millisecond))
	return nil
}

// cappedReader fails once more than left bytes come through.
type cappedReader struct {
	r    io.Reader
	left int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, errors.New("the backup decompresses to more than its manifest says")
	}
	return n, err
}

// clearDir removes what is inside dir, and dir's siblings a chain was unpacked to.
func clearDir(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

func lastLine(out []byte, err error) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return err.Error()
}

// scanLines calls f on every line of a file.
func scanLines(path string, f func(string)) {
	file, err := os.Open(path)
	if err != nil {
		return
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		f(sc.Text())
	}
}

// Window is what a point-in-time restore of a tenant can reach now.
type Window struct {
	catalog.Window
	// LatestWritten is when PostgreSQL last wrote the window's last archived segment: restore
	// --to-time takes any moment from EarliestTime to this one. Later moments are in WAL that is
	// not archived yet (catalog.Window.LatestTime, when the segment was archived, may be later).
	LatestWritten time.Time
}

// RecoverableWindow lists a tenant's physical backups (of one schedule, or all when schedule is
// empty) and WAL archive, signatures checked against trust, and says from when to when it can be
// restored; ok is false when no backup can be restored to any point.
func RecoverableWindow(ctx context.Context, store storage.Store, tenant, schedule string, owners []catalog.ListOption, trust catalog.Trust) (w Window, ok bool, err error) {
	entries, err := catalog.ListEntries(ctx, store, tenant, schedule, append(owners, catalog.WithTrust(trust))...)
	if err != nil {
		return w, false, err
	}
	wal, err := catalog.ListWAL(ctx, store, tenant, catalog.WithTrust(trust))
	if err != nil {
		return w, false, err
	}
	if w.Window, ok = catalog.RecoverableWindow(entries, wal); !ok {
		return w, false, nil
	}
	n, err := catalog.ParseWALName(w.LastSegment)
	if err != nil {
		return w, false, err
	}
	info, err := catalog.ReadWALInfo(ctx, store, tenant, w.SystemID, n, trust)
	if err != nil {
		return w, false, fmt.Errorf("read the last archived segment's description: %w", err)
	}
	w.LatestWritten = info.WrittenAt
	return w, true, nil
}

package backup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// PhysicalOptions for one physical base backup: Options, and what makes it incremental.
type PhysicalOptions struct {
	Options
	// Incremental takes an incremental backup against the newest physical backup of the same
	// tenant, schedule and cluster, and fails when there is none or the server cannot.
	Incremental bool
	// FullEvery, when set, takes an incremental backup when the full backup its chain starts with
	// is younger than this, and a full one otherwise (or when the server cannot take incremental
	// ones).
	FullEvery time.Duration
	// Identities decrypt the previous backup's backup_manifest, for an incremental backup: those
	// of ManifestRecipients, which cannot read the data.
	Identities []age.Identity
	// ManifestRecipients may read the backup_manifest, besides Recipients: the key the next
	// incremental backup's job holds.
	ManifestRecipients []string
	// Trust checks the previous backup's signature; the signing key's own public key is always
	// trusted.
	Trust catalog.Trust
	// SpreadCheckpoint lets the server spread the checkpoint that starts the backup over
	// checkpoint_completion_target, instead of taking it at once (slower to start, gentler).
	SpreadCheckpoint bool
	// Compression is the base backup's codec, CompressionZstd when empty (codec.go); recorded in
	// the manifest, which restores read it from. The backup_manifest object is always zstd. zstd
	// is the default although S2 takes a third of its CPU: its objects are 1.7 times larger,
	// kept for as long as retention says, and restored more slowly (a larger object to fetch,
	// hash and decrypt), and an agent older than the codec field cannot read S2 at all.
	Compression string
}

// server is what a physical backup learns of the server before it starts.
type server struct {
	version, database, systemID, superuser string
	major                                  int
	segSize                                int64
	archiveMode, summarizeWAL              string
}

const serverQuery = `SELECT current_setting('server_version'), current_setting('server_version_num')::int,
  current_database(), (SELECT system_identifier::text FROM pg_control_system()),
  (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'),
  current_setting('archive_mode'), coalesce(current_setting('summarize_wal', true), 'off'),
  (SELECT rolname FROM pg_roles WHERE oid = 10)`

func inspectServer(ctx context.Context, ci connInfo) (server, error) {
	conn, err := ci.connect(ctx)
	if err != nil {
		return server{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var s server
	var num int
	if err := conn.QueryRow(ctx, serverQuery).Scan(&s.version, &num, &s.database, &s.systemID, &s.segSize, &s.archiveMode, &s.summarizeWAL, &s.superuser); err != nil {
		return server{}, fmt.Errorf("inspect server: %s", ci.scrub(err.Error()))
	}
	s.major = num / 10000
	if i := strings.IndexByte(s.version, ' '); i > 0 {
		s.version = s.version[:i]
	}
	return s, nil
}

// serverNow is the server's clock: what recovery_target_time is compared with.
func serverNow(ctx context.Context, ci connInfo) (time.Time, error) {
	conn, err := ci.connect(ctx)
	if err != nil {
		return time.Time{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var now time.Time
	if err := conn.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("read the server's clock: %s", ci.scrub(err.Error()))
	}
	return now.UTC(), nil
}

// RunPhysical takes a physical base backup: pg_basebackup's tar of the whole cluster (-D - -Ft),
// streamed through zstd (or S2: Compression) and age into storage without touching the local
// disk, its backup_manifest stored beside it for the next incremental backup, then the signed
// manifest.
//
// A full backup is taken with -X none: the WAL it needs comes from the archive, and pg_basebackup
// returns once the server's archiver has marked the backup's last segment done. An incremental
// backup is taken with -X fetch: the server then sends the few segments from the backup's start
// to its end inside the tar (pg_wal/), and does not wait for its archiver, which polls once a
// second: most of an incremental backup that otherwise takes half a second. Such a backup
// holds all the WAL it needs to be consistent, whatever the archive holds yet. The server must
// still have those segments when the backup ends: a checkpoint during a long backup may have
// recycled them (nothing keeps them for a backup but wal_keep_size and the receivers' slots);
// pg_basebackup then fails, and the backup is taken again with -X none.
func RunPhysical(ctx context.Context, o PhysicalOptions) (catalog.Manifest, error) {
	m, err := runPhysical(ctx, o, true)
	if errors.Is(err, errWALRecycled) {
		logf(o.Log, "%v; taking it again with the WAL from the archive (-X none)", err)
		m, err = runPhysical(ctx, o, false)
	}
	return m, err
}

// errWALRecycled is pg_basebackup -X fetch failing because the server no longer had the WAL of
// the backup's start when it ended.
var errWALRecycled = errors.New("the server recycled WAL of the backup's start before its end")

// walRecycled says whether pg_basebackup -X fetch failed for want of the backup's WAL, as the
// server words it (basebackup.c: the segment missing when the server lists pg_wal, or removed
// between listing and sending).
func walRecycled(stderr string) bool {
	for _, s := range []string{"could not find WAL file", "could not find any WAL files", "has already been removed"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

// runPhysical is RunPhysical's one attempt; fetchIncrementalWAL takes an incremental backup's WAL
// in its tar (-X fetch).
func runPhysical(ctx context.Context, o PhysicalOptions, fetchIncrementalWAL bool) (catalog.Manifest, error) {
	for kind, v := range map[string]string{"tenant": o.Tenant, "schedule": o.Schedule} {
		if err := catalog.ValidateName(kind, v); err != nil {
			return catalog.Manifest{}, err
		}
	}
	keys, err := encryptionKeys(o.Recipients, o.DataKey, o.TenantUID)
	if err != nil {
		return catalog.Manifest{}, err
	}
	recipients, fingerprints, err := ParseRecipients(keys)
	if err != nil {
		return catalog.Manifest{}, err
	}
	manifestRecipients, manifestFingerprints, err := ParseRecipients(append(append([]string(nil), keys...), o.ManifestRecipients...))
	if err != nil {
		return catalog.Manifest{}, fmt.Errorf("manifest recipients: %w", err)
	}
	ci, err := parseConnInfo(o.DSN)
	if err != nil {
		return catalog.Manifest{}, err
	}
	level := o.ZstdLevel
	if level == 0 {
		level = zstd.SpeedFastest
	}
	codec := o.Compression
	if codec == "" {
		codec = CompressionZstd
	}
	if !slices.Contains(physicalCompressions, codec) {
		return catalog.Manifest{}, fmt.Errorf("compression %q: want one of %s", codec, strings.Join(physicalCompressions, ", "))
	}
	started := o.now().UTC()
	srv, err := inspectServer(ctx, ci)
	if err != nil {
		return catalog.Manifest{}, err
	}
	if srv.archiveMode == "off" {
		return catalog.Manifest{}, errors.New("the server does not archive WAL (archive_mode is off), and a physical backup without its WAL cannot be restored; set archive_mode = on and archive_command = 'tenant-operator wal-archive %p %f'")
	}
	// What does not depend on the parent runs beside finding it, each a round trip or a process:
	// leftovers of killed runs (older than AbandonedAfter, so never this run's) and the version
	// of pg_basebackup.
	var side sync.WaitGroup
	defer side.Wait()
	if o.AbandonedAfter > 0 {
		side.Go(func() { removeLeftovers(ctx, o.Options, started) })
	}
	var pgBasebackup, toolVersion string
	var toolErr error
	side.Go(func() {
		pgBasebackup, toolVersion, toolErr = findClientTool(ctx, o.PgBinDir, "pg_basebackup", srv.major, srv.version)
	})
	parent, err := chooseParent(ctx, o, srv, started)
	if err != nil {
		return catalog.Manifest{}, err
	}
	if parent != nil {
		// Its backup_manifest opens with an identity among its readers, or through the tenant
		// data key's escrow copy with the platform identity.
		if o.Identities, err = identitiesFor(ctx, o.Store, manifestReaders(*parent), o.Identities); err != nil {
			return catalog.Manifest{}, fmt.Errorf("read backup_manifest of %s: %w", parent.ID, err)
		}
	}
	if o.DataKey != nil {
		// Before the backup: a backup whose key is not beside it could be lost with the cluster.
		if err := catalog.WriteDataKey(ctx, o.Store, o.Tenant, o.TenantUID, *o.DataKey); err != nil {
			return catalog.Manifest{}, err
		}
	}
	side.Wait()
	if toolErr != nil {
		return catalog.Manifest{}, toolErr
	}

	id := catalog.NewID(started)
	dir := catalog.Dir(o.Tenant, o.Schedule, id)
	objectName := catalog.BaseObject
	if codec == CompressionS2 {
		objectName = catalog.BaseObjectS2
	}
	dataKey := storage.Join(dir, objectName)
	kind := "full"
	if parent != nil {
		kind = "incremental to " + parent.ID
	}
	logf(o.Log, "backup %s: %s physical backup of PostgreSQL %s (system %s) to %s", id, kind, srv.version, srv.systemID, o.Store)

	walMethod := "none"
	if parent != nil && fetchIncrementalWAL {
		walMethod = "fetch"
	}
	args := []string{"--dbname=" + ci.noSecret, "--no-password", "--pgdata=-", "--format=tar", "--wal-method=" + walMethod,
		"--label=tenant-operator " + id, "--checkpoint=fast"}
	if o.SpreadCheckpoint {
		args[len(args)-1] = "--checkpoint=spread"
	}
	bbCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(bbCtx, pgBasebackup, args...)
	cmd.Env = ci.env(os.Environ())
	stderr := newTailBuffer(16 << 10)
	cmd.Stderr = stderr
	var parentManifest <-chan error
	if parent != nil {
		// The previous backup_manifest goes to pg_basebackup through a pipe, never a file: it is
		// decrypted here, and nothing decrypted touches the disk.
		pr, pw, err := os.Pipe()
		if err != nil {
			return catalog.Manifest{}, fmt.Errorf("pipe: %w", err)
		}
		defer pr.Close()
		cmd.ExtraFiles = []*os.File{pr}
		cmd.Args = append(cmd.Args, "--incremental=/dev/fd/3")
		parentManifest = feedParentManifest(bbCtx, o, *parent, pw)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return catalog.Manifest{}, fmt.Errorf("pg_basebackup: %w", err)
	}
	growPipe(stdout)
	if err := cmd.Start(); err != nil {
		return catalog.Manifest{}, fmt.Errorf("start pg_basebackup: %w", err)
	}
	if len(cmd.ExtraFiles) > 0 {
		cmd.ExtraFiles[0].Close() // the child holds it now
	}

	var manifestSealed bytes.Buffer
	mp, err := newDumpPipeline(nil, &manifestSealed, manifestRecipients, level)
	if err != nil {
		cancel()
		_ = cmd.Wait()
		return catalog.Manifest{}, err
	}
	pr, pw := io.Pipe()
	var pl *dumpPipeline
	var bt baseTar
	produced := make(chan error, 1)
	go func() {
		var err error
		if pl, err = newSealPipeline(stdout, pw, recipients, codec, level); err == nil {
			bt, err = inspectBaseTar(io.TeeReader(pl.dumped, pl.enc), mp.enc)
		}
		if err != nil {
			cancel() // pg_basebackup would block forever on a pipe nobody reads
		}
		waitErr := cmd.Wait()
		var feedErr error
		if parentManifest != nil {
			feedErr = <-parentManifest
		}
		if waitErr != nil && ctx.Err() == nil && errors.Is(feedErr, context.Canceled) {
			// The feed was stopped here because pg_basebackup had failed: its error says why.
			feedErr = nil
		}
		switch {
		case feedErr != nil:
			err = feedErr
		case waitErr != nil && (err == nil || reportsError(stderr)):
			// pg_basebackup failed first; what it says beats the broken stream it left.
			err = fmt.Errorf("pg_basebackup failed: %s", ci.scrub(stderrOr(stderr, waitErr)))
			if walMethod == "fetch" && walRecycled(stderr.String()) {
				err = fmt.Errorf("%w: %w", errWALRecycled, err)
			}
		case err != nil:
			err = fmt.Errorf("compress and upload: %w", err)
		default:
			if err = pl.finish(); err == nil {
				err = mp.finish()
			}
		}
		if err != nil {
			_ = pw.CloseWithError(err)
		} else {
			_ = pw.Close()
		}
		produced <- err
	}()
	size, putErr := o.Store.Put(ctx, dataKey, pr)
	if putErr != nil {
		_ = pr.CloseWithError(putErr)
		cancel()
	}
	prodErr := <-produced
	if err := ctx.Err(); err != nil && (putErr != nil || prodErr != nil) {
		return catalog.Manifest{}, fmt.Errorf("backup %s interrupted (%w); the upload was abandoned and nothing counts as a backup", id, err)
	}
	switch {
	case prodErr != nil && (putErr == nil || errors.Is(putErr, prodErr)):
		_ = o.Store.Delete(context.WithoutCancel(ctx), dataKey)
		return catalog.Manifest{}, fmt.Errorf("backup %s: %w", id, prodErr)
	case putErr != nil:
		return catalog.Manifest{}, fmt.Errorf("backup %s: upload: %w", id, putErr)
	}
	discard := func() { _ = o.Store.Delete(context.WithoutCancel(ctx), dataKey) }
	if size != pl.stored.n {
		discard()
		return catalog.Manifest{}, fmt.Errorf("backup %s: storage took %d bytes but %d were produced", id, size, pl.stored.n)
	}
	m, err := physicalManifest(o, srv, id, started, bt, parent)
	if err != nil {
		discard()
		return catalog.Manifest{}, fmt.Errorf("backup %s: %w", id, err)
	}
	// The backup_manifest is stored while the server's clock is read: two round trips at once.
	manifestKey := storage.Join(dir, catalog.BackupManifestObject)
	var manifestErr error
	var manifestStored sync.WaitGroup
	manifestStored.Go(func() { _, manifestErr = o.Store.Put(ctx, manifestKey, &manifestSealed) })
	m.Physical.StopTime, err = serverNow(ctx, ci)
	manifestStored.Wait()
	switch {
	case err != nil:
		discard()
		if manifestErr == nil {
			_ = o.Store.Delete(context.WithoutCancel(ctx), manifestKey)
		}
		return catalog.Manifest{}, fmt.Errorf("backup %s: %w", id, err)
	case manifestErr != nil:
		discard()
		return catalog.Manifest{}, fmt.Errorf("backup %s: store backup_manifest: %w", id, manifestErr)
	}
	m.Physical.PgBasebackupVersion = toolVersion
	if o.DataKey != nil {
		m.DataKeyID = o.DataKey.ID
	}
	m.Recipients, m.Physical.BackupManifestRecipients = fingerprints, manifestFingerprints
	m.Object = catalog.ObjectInfo{Name: objectName, Size: size, SHA256: hex.EncodeToString(pl.stored.h.Sum(nil)),
		Format: "pg_basebackup-tar", Compression: codec, Encryption: "age"}
	m.DumpSize, m.CompressedSize = pl.dumped.n, pl.compressed.n
	m.Physical.BackupManifest = catalog.ObjectInfo{Name: catalog.BackupManifestObject, Size: mp.stored.n, SHA256: hex.EncodeToString(mp.stored.h.Sum(nil)),
		Format: "backup_manifest", Compression: CompressionZstd, Encryption: "age"}
	m.FinishedAt = o.now().UTC()
	if err := writeManifest(ctx, o.Options, m); err != nil {
		discard()
		_ = o.Store.Delete(context.WithoutCancel(ctx), manifestKey)
		return catalog.Manifest{}, fmt.Errorf("backup %s: write manifest: %w", id, err)
	}
	logf(o.Log, "backup %s: %s read, %s stored (%.1fx smaller) in %s; consistent at %s", id, humanBytes(m.DumpSize), humanBytes(m.Object.Size),
		float64(m.DumpSize)/float64(max(m.Object.Size, 1)), m.FinishedAt.Sub(m.StartedAt).Round(time.Millisecond), m.Physical.StopLSN)
	return m, nil
}

// reportsError says whether a PostgreSQL program printed an error, rather than being stopped.
func reportsError(t *tailBuffer) bool {
	s := t.String()
	return strings.Contains(s, "error:") || strings.Contains(s, "FATAL:")
}

// physicalManifest is the manifest of a base backup whose tar stream showed bt.
func physicalManifest(o PhysicalOptions, srv server, id string, started time.Time, bt baseTar, parent *catalog.Backup) (catalog.Manifest, error) {
	if strconv.FormatUint(bt.systemID, 10) != srv.systemID {
		return catalog.Manifest{}, fmt.Errorf("the backup's pg_control names system %d, but the server said %s", bt.systemID, srv.systemID)
	}
	stopLSN, stopTLI, err := bt.stop()
	if err != nil {
		return catalog.Manifest{}, err
	}
	p := &catalog.PhysicalInfo{SystemID: srv.systemID, Timeline: stopTLI, StartLSN: bt.startLSN, StopLSN: stopLSN, WALSegmentSize: srv.segSize,
		Superuser: srv.superuser}
	if parent != nil {
		if bt.incrementalFromLSN == 0 {
			return catalog.Manifest{}, errors.New("pg_basebackup was asked for an incremental backup but its label says it is full")
		}
		p.Parent = parent.ID
	}
	return catalog.Manifest{
		FormatVersion: catalog.PhysicalFormatVersion, Method: catalog.MethodPhysical, ID: id,
		Tenant: o.Tenant, TenantUID: o.TenantUID, Schedule: o.Schedule, StartedAt: started,
		Database: srv.database, PostgresVersion: srv.version, PostgresMajor: srv.major, Physical: p,
	}, nil
}

// removeLeftovers removes what killed runs of this tenant and schedule left, as Run does.
func removeLeftovers(ctx context.Context, o Options, now time.Time) {
	removed, err := catalog.DeleteOrphans(ctx, o.Store, o.Tenant, o.Schedule, now.Add(-o.AbandonedAfter))
	for _, k := range removed {
		logf(o.Log, "removed leftover of an unfinished backup: %s", k)
	}
	if err != nil {
		// A writer's credential may not list or delete (docs/storage-credentials.md); the
		// operator removes leftovers then. Nothing else depends on this.
		logf(o.Log, "backup: not removing leftovers of earlier runs: %v", err)
	}
}

// writeManifest stores the manifest, signed when there is a signing key.
func writeManifest(ctx context.Context, o Options, m catalog.Manifest) error {
	if o.SigningKey != nil {
		return catalog.WriteSignedManifest(ctx, o.Store, m, o.SigningKey)
	}
	return catalog.WriteManifest(ctx, o.Store, m)
}

// chooseParent decides between a full and an incremental backup, and finds the backup an
// incremental one is taken against: the newest physical backup of the same tenant, schedule and
// cluster whose signature checks.
func chooseParent(ctx context.Context, o PhysicalOptions, srv server, now time.Time) (*catalog.Backup, error) {
	if !o.Incremental && o.FullEvery <= 0 {
		return nil, nil
	}
	full := func(why string) (*catalog.Backup, error) {
		if o.Incremental {
			return nil, fmt.Errorf("cannot take an incremental backup: %s", why)
		}
		logf(o.Log, "backup: taking a full backup: %s", why)
		return nil, nil
	}
	switch {
	case srv.major < 17:
		return full(fmt.Sprintf("PostgreSQL %s takes none (17 and later do)", srv.version))
	case srv.summarizeWAL != "on":
		return full("the server does not summarize WAL (summarize_wal = off)")
	case len(o.Identities) == 0:
		return full("no identity to read the previous backup's backup_manifest (--identity-file)")
	}
	trust := o.Trust
	if o.SigningKey != nil {
		trust.Keys = append(trust.Keys, o.SigningKey.Public().(ed25519.PublicKey))
	}
	var opts []catalog.ListOption
	if o.TenantUID != "" {
		opts = append(opts, catalog.WithTenantUIDs(o.TenantUID))
	}
	listed, err := catalog.List(ctx, o.Store, o.Tenant, o.Schedule, append(opts, catalog.WithTrust(trust))...)
	if err != nil {
		return nil, fmt.Errorf("find the previous backup: %w", err)
	}
	var candidates []catalog.Backup
	for _, b := range listed {
		if b.Physical != nil && b.Physical.SystemID == srv.systemID && b.Signature.Trusted() {
			candidates = append(candidates, b)
		}
	}
	if len(candidates) == 0 {
		return full("no earlier physical backup of this cluster in this schedule")
	}
	parent := candidates[0] // newest first
	if o.FullEvery > 0 && !o.Incremental {
		chain, err := catalog.Chain(candidates, parent.Schedule, parent.ID)
		if err != nil {
			return full(err.Error())
		}
		if age := now.Sub(chain[0].StartedAt); age >= o.FullEvery {
			return full(fmt.Sprintf("the last full backup, %s, is %s old (--full-every %s)", chain[0].ID, age.Round(time.Minute), o.FullEvery))
		}
	}
	return &parent, nil
}

// manifestReaders is a backup's manifest as far as its backup_manifest object is concerned: the
// same backup and data key, read by BackupManifestRecipients.
func manifestReaders(b catalog.Backup) catalog.Manifest {
	m := b.Manifest
	m.Recipients = b.Physical.BackupManifestRecipients
	return m
}

// feedParentManifest writes the parent's decrypted backup_manifest into w, checked against its
// manifest as it goes (a damaged one never reaches its end), and reports how it went.
func feedParentManifest(ctx context.Context, o PhysicalOptions, parent catalog.Backup, w *os.File) <-chan error {
	done := make(chan error, 1)
	go func() {
		defer w.Close()
		obj := parent.Physical.BackupManifest
		key := storage.Join(catalog.Dir(parent.Tenant, parent.Schedule, parent.ID), obj.Name)
		a, err := openSealed(ctx, o.Store, parent.ID, key, obj, parent.Physical.BackupManifestRecipients, o.Identities)
		if err != nil {
			done <- fmt.Errorf("read backup_manifest of %s: %w", parent.ID, err)
			return
		}
		defer a.Close()
		tw := &trackedWriter{w: w}
		if _, err := io.Copy(tw, &holdLastByte{br: bufio.NewReaderSize(a, 64<<10)}); err != nil && !tw.failed {
			done <- fmt.Errorf("read backup_manifest of %s: %w", parent.ID, a.explain("read", err))
			return
		}
		// A failure to write means pg_basebackup went away; its own exit says why.
		done <- nil
	}()
	return done
}

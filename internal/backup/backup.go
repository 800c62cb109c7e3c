package backup

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/tenantops/tenant-operator/internal/backup/pgcluster"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/datakey"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// Options for one backup run.
type Options struct {
	// DSN of the database to back up. A password in it never reaches a command line or a message.
	DSN    string
	Store  storage.Store
	Tenant string
	// TenantUID is the Tenant object's UID, recorded in the manifest (catalog.WithTenantUIDs).
	TenantUID string
	Schedule  string
	// Recipients are age public keys; the backup can be restored with any matching identity.
	// Not with DataKey.
	Recipients []string
	// DataKey, when set, is the tenant's data key: the backup is encrypted to it only, and its
	// wrapped copy is stored in the same location before the dump starts, so that the location
	// holds what opens each of its backups. Needs TenantUID.
	DataKey *datakey.Key
	// SigningKey signs the manifest (see catalog.WriteSignedManifest); nil writes an unsigned
	// backup, which restore and verify refuse unless told to accept unsigned backups.
	SigningKey ed25519.PrivateKey
	// PgBinDir holds pg_dump; see pgcluster.Find for the fallbacks.
	PgBinDir string
	// ZstdLevel defaults to zstd.SpeedFastest: compression is the agent's largest cost, and the
	// fastest level keeps a backup close to the speed of pg_dump alone.
	ZstdLevel zstd.EncoderLevel
	// AbandonedAfter is how old an unfinished upload of the same tenant and schedule must be before
	// this run removes it as the leftover of a killed run (zero means never).
	AbandonedAfter time.Duration
	// Log receives progress lines for the SRE (stderr in the CLI); nil discards them.
	Log io.Writer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}

// Run takes one backup: pg_dump's custom format, streamed through zstd and age into storage
// without touching the local disk, then the manifest. Memory stays flat whatever the database size:
// every stage works on bounded buffers (pg_dump's pipe, zstd's window, age's 64 KiB chunks, two
// storage parts). The backup exists once Run returns without error; on any failure nothing is left
// that counts as a backup.
func Run(ctx context.Context, o Options) (catalog.Manifest, error) {
	for kind, v := range map[string]string{"tenant": o.Tenant, "schedule": o.Schedule} {
		if err := catalog.ValidateName(kind, v); err != nil {
			return catalog.Manifest{}, err
		}
	}
	keys := o.Recipients
	if o.DataKey != nil {
		if len(o.Recipients) > 0 {
			return catalog.Manifest{}, errors.New("a backup with a tenant data key is encrypted to that key only: no other recipients")
		}
		keys = []string{o.DataKey.Recipient}
	}
	recipients, fingerprints, err := ParseRecipients(keys)
	if err != nil {
		return catalog.Manifest{}, err
	}
	ci, err := parseConnInfo(o.DSN)
	if err != nil {
		return catalog.Manifest{}, err
	}
	level := o.ZstdLevel
	if level == 0 {
		level = zstd.SpeedFastest
	}

	started := o.now().UTC()
	if o.AbandonedAfter > 0 {
		removed, err := catalog.DeleteOrphans(ctx, o.Store, o.Tenant, o.Schedule, started.Add(-o.AbandonedAfter))
		for _, k := range removed {
			logf(o.Log, "removed leftover of an unfinished backup: %s", k)
		}
		switch {
		case errors.Is(err, storage.ErrAccessDenied):
			// A backup writer's credential may put new objects but not list or delete them (see
			// docs/storage-credentials.md); leftovers are then the pruner's, the operator's, to remove.
			logf(o.Log, "backup: not removing leftovers of earlier runs: this storage credential may not list or delete them")
		case err != nil:
			return catalog.Manifest{}, fmt.Errorf("clean up after earlier runs: %w", err)
		}
	}

	if o.DataKey != nil {
		// Before the dump: a backup whose key is not beside it could be lost with the cluster.
		if err := catalog.WriteDataKey(ctx, o.Store, o.Tenant, o.TenantUID, *o.DataKey); err != nil {
			return catalog.Manifest{}, err
		}
	}

	src, err := openSnapshot(ctx, ci)
	if err != nil {
		return catalog.Manifest{}, err
	}
	defer src.close(ctx)

	pgDump, dumpVersion, err := findClientTool(ctx, o.PgBinDir, "pg_dump", src.major, src.version)
	if err != nil {
		return catalog.Manifest{}, err
	}

	id := catalog.NewID(started)
	dir := catalog.Dir(o.Tenant, o.Schedule, id)
	dataKey := storage.Join(dir, catalog.DataObject)
	logf(o.Log, "backup %s: dumping database %s (PostgreSQL %s, %d tables) to %s", id, src.database, src.version, len(src.tables), o.Store)

	dumpCtx, cancelDump := context.WithCancel(ctx)
	defer cancelDump()
	cmd := exec.CommandContext(dumpCtx, pgDump, "--format=custom", "--compress=0", "--no-password",
		"--snapshot="+src.snapshot, "--dbname="+ci.noSecret)
	cmd.Env = ci.env(os.Environ())
	stderr := newTailBuffer(16 << 10)
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return catalog.Manifest{}, fmt.Errorf("pg_dump: %w", err)
	}
	growPipe(stdout)
	if err := cmd.Start(); err != nil {
		return catalog.Manifest{}, fmt.Errorf("start pg_dump: %w", err)
	}

	// Counting runs on the server at the same time as the dump, in the exported snapshot.
	type counted struct {
		largeObjects int64
		err          error
	}
	countsDone := make(chan counted, 1)
	go func() {
		los, err := countRows(dumpCtx, src.tx, src.tables)
		countsDone <- counted{los, err}
	}()

	pr, pw := io.Pipe()
	var pl *dumpPipeline
	var largeObjects int64
	produced := make(chan error, 1)
	go func() {
		// Built here, not before: age writes its header at once, into a pipe that only
		// Store.Put below reads.
		var copyErr error
		if pl, copyErr = newDumpPipeline(stdout, pw, recipients, level); copyErr == nil {
			_, copyErr = io.Copy(pl.enc, pl.dumped)
		}
		if copyErr != nil {
			cancelDump() // pg_dump would block forever on a pipe nobody reads
		}
		// pg_dump's exit status decides, not its output: a dump cut short also ends in EOF and must
		// not be finished as if it were whole.
		waitErr := cmd.Wait()
		if waitErr != nil {
			cancelDump()
		}
		// The counting transaction shares the connection that Run closes: wait for it in any case.
		c := <-countsDone
		var err error
		switch {
		case copyErr != nil:
			err = fmt.Errorf("compress and upload: %w", copyErr)
		case waitErr != nil:
			err = fmt.Errorf("pg_dump failed: %s", ci.scrub(stderrOr(stderr, waitErr)))
		case c.err != nil:
			err = fmt.Errorf("row counts: %s", ci.scrub(c.err.Error()))
		default:
			largeObjects = c.largeObjects
			err = pl.finish()
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
		_ = pr.CloseWithError(putErr) // unblock the producer
		cancelDump()
	}
	prodErr := <-produced
	if err := ctx.Err(); err != nil && (putErr != nil || prodErr != nil) {
		return catalog.Manifest{}, fmt.Errorf("backup %s interrupted (%w); the upload was abandoned and nothing counts as a backup", id, err)
	}
	switch {
	case prodErr != nil && (putErr == nil || errors.Is(putErr, prodErr)):
		return catalog.Manifest{}, fmt.Errorf("backup %s: %w", id, prodErr)
	case putErr != nil:
		return catalog.Manifest{}, fmt.Errorf("backup %s: upload: %w", id, putErr)
	}

	m := catalog.Manifest{
		FormatVersion:   catalog.FormatVersion,
		ID:              id,
		Tenant:          o.Tenant,
		TenantUID:       o.TenantUID,
		Schedule:        o.Schedule,
		StartedAt:       started,
		Database:        src.database,
		PostgresVersion: src.version,
		PostgresMajor:   src.major,
		PgDumpVersion:   dumpVersion,
		Object: catalog.ObjectInfo{
			Name:        catalog.DataObject,
			Size:        size,
			SHA256:      hex.EncodeToString(pl.stored.h.Sum(nil)),
			Format:      "pg_dump-custom",
			Compression: "zstd",
			Encryption:  "age",
		},
		DumpSize:       pl.dumped.n,
		CompressedSize: pl.compressed.n,
		Tables:         src.tables,
		LargeObjects:   largeObjects,
		Recipients:     fingerprints,
	}
	if o.DataKey != nil {
		m.DataKeyID = o.DataKey.ID
	}
	if size != pl.stored.n {
		_ = o.Store.Delete(context.WithoutCancel(ctx), dataKey)
		return catalog.Manifest{}, fmt.Errorf("backup %s: storage took %d bytes but %d were produced", id, size, pl.stored.n)
	}
	m.FinishedAt = o.now().UTC()
	write := catalog.WriteManifest
	if o.SigningKey != nil {
		write = func(ctx context.Context, store storage.Store, m catalog.Manifest) error {
			return catalog.WriteSignedManifest(ctx, store, m, o.SigningKey)
		}
	}
	if err := write(ctx, o.Store, m); err != nil {
		// Without its manifest the data is not a backup; don't leave it to be found.
		_ = o.Store.Delete(context.WithoutCancel(ctx), dataKey)
		return catalog.Manifest{}, fmt.Errorf("backup %s: write manifest: %w", id, err)
	}
	logf(o.Log, "backup %s: %s dumped, %s stored (%.1fx smaller) in %s", id, humanBytes(m.DumpSize), humanBytes(m.Object.Size),
		float64(m.DumpSize)/float64(max(m.Object.Size, 1)), m.FinishedAt.Sub(m.StartedAt).Round(time.Millisecond))
	return m, nil
}

// dumpPipeline is pg_dump's output on its way to storage: counted, zstd-compressed, counted,
// age-encrypted, counted and hashed. A physical base backup's may be S2-compressed instead.
type dumpPipeline struct {
	dumped     *countingReader
	enc        io.WriteCloser
	compressed *countingWriter
	encrypted  io.WriteCloser
	stored     *countingWriter
}

func newDumpPipeline(src io.Reader, dst io.Writer, recipients []age.Recipient, level zstd.EncoderLevel) (*dumpPipeline, error) {
	return newSealPipeline(src, dst, recipients, CompressionZstd, level)
}

// newSealPipeline is newDumpPipeline with another codec (codec.go); level is zstd's.
func newSealPipeline(src io.Reader, dst io.Writer, recipients []age.Recipient, codec string, level zstd.EncoderLevel) (*dumpPipeline, error) {
	p := &dumpPipeline{dumped: &countingReader{r: src}, stored: &countingWriter{w: dst, h: sha256.New()}}
	var err error
	if p.encrypted, err = age.Encrypt(p.stored, recipients...); err != nil {
		return nil, fmt.Errorf("age: %w", err)
	}
	p.compressed = &countingWriter{w: p.encrypted}
	if p.enc, err = newCompressor(codec, p.compressed, level); err != nil {
		return nil, err
	}
	return p, nil
}

// finish flushes zstd's last frame and age's last chunk.
func (p *dumpPipeline) finish() error {
	if err := p.enc.Close(); err != nil {
		return fmt.Errorf("compress: %w", err)
	}
	if err := p.encrypted.Close(); err != nil {
		return fmt.Errorf("age: %w", err)
	}
	return nil
}

// growPipe deepens a pipe from Linux's default 64 KiB to 1 MiB (the most an unprivileged process
// may ask for). pg_dump writes in small pieces; with a deeper pipe it and the agent block on each
// other far less often, which measurably shortens a backup on a busy machine. Failure only costs
// speed, so it is ignored.
func growPipe(p any) {
	f, ok := p.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return
	}
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<20) })
	}
}

func stderrOr(t *tailBuffer, err error) string {
	if s := t.lastError(); s != "" {
		return s
	}
	return err.Error()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// findClientTool finds a PostgreSQL client program (pg_dump, pg_basebackup) for a server of
// serverMajor, and refuses one older than the server: it cannot read a newer server's catalog or
// protocol. It returns the program's path and version.
func findClientTool(ctx context.Context, binDir, name string, serverMajor int, serverVersion string) (string, string, error) {
	path, err := pgcluster.Find(binDir, serverMajor, name)
	if err != nil {
		return "", "", err
	}
	version, major, err := pgcluster.Version(ctx, path)
	if err != nil {
		return "", "", err
	}
	if major < serverMajor {
		return "", "", fmt.Errorf("%s is version %s, older than the server (%s); %s must be at least the server's major version (set --pg-bin-dir)", path, version, serverVersion, name)
	}
	return path, version, nil
}

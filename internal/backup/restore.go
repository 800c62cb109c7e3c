package backup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/readahead"

	"github.com/tenantops/tenant-operator/internal/backup/pgcluster"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// RestoreOptions for one restore.
type RestoreOptions struct {
	Store    storage.Store
	Tenant   string
	Schedule string
	// BackupID is an id or catalog.Latest.
	BackupID string
	// Owners, when given, is catalog.WithTenantUIDs: only backups of these Tenant objects.
	Owners     []catalog.ListOption
	Identities []age.Identity
	// DSN of the target database, which must exist.
	DSN string
	// Force restores into a database that already holds objects, dropping the ones the backup
	// recreates.
	Force bool
	// NoOwner skips ownership and grants, for a target that lacks the source's roles.
	NoOwner bool
	// Trust is what the backup's signature must check against; a backup that does not is
	// refused before anything is downloaded or restored.
	Trust    catalog.Trust
	PgBinDir string
	Log      io.Writer
	// TenantUIDs name the ledger to replay for a backup that recorded no Tenant UID.
	TenantUIDs []string
	// IgnoreLedger restores without replaying the erasure ledger when it cannot be read: erasure
	// requests made after the backup may be undone.
	IgnoreLedger bool
}

// RestoreResult is what a restore did besides restoring the backup.
type RestoreResult struct {
	// Replayed are the erasure requests replayed in the restore's transaction; LedgerReplayed
	// names them by their ErasureRequest's UID (never their subject).
	Replayed       int
	LedgerReplayed []string
	// LedgerIgnored is why the ledger was not replayed (IgnoreLedger), empty when it was.
	LedgerIgnored string
}

// ReadIdentities parses an age identity file. Its content is never part of an error.
func ReadIdentities(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read identity file: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %w", path, err)
	}
	return ids, nil
}

// checkIdentities fails fast, before any download, when no identity is one of the backup's
// recipients.
func checkIdentities(m catalog.Manifest, ids []age.Identity) error {
	var have []string
	for _, id := range ids {
		var r age.Recipient
		switch id := id.(type) {
		case *age.X25519Identity:
			r = id.Recipient()
		case *age.HybridIdentity:
			r = id.Recipient()
		default:
			return nil // cannot tell in advance; decryption will
		}
		fp := Fingerprint(r)
		if slices.Contains(m.Recipients, fp) {
			return nil
		}
		have = append(have, fp)
	}
	return &WrongIdentityError{Have: have, Want: m.Recipients}
}

// Restore fetches a backup, checks it against its manifest, decrypts, decompresses and feeds it to
// pg_restore, all in one stream. The restore is one transaction that can only commit once the
// whole object has been read and matched the manifest's sha256 (see verifyingReader and
// holdLastByte), so a damaged backup leaves the target as it was.
//
// The erasure requests recorded in the tenant's ledger after the backup was taken are replayed in
// that same transaction, before it commits (see streamRestoreReplaying): nobody ever sees the
// restored database with an erased subject in it. A ledger that cannot be read refuses the
// restore before anything is downloaded, unless IgnoreLedger.
func Restore(ctx context.Context, o RestoreOptions) (catalog.Backup, error) {
	b, _, err := RestoreReplaying(ctx, o)
	return b, err
}

// RestoreReplaying is Restore, telling what it replayed.
func RestoreReplaying(ctx context.Context, o RestoreOptions) (catalog.Backup, RestoreResult, error) {
	var res RestoreResult
	b, err := restore(ctx, o, &res)
	return b, res, err
}

func restore(ctx context.Context, o RestoreOptions, res *RestoreResult) (catalog.Backup, error) {
	b, err := catalog.GetTrusted(ctx, o.Store, o.Tenant, o.Schedule, o.BackupID, o.Trust, o.Owners...)
	if err != nil {
		return catalog.Backup{}, err
	}
	if b.Physical != nil {
		return b, fmt.Errorf("backup %s is a physical base backup, which restores into a data directory: restore --data-dir DIR with --to-time, --to-lsn or --to-latest", b.ID)
	}
	if len(o.Identities) == 0 {
		return b, errors.New("no identity: pass --identity-file")
	}
	platform := o.Identities
	if o.Identities, err = identitiesFor(ctx, o.Store, b.Manifest, o.Identities); err != nil {
		return b, err
	}
	ledger := &ledgerReader{store: o.Store, tenant: b.Tenant, ids: platform, trust: o.Trust}
	replay, err := ledger.pending(ctx, b.Manifest, o.TenantUIDs, b.StartedAt)
	var le *catalog.LedgerError
	switch {
	case errors.As(err, &le) && o.IgnoreLedger:
		res.LedgerIgnored = le.Error()
		logf(o.Log, "restore %s: WARNING: the erasure ledger is not replayed (--ignore-ledger): %v", b.ID, le.Err)
		replay = nil
	case err != nil:
		return b, err
	}
	ci, err := parseConnInfo(o.DSN)
	if err != nil {
		return b, err
	}
	targetMajor, err := checkTarget(ctx, ci, o.Force)
	if err != nil {
		return b, err
	}
	pgRestore, err := pgcluster.Find(o.PgBinDir, max(targetMajor, b.PostgresMajor), "pg_restore")
	if err != nil {
		return b, err
	}
	args := []string{}
	if o.Force {
		args = append(args, "--clean", "--if-exists")
	}
	if o.NoOwner {
		args = append(args, "--no-owner", "--no-privileges")
	}
	logf(o.Log, "restore %s: backup of %s taken %s (PostgreSQL %s) into %s", b.ID, b.Database, b.StartedAt.Format(time.RFC3339), b.PostgresVersion, ci.Redacted())
	start := time.Now()
	if len(replay) == 0 {
		if err := streamRestore(ctx, o.Store, b.Manifest, o.Identities, pgRestore, ci, args); err != nil {
			return b, err
		}
	} else {
		psql, err := findPsqlWithBind(ctx, o.PgBinDir, max(targetMajor, b.PostgresMajor))
		if err != nil {
			return b, err
		}
		logf(o.Log, "restore %s: %d erasure requests recorded since the backup are replayed before the restore commits", b.ID, len(replay))
		if err := streamRestoreReplaying(ctx, o.Store, b.Manifest, o.Identities, pgRestore, psql, ci, args, replay); err != nil {
			return b, err
		}
		res.Replayed, res.LedgerReplayed = len(replay), requestUIDs(replay)
	}
	logf(o.Log, "restore %s: done in %s", b.ID, time.Since(start).Round(time.Millisecond))
	return b, nil
}

// targetContentQuery counts what a fresh database does not have: relations, routines, enum and
// domain types outside the system schemas, large objects, extensions besides plpgsql, and schemas
// besides public.
const targetContentQuery = `
SELECT
  (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema')
      AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'),
  (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind NOT IN ('r','p') AND n.nspname NOT IN ('pg_catalog','information_schema')
      AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%')
  + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname NOT IN ('pg_catalog','information_schema'))
  + (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE t.typtype IN ('e','d') AND n.nspname NOT IN ('pg_catalog','information_schema'))
  + (SELECT count(*) FROM pg_largeobject_metadata)
  + (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql')
  + (SELECT count(*) FROM pg_namespace WHERE nspname NOT IN ('public','information_schema')
      AND nspname NOT LIKE 'pg\_%'),
  current_setting('server_version_num')::int / 10000,
  current_database()`

// checkTarget refuses a target that already holds objects unless forced, and returns its major
// version.
func checkTarget(ctx context.Context, ci connInfo, force bool) (int, error) {
	conn, err := ci.connect(ctx)
	if err != nil {
		return 0, fmt.Errorf("restore target: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var tables, others int64
	var major int
	var db string
	if err := conn.QueryRow(ctx, targetContentQuery).Scan(&tables, &others, &major, &db); err != nil {
		return 0, fmt.Errorf("inspect restore target: %s", ci.scrub(err.Error()))
	}
	if (tables > 0 || others > 0) && !force {
		return 0, fmt.Errorf("restore target database %s is not empty (%d tables, %d other objects); restore into an empty database or pass --force to replace what the backup contains", db, tables, others)
	}
	return major, nil
}

// DataObjectMissingError means a backup's manifest exists but its data object does not.
type DataObjectMissingError struct {
	ID, Object string
}

func (e *DataObjectMissingError) Error() string {
	return fmt.Sprintf("backup %q is damaged: its manifest exists but its data object %s is missing", e.ID, e.Object)
}

// archive is a backup's pg_dump archive as one stream: storage → checksum gate → age → zstd (or
// the codec the manifest names: codec.go). It ends with io.EOF only once the whole stored object
// has matched the manifest (see verifyingReader): a consumer that needs the complete archive
// cannot finish on a damaged one.
type archive struct {
	io.Reader
	gate *verifyingReader
	rc   io.Closer
	zr   *zstd.Decoder // nil when the codec is not zstd
	// in and out are openSealedAhead's read-ahead stages, before and after decompression; nil
	// otherwise.
	in, out io.Closer
	stopped bool
}

// openArchive starts the stream of a backup's archive.
func openArchive(ctx context.Context, store storage.Store, m catalog.Manifest, ids []age.Identity) (*archive, error) {
	return openSealed(ctx, store, m.ID, storage.Join(catalog.Dir(m.Tenant, m.Schedule, m.ID), m.Object.Name), m.Object, m.Recipients, ids)
}

// openSealed starts the stream of any object the agent stored compressed and encrypted: a
// backup's data, a physical backup's backup_manifest, an archived WAL file (whose name is then
// the id); recipients are the fingerprints it was encrypted to.
func openSealed(ctx context.Context, store storage.Store, id, key string, obj catalog.ObjectInfo, recipients []string, ids []age.Identity) (*archive, error) {
	return openSealedStages(ctx, store, id, key, obj, recipients, ids, false)
}

// openSealedAhead is openSealed for a stream large enough to pay for more goroutines (a base
// backup): fetching, hashing and decrypting run in one goroutine, zstd in its own, and the
// consumer in its, with a few MiB of read-ahead between them, so that each stage works while the
// next one does (the consumer writing files, say) instead of waiting for it. The stream is the
// same, checks included: it still ends only once the whole object has matched.
func openSealedAhead(ctx context.Context, store storage.Store, id, key string, obj catalog.ObjectInfo, recipients []string, ids []age.Identity) (*archive, error) {
	return openSealedStages(ctx, store, id, key, obj, recipients, ids, true)
}

// readAheadBuffers is each read-ahead stage's room: 4 buffers of 1 MiB.
const readAheadBuffers, readAheadBufferSize = 4, 1 << 20

func openSealedStages(ctx context.Context, store storage.Store, id, key string, obj catalog.ObjectInfo, recipients []string, ids []age.Identity, ahead bool) (*archive, error) {
	rc, err := store.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, &DataObjectMissingError{ID: id, Object: obj.Name}
	}
	if err != nil {
		return nil, fmt.Errorf("fetch backup %s: %w", id, err)
	}
	a := &archive{gate: newVerifyingReader(rc, obj.Size, obj.SHA256), rc: rc}
	plain, err := age.Decrypt(a.gate, ids...)
	if err != nil {
		defer rc.Close()
		var nomatch *age.NoIdentityMatchError
		if errors.As(err, &nomatch) {
			return nil, &WrongIdentityError{Want: recipients}
		}
		return nil, a.explain("decrypt", err)
	}
	if ahead {
		in, err := readahead.NewReaderSize(plain, readAheadBuffers, readAheadBufferSize)
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("read-ahead: %w", err)
		}
		a.in, plain = in, in
	}
	// The codec is the manifest's: zstd, or S2 for physical base backups taken with
	// --compression s2.
	dec, err := newDecompressor(obj.Compression, plain)
	if err != nil {
		a.stop()
		rc.Close()
		return nil, err
	}
	a.zr, a.Reader = dec.zstd, dec.Reader
	if ahead {
		out, err := readahead.NewReaderSize(a.Reader, readAheadBuffers, readAheadBufferSize)
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("read-ahead: %w", err)
		}
		a.out, a.Reader = out, out
	}
	return a, nil
}

func (a *archive) Close() {
	a.stop()
	if a.zr != nil {
		a.zr.Close()
	}
	_ = a.rc.Close()
}

// stop ends the read-ahead stages, each before what it reads from, and waits for their
// goroutines: then nothing reads the gate but the caller.
func (a *archive) stop() {
	if a.stopped || (a.in == nil && a.out == nil) {
		return
	}
	a.stopped = true
	if a.out != nil {
		_ = a.out.Close()
	}
	if a.zr != nil {
		a.zr.Close()
	}
	if a.in != nil {
		_ = a.in.Close()
	}
}

// explain turns a failure inside the stream into the most useful error: a checksum mismatch when
// the object is damaged (age and zstd notice damage first, with vaguer words), the storage error
// when the download broke.
func (a *archive) explain(what string, err error) error {
	var mismatch *ChecksumMismatchError
	var unreachable *storage.UnreachableError
	if errors.As(err, &mismatch) || errors.As(err, &unreachable) {
		return err
	}
	a.stop() // a read-ahead stage may be reading the gate
	if derr := a.gate.drain(); derr != nil {
		if errors.As(derr, &mismatch) || errors.As(derr, &unreachable) {
			return derr
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// streamRestore runs storage → checksum gate → age → zstd → hold-back → pg_restore.
func streamRestore(ctx context.Context, store storage.Store, m catalog.Manifest, ids []age.Identity, pgRestore string, ci connInfo, extraArgs []string) error {
	a, err := openArchive(ctx, store, m, ids)
	if err != nil {
		return err
	}
	defer a.Close()
	args := append([]string{"--dbname=" + ci.noSecret, "--no-password", "--single-transaction", "--exit-on-error"}, extraArgs...)
	run := runPgRestore(ctx, pgRestore, args, ci.env(os.Environ()), &holdLastByte{br: bufio.NewReaderSize(a, 64<<10)})
	switch {
	case run.readErr != nil:
		return a.explain("read backup", run.readErr)
	case run.waitErr != nil:
		return fmt.Errorf("pg_restore failed, nothing was restored (it runs as one transaction): %s", ci.scrub(stderrOr(run.stderr, run.waitErr)))
	case run.writeErr != nil:
		return fmt.Errorf("feed pg_restore: %w", run.writeErr)
	}
	return nil
}

// pgRestoreRun is how one pg_restore went.
type pgRestoreRun struct {
	// stderr is the end of pg_restore's output.
	stderr *tailBuffer
	// readErr is a failure to read the archive; pg_restore was then killed before it could see
	// the end of its input, so its transaction died uncommitted.
	readErr error
	// writeErr is a failure to feed pg_restore: it went away, and waitErr says why.
	writeErr error
	waitErr  error
}

// runPgRestore feeds an archive to pg_restore on its standard input.
func runPgRestore(ctx context.Context, pgRestore string, args, env []string, input io.Reader) pgRestoreRun {
	run := pgRestoreRun{stderr: newTailBuffer(16 << 10)}
	restoreCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(restoreCtx, pgRestore, args...)
	cmd.Env = env
	cmd.Stderr = run.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		run.waitErr = fmt.Errorf("pg_restore: %w", err)
		return run
	}
	growPipe(stdin)
	if err := cmd.Start(); err != nil {
		run.waitErr = fmt.Errorf("start pg_restore: %w", err)
		return run
	}
	w := &trackedWriter{w: stdin}
	_, copyErr := io.Copy(w, input)
	if copyErr != nil && !w.failed {
		// Kill before closing stdin, so that pg_restore never sees an end of input and its
		// transaction dies uncommitted.
		_ = cmd.Process.Kill()
	}
	_ = stdin.Close()
	run.waitErr = cmd.Wait()
	switch {
	case copyErr != nil && !w.failed:
		run.readErr = copyErr
	case copyErr != nil:
		run.writeErr = copyErr
	}
	return run
}

// holdLastByte passes a stream through but keeps its last byte back until the source has ended
// cleanly. zstd reports the end only after its input, age, has authenticated the final chunk, which
// age does only after the checksum gate has matched the whole object; so pg_restore, which needs
// every byte of the archive to finish, cannot commit a restore from a damaged or swapped backup.
type holdLastByte struct {
	br *bufio.Reader
}

func (h *holdLastByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b, err := h.br.Peek(2)
	if len(b) == 2 {
		n := min(len(p), h.br.Buffered()-1)
		return h.br.Read(p[:n])
	}
	if errors.Is(err, io.EOF) {
		return h.br.Read(p) // the last byte, then EOF
	}
	return 0, err
}

// trackedWriter remembers whether writing failed (pg_restore went away), to tell that apart from a
// failure to read the backup.
type trackedWriter struct {
	w      io.Writer
	failed bool
}

func (t *trackedWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if err != nil {
		t.failed = true
	}
	return n, err
}

// targetTables reads the tables and exact row counts of a restored database, to compare with a
// manifest.
func targetTables(ctx context.Context, ci connInfo) ([]catalog.TableRows, int64, error) {
	conn, err := ci.connect(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return tableRows(ctx, conn)
}

// tableRows lists a restored database's tables with exact row counts, and counts its large
// objects.
func tableRows(ctx context.Context, conn *pgx.Conn) ([]catalog.TableRows, int64, error) {
	tables, err := listTables(ctx, conn)
	if err != nil {
		return nil, 0, fmt.Errorf("list restored tables: %w", err)
	}
	los, err := countRows(ctx, conn, tables)
	if err != nil {
		return nil, 0, err
	}
	return tables, los, nil
}

// compareCounts lists every difference between a manifest's tables and a restored database's.
func compareCounts(m catalog.Manifest, got []catalog.TableRows, gotLOs int64) []problem {
	var problems []problem
	have := map[string]int64{}
	for _, t := range got {
		have[t.QualifiedName()] = t.Rows
	}
	for _, t := range m.Tables {
		n, ok := have[t.QualifiedName()]
		switch {
		case !ok:
			problems = append(problems, newProblem(ReasonTableMissing, "table %s is missing after restore", quoteName(t.QualifiedName())))
		case n != t.Rows:
			problems = append(problems, newProblem(ReasonRowCountMismatch, "table %s has %d rows after restore, manifest says %d", quoteName(t.QualifiedName()), n, t.Rows))
		}
		delete(have, t.QualifiedName())
	}
	extra := make([]string, 0, len(have))
	for name := range have {
		extra = append(extra, name)
	}
	slices.Sort(extra)
	for _, name := range extra {
		problems = append(problems, newProblem(ReasonUnexpectedTable, "table %s appears after restore but is not in the manifest", quoteName(name)))
	}
	if gotLOs != m.LargeObjects {
		problems = append(problems, newProblem(ReasonLargeObjectsDiffer, "%d large objects after restore, manifest says %d", gotLOs, m.LargeObjects))
	}
	return problems
}

// summary joins problems into one line.
func summary(problems []string) string {
	if len(problems) <= 3 {
		return strings.Join(problems, "; ")
	}
	return strings.Join(problems[:3], "; ") + fmt.Sprintf("; and %d more", len(problems)-3)
}

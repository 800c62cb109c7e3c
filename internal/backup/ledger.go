package backup

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"

	"github.com/tenantops/tenant-operator/internal/backup/pgcluster"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/datakey"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// ledgerClockSkew widens what a restore replays: entries up to this long before the backup's
// start are replayed too. The agents that wrote the entry and the backup may run on machines
// whose clocks differ, and a request replayed twice does no harm (erasure functions must be
// idempotent, see docs/erasure.md), while one not replayed brings the subject back.
const ledgerClockSkew = 5 * time.Minute

// callSQL is the one statement an erasure request runs: the function, each part quoted (it was
// checked by catalog.ValidFunction, so quoting names what PostgreSQL would find unquoted), with
// the subject as its only, bound, parameter.
func callSQL(function string) (string, error) {
	if err := catalog.ValidFunction(function); err != nil {
		return "", err
	}
	schema, name, _ := strings.Cut(function, ".")
	return "SELECT " + pgx.Identifier{schema, name}.Sanitize() + "($1)", nil
}

// sealLedgerEntry encrypts an entry to a tenant data key's public half.
func sealLedgerEntry(e catalog.LedgerEntry, recipient string) ([]byte, error) {
	r, err := age.ParseX25519Recipient(recipient)
	if err != nil {
		return nil, fmt.Errorf("data key recipient: %w", err)
	}
	plain, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	w, err := age.Encrypt(&out, r)
	if err != nil {
		return nil, fmt.Errorf("seal ledger entry: %w", err)
	}
	if _, err := w.Write(plain); err != nil {
		return nil, fmt.Errorf("seal ledger entry: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("seal ledger entry: %w", err)
	}
	return out.Bytes(), nil
}

// ledgerReader opens a tenant's ledger entries with the identities a restore was given: the
// platform's, which unwrap the escrowed data key each entry names, or the data key itself.
type ledgerReader struct {
	store  storage.Store
	tenant string
	ids    []age.Identity
	trust  catalog.Trust
	keys   map[string][]age.Identity
}

// pending lists the entries of the ledger that a restore of backup m must replay: those of its
// Tenant object (m.TenantUID, or uids when the backup recorded none) newer than since, less
// ledgerClockSkew, oldest first. Any entry that cannot be read, checked or opened fails it with a
// *catalog.LedgerError that says how many requests are at stake.
func (l *ledgerReader) pending(ctx context.Context, m catalog.Manifest, uids []string, since time.Time) ([]catalog.LedgerEntry, error) {
	headers, err := l.headers(ctx, m, uids, since)
	if err != nil {
		return nil, err
	}
	var out []catalog.LedgerEntry
	for _, h := range headers {
		e, err := l.open(ctx, h)
		if err != nil {
			return nil, &catalog.LedgerError{Tenant: l.tenant, Entries: len(headers), Err: err}
		}
		out = append(out, e)
	}
	return out, nil
}

// headers lists the checked headers of the entries pending would open.
func (l *ledgerReader) headers(ctx context.Context, m catalog.Manifest, uids []string, since time.Time) ([]catalog.LedgerHeader, error) {
	if m.TenantUID != "" {
		uids = []string{m.TenantUID}
	}
	if len(uids) == 0 {
		found, err := catalog.LedgerTenantUIDs(ctx, l.store, l.tenant)
		if err != nil {
			return nil, &catalog.LedgerError{Tenant: l.tenant, Err: err}
		}
		if len(found) > 0 {
			n := 0
			for _, uid := range found {
				c, _ := catalog.CountLedger(ctx, l.store, l.tenant, uid)
				n += c
			}
			return nil, &catalog.LedgerError{Tenant: l.tenant, Entries: n,
				Err: fmt.Errorf("backup %s records no Tenant UID, and without --tenant-uid the ledger entries that are its tenant's (%d Tenant objects have a ledger) cannot be told", m.ID, len(found))}
		}
		return nil, nil
	}
	var out []catalog.LedgerHeader
	for _, uid := range uids {
		hs, err := catalog.ReadLedger(ctx, l.store, l.tenant, uid, l.trust)
		if err != nil {
			return nil, err
		}
		for _, h := range hs {
			if h.Time.After(since.Add(-ledgerClockSkew)) {
				out = append(out, h)
			}
		}
	}
	return out, nil
}

// open decrypts one entry and checks it against its signed header.
func (l *ledgerReader) open(ctx context.Context, h catalog.LedgerHeader) (catalog.LedgerEntry, error) {
	var e catalog.LedgerEntry
	ids, ok := l.keys[h.DataKeyID]
	if !ok {
		var err error
		if ids, err = l.identities(ctx, h); err != nil {
			return e, err
		}
		if l.keys == nil {
			l.keys = map[string][]age.Identity{}
		}
		l.keys[h.DataKeyID] = ids
	}
	r, err := age.Decrypt(bytes.NewReader(h.Sealed), ids...)
	if err != nil {
		return e, fmt.Errorf("entry of request %s: decrypt: %w", h.RequestUID, err)
	}
	plain, err := io.ReadAll(io.LimitReader(r, 16<<10))
	if err != nil {
		return e, fmt.Errorf("entry of request %s: decrypt: %w", h.RequestUID, err)
	}
	if err := json.Unmarshal(plain, &e); err != nil {
		return e, fmt.Errorf("entry of request %s: %w", h.RequestUID, err)
	}
	switch {
	case e.TenantUID != h.TenantUID || !e.Time.Equal(h.Time) || !strings.HasSuffix(e.Request, "/"+h.RequestUID):
		return e, fmt.Errorf("entry of request %s does not match its header", h.RequestUID)
	case catalog.ValidFunction(e.Function) != nil, catalog.ValidSubject(e.Subject) != nil:
		return e, fmt.Errorf("entry of request %s names an invalid function or subject", h.RequestUID)
	}
	return e, nil
}

// identities returns what decrypts entries sealed to a data key: the key given directly, or its
// escrow copy unwrapped with the platform identities.
func (l *ledgerReader) identities(ctx context.Context, h catalog.LedgerHeader) ([]age.Identity, error) {
	name, err := catalog.DataKeyObject(h.Tenant, h.TenantUID, h.DataKeyID)
	if err != nil {
		return nil, err
	}
	rc, err := l.store.Get(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("data key %s of the ledger is destroyed or missing from this storage", h.DataKeyID)
	}
	if err != nil {
		return nil, fmt.Errorf("read data key %s: %w", h.DataKeyID, err)
	}
	wrapped, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("read data key %s: %w", h.DataKeyID, err)
	}
	key, err := datakey.Unwrap(wrapped, h.DataKeyID, l.ids)
	if errors.Is(err, datakey.ErrNoPlatformIdentity) {
		return l.ids, nil // perhaps the tenant key itself; decryption will tell
	}
	if err != nil {
		return nil, err
	}
	return []age.Identity{key}, nil
}

// requestUIDs names replayed entries by their ErasureRequest's UID, the ledger entry's ID: what a
// restore record holds of them (never the subject, nor the request's name, which its author
// chose and may have built from the subject).
func requestUIDs(entries []catalog.LedgerEntry) []string {
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Request[strings.LastIndex(e.Request, "/")+1:])
	}
	return out
}

// replayLedger runs the pending erasure requests in tx, oldest first, each as its function with the
// subject bound. It is the point-in-time restore's replay: the server was promoted, and the
// requests commit together before the restore reports success.
func replayLedger(ctx context.Context, tx pgx.Tx, entries []catalog.LedgerEntry) error {
	for _, e := range entries {
		sql, err := callSQL(e.Function)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, sql, e.Subject); err != nil {
			return fmt.Errorf("replay erasure request %s (%s): %w", e.Request, e.Function, err)
		}
	}
	return nil
}

// replayScript is the replay as psql reads it, for the end of a restore's one transaction: the
// session's settings back to the database's defaults (the restore script emptied search_path,
// which the application's functions may rely on), then each request as its function with the
// subject bound by \bind (psql 16 and later): never in the SQL text. The subject goes into a psql
// variable in single quotes, where psql reads ” as ' and \\ as \ (subjects hold no control
// characters: catalog.ValidSubject).
func replayScript(entries []catalog.LedgerEntry) (string, error) {
	var b strings.Builder
	b.WriteString("RESET ALL;\n")
	for _, e := range entries {
		sql, err := callSQL(e.Function)
		if err != nil {
			return "", err
		}
		if err := catalog.ValidSubject(e.Subject); err != nil {
			return "", err
		}
		quoted := strings.ReplaceAll(strings.ReplaceAll(e.Subject, `\`, `\\`), "'", "''")
		fmt.Fprintf(&b, "\\set tenantops_subject '%s'\n%s \\bind :tenantops_subject \\g\n", quoted, sql)
	}
	b.WriteString("\\unset tenantops_subject\n")
	return b.String(), nil
}

// findPsqlWithBind finds psql for the replay: version 16 or later, whose \bind sends the subject
// as a bound parameter. It connects to servers of any supported version.
func findPsqlWithBind(ctx context.Context, binDir string, major int) (string, error) {
	psql, err := pgcluster.Find(binDir, major, "psql")
	if err != nil {
		return "", err
	}
	_, got, err := pgcluster.Version(ctx, psql)
	if err != nil {
		return "", err
	}
	if got < 16 {
		return "", fmt.Errorf("replaying the erasure ledger needs psql 16 or later (its \\bind), and %s is %d: pass --pg-bin-dir of PostgreSQL 16 or later, which restores into older servers too", psql, got)
	}
	return psql, nil
}

// streamRestoreReplaying is streamRestore with the ledger's replay in the restore's transaction:
// storage → checksum gate → age → zstd → hold-back → pg_restore, which turns the archive into a
// script, → psql, which runs "BEGIN", the script, the replay, and "COMMIT" only once pg_restore
// has finished with the whole archive. pg_restore cannot take the replay into its own
// --single-transaction (it commits when the archive ends), so psql holds the transaction. Any
// failure (a damaged archive, pg_restore, a statement of the script or of the replay) ends psql
// before it reads a COMMIT, and the server rolls the whole restore back.
func streamRestoreReplaying(ctx context.Context, store storage.Store, m catalog.Manifest, ids []age.Identity, pgRestore, psql string, ci connInfo, extraArgs []string, replay []catalog.LedgerEntry) error {
	script, err := replayScript(replay)
	if err != nil {
		return err
	}
	a, err := openArchive(ctx, store, m, ids)
	if err != nil {
		return err
	}
	defer a.Close()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	sql := exec.CommandContext(runCtx, psql, "--no-psqlrc", "--no-password", "--quiet", "--set", "ON_ERROR_STOP=1", "--dbname="+ci.noSecret)
	sql.Env = ci.env(os.Environ())
	sql.Stdout = io.Discard
	sqlErr := newTailBuffer(16 << 10)
	sql.Stderr = sqlErr
	sqlIn, err := sql.StdinPipe()
	if err != nil {
		return fmt.Errorf("psql: %w", err)
	}
	if err := sql.Start(); err != nil {
		return fmt.Errorf("start psql: %w", err)
	}
	abort := func() error {
		// Killed before its input ends, psql never reads a COMMIT; the server rolls back.
		_ = sql.Process.Kill()
		_ = sqlIn.Close()
		return sql.Wait()
	}
	if _, err := io.WriteString(sqlIn, "BEGIN;\n"); err != nil {
		_ = abort()
		return fmt.Errorf("psql failed, nothing was restored: %s", ci.scrub(stderrOr(sqlErr, err)))
	}

	dump := exec.CommandContext(runCtx, pgRestore, append([]string{"--file=-", "--exit-on-error"}, extraArgs...)...)
	dump.Env = ci.env(os.Environ())
	dumpErr := newTailBuffer(16 << 10)
	dump.Stderr = dumpErr
	dumpIn, err := dump.StdinPipe()
	if err != nil {
		_ = abort()
		return fmt.Errorf("pg_restore: %w", err)
	}
	growPipe(dumpIn)
	dumpOut, err := dump.StdoutPipe()
	if err != nil {
		_ = abort()
		return fmt.Errorf("pg_restore: %w", err)
	}
	if err := dump.Start(); err != nil {
		_ = abort()
		return fmt.Errorf("start pg_restore: %w", err)
	}
	relayed := make(chan error, 1)
	go func() {
		_, err := io.Copy(sqlIn, dumpOut)
		if err != nil {
			cancel() // psql went away: stop pg_restore too, whose output nobody reads
		}
		relayed <- err
	}()
	w := &trackedWriter{w: dumpIn}
	_, readErr := io.Copy(w, &holdLastByte{br: bufio.NewReaderSize(a, 64<<10)})
	if readErr != nil && !w.failed {
		_ = dump.Process.Kill() // before its input ends: its script stays unfinished
	}
	_ = dumpIn.Close()
	relayErr := <-relayed
	dumpWait := dump.Wait()
	switch {
	case readErr != nil && !w.failed:
		_ = abort()
		return a.explain("read backup", readErr)
	case dumpWait != nil && relayErr == nil:
		_ = abort()
		return fmt.Errorf("pg_restore failed, nothing was restored (it runs as one transaction): %s", ci.scrub(stderrOr(dumpErr, dumpWait)))
	case relayErr != nil || readErr != nil:
		err := abort()
		return fmt.Errorf("restore failed, nothing was restored (it runs as one transaction): %s", ci.scrub(stderrOr(sqlErr, err)))
	}
	if _, err := io.WriteString(sqlIn, "\n"+script+"COMMIT;\n"); err != nil {
		err := abort()
		return fmt.Errorf("restore failed, nothing was restored (it runs as one transaction): %s", ci.scrub(stderrOr(sqlErr, err)))
	}
	_ = sqlIn.Close()
	if err := sql.Wait(); err != nil {
		return fmt.Errorf("restore or the replay of the erasure ledger failed, nothing was restored (they run as one transaction): %s", ci.scrub(stderrOr(sqlErr, err)))
	}
	return nil
}

// LedgerReplayCount says how many erasure requests a restore of backup m would replay: those of
// its Tenant object's ledger newer than the backup (see ledgerReader.pending), signatures checked
// against trust. It needs no identity: the count is read from the signed headers. An error is the
// one the restore would refuse with.
func LedgerReplayCount(ctx context.Context, store storage.Store, m catalog.Manifest, uids []string, trust catalog.Trust) (int, error) {
	l := &ledgerReader{store: store, tenant: m.Tenant, trust: trust}
	hs, err := l.headers(ctx, m, uids, m.StartedAt)
	return len(hs), err
}

// PointInTimeLedger is how a point-in-time restore treats the erasure ledger.
type PointInTimeLedger struct {
	// TenantUIDs name the ledger when the base backup recorded no Tenant UID.
	TenantUIDs []string
	// Ignore recovers without the replay when the ledger cannot be read.
	Ignore bool
}

// replayLedgerAfterRecovery replays, in the promoted server's database and one transaction, the
// erasure requests recorded after the recovery target (after the base backup's start for a target
// that is an LSN or the end of the archive: replaying a request twice does no harm), before the
// restore reports success. It runs as the server's superuser, which the restored server alone
// knows. With NoStart nothing runs here: the caller recovers, and replays nothing (documented).
func replayLedgerAfterRecovery(ctx context.Context, o PointInTimeOptions, conn *pgx.Conn, last catalog.Backup, target Target, res *PointInTimeResult) error {
	since := last.StartedAt
	if !target.Time.IsZero() {
		since = target.Time
	}
	l := &ledgerReader{store: o.Store, tenant: o.Tenant, ids: o.Identities, trust: o.Trust}
	entries, err := l.pending(ctx, last.Manifest, o.Ledger.TenantUIDs, since)
	var le *catalog.LedgerError
	switch {
	case errors.As(err, &le) && o.Ledger.Ignore:
		res.LedgerIgnored = le.Error()
		logf(o.Log, "restore: WARNING: the erasure ledger is not replayed (--ignore-ledger): %v", le.Err)
		return nil
	case err != nil:
		return err
	case len(entries) == 0:
		return nil
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("replay the erasure ledger: %w", err)
	}
	if err := replayLedger(ctx, tx, entries); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("replay the erasure ledger: %w", err)
	}
	res.LedgerReplayed, res.LedgerEntries = len(entries), requestUIDs(entries)
	logf(o.Log, "restore: replayed %d erasure requests recorded since %s", len(entries), since.Format(time.RFC3339))
	return nil
}

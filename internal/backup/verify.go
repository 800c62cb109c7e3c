package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"filippo.io/age"
	"github.com/jackc/pgx/v5"

	"github.com/tenantops/tenant-operator/internal/backup/pgcluster"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// VerifyOptions for one verification.
type VerifyOptions struct {
	Store    storage.Store
	Tenant   string
	Schedule string
	BackupID string // an id or catalog.Latest
	// Trust is what the backup's signature must check against; a backup that does not is
	// refused, and nothing is recorded.
	Trust catalog.Trust
	// Identities, when given, turn the checksum check into a restore drill.
	Identities []age.Identity
	// PgBinDir holds initdb, postgres and pg_restore for the drill.
	PgBinDir string
	// ScratchDir is where the drill's PostgreSQL keeps its data (default: the system's temporary
	// directory). The drill's database is the only plaintext that touches a disk; point this at
	// a memory-backed volume to avoid even that.
	ScratchDir string
	Log        io.Writer
	Now        func() time.Time
}

// VerificationFailedError means the backup itself is bad; the result was recorded.
type VerificationFailedError struct {
	ID       string
	Problems []string
}

func (e *VerificationFailedError) Error() string {
	return fmt.Sprintf("verification of backup %s failed: %s", e.ID, summary(e.Problems))
}

// Verify checks a backup and stores the outcome next to its manifest. Without identities it reads
// the stored object and compares its size and sha256 with the manifest. With identities it also
// restores the backup into a scratch PostgreSQL started for the occasion (its own temporary
// directory, no TCP listener, stopped and removed afterwards) and compares every table's row count
// with the manifest.
//
// Only findings about the backup are recorded (a mismatch, a restore that fails, wrong counts);
// a wrong identity, unreachable storage or missing PostgreSQL programs are returned as errors and
// leave the previous verification in place.
func Verify(ctx context.Context, o VerifyOptions) (catalog.Backup, catalog.Verification, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	b, err := catalog.GetTrusted(ctx, o.Store, o.Tenant, o.Schedule, o.BackupID, o.Trust)
	if err != nil {
		return catalog.Backup{}, catalog.Verification{}, err
	}
	start := now()
	v := catalog.Verification{FormatVersion: catalog.FormatVersion, BackupID: b.ID, Kind: catalog.KindChecksum}
	var problems []string
	if len(o.Identities) == 0 {
		problems, v.ObjectSHA256, err = verifyChecksum(ctx, o.Store, b.Manifest)
	} else {
		v.Kind = catalog.KindRestoreDrill
		if err := checkIdentities(b.Manifest, o.Identities); err != nil {
			return b, catalog.Verification{}, err
		}
		problems, v.ScratchPostgresVersion, err = drill(ctx, o, b.Manifest)
		if len(problems) == 0 && err == nil {
			v.ObjectSHA256 = b.Object.SHA256 // the gate let the restore finish only on a match
		}
	}
	if err != nil {
		return b, catalog.Verification{}, err
	}
	v.CheckedAt = now().UTC()
	v.Duration = v.CheckedAt.Sub(start)
	v.OK = len(problems) == 0
	v.Problems = problems
	if err := catalog.WriteVerification(ctx, o.Store, b.Tenant, b.Schedule, v); err != nil {
		return b, v, fmt.Errorf("record verification of %s: %w", b.ID, err)
	}
	b.Verification = &v
	if !v.OK {
		return b, v, &VerificationFailedError{ID: b.ID, Problems: problems}
	}
	return b, v, nil
}

// verifyChecksum reads the whole object through the checksum gate.
func verifyChecksum(ctx context.Context, store storage.Store, m catalog.Manifest) ([]string, string, error) {
	rc, err := store.Get(ctx, storage.Join(catalog.Dir(m.Tenant, m.Schedule, m.ID), m.Object.Name))
	if errors.Is(err, storage.ErrNotFound) {
		return []string{fmt.Sprintf("data object %s is missing", m.Object.Name)}, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("fetch backup %s: %w", m.ID, err)
	}
	defer rc.Close()
	gate := newVerifyingReader(rc, m.Object.Size, m.Object.SHA256)
	_, err = io.Copy(io.Discard, gate)
	var mismatch *ChecksumMismatchError
	if errors.As(err, &mismatch) {
		return []string{mismatch.Error()}, mismatch.Got, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read backup %s: %w", m.ID, err)
	}
	return nil, m.Object.SHA256, nil
}

// drillDatabase is the database the drill restores into.
const drillDatabase = "restore_drill"

// drill restores into a scratch server and compares row counts.
func drill(ctx context.Context, o VerifyOptions, m catalog.Manifest) (problems []string, version string, err error) {
	initdb, err := pgcluster.Find(o.PgBinDir, m.PostgresMajor, "initdb")
	if err != nil {
		return nil, "", fmt.Errorf("restore drill: %w", err)
	}
	_, major, err := pgcluster.Version(ctx, initdb)
	if err != nil {
		return nil, "", fmt.Errorf("restore drill: %w", err)
	}
	if major < m.PostgresMajor {
		return nil, "", fmt.Errorf("restore drill: the backup is of PostgreSQL %d but %s is %d; point --pg-bin-dir at PostgreSQL %d or newer", m.PostgresMajor, initdb, major, m.PostgresMajor)
	}
	binDir := filepath.Dir(initdb)
	logf(o.Log, "verify %s: starting a scratch PostgreSQL %d", m.ID, major)
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{BinDir: binDir, ParentDir: o.ScratchDir})
	if err != nil {
		return nil, "", fmt.Errorf("restore drill: start scratch PostgreSQL: %w", err)
	}
	defer func() {
		if serr := cluster.Stop(); serr != nil && err == nil {
			err = fmt.Errorf("restore drill: %w", serr)
		}
	}()
	admin, err := parseConnInfo(cluster.DSN("postgres"))
	if err != nil {
		return nil, "", err
	}
	conn, err := admin.connect(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("restore drill: %w", err)
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{drillDatabase}.Sanitize())
	_ = conn.Close(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("restore drill: create database: %w", err)
	}
	target, err := parseConnInfo(cluster.DSN(drillDatabase))
	if err != nil {
		return nil, "", err
	}
	logf(o.Log, "verify %s: restoring into the scratch server", m.ID)
	// The scratch server has none of the source's roles.
	err = streamRestore(ctx, o.Store, m, o.Identities, filepath.Join(binDir, "pg_restore"), target, []string{"--no-owner", "--no-privileges"})
	var wrong *WrongIdentityError
	var unreachable *storage.UnreachableError
	switch {
	case errors.As(err, &wrong), errors.As(err, &unreachable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil, "", err
	case err != nil:
		return []string{err.Error()}, cluster.Version, nil
	}
	got, los, err := targetTables(ctx, target)
	if err != nil {
		return nil, "", fmt.Errorf("restore drill: %w", err)
	}
	return compareCounts(m, got, los), cluster.Version, nil
}

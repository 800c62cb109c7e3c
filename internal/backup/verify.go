package backup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// VerifyOptions for one verification.
type VerifyOptions struct {
	Store    storage.Store
	Tenant   string
	Schedule string
	BackupID string // an id or catalog.Latest
	// Owners, when given, is catalog.WithTenantUIDs: only backups of these Tenant objects.
	Owners []catalog.ListOption
	// Trust is what the backup's signature must check against; a backup that does not is
	// refused, and nothing is recorded.
	Trust catalog.Trust
	// Identities, when given, turn the checksum check into a restore drill.
	Identities []age.Identity
	// DrillSocket is where a restorer serves drills (verify --serve-drills): the verification
	// job's scratch container. When empty, Verify starts a restorer of its own as a child process
	// with none of this process's secrets (see drill.go).
	DrillSocket string
	// DrillRoles are created, without login or privileges, in the scratch server, so that objects
	// naming them (row-level security policies) restore: the tenant's database user.
	DrillRoles []string
	// PgBinDir holds initdb, postgres and pg_restore for a restorer this process starts.
	PgBinDir string
	// ScratchDir is where a restorer this process starts keeps the drill's database (default: the
	// system's temporary directory): the one place the backup's plaintext touches a disk.
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
// has a restorer restore the backup into a scratch PostgreSQL, as a role without privileges, and
// compares every table's row count with the manifest (see drill.go).
//
// Only findings about the backup are recorded (a mismatch, a restore that fails, wrong counts),
// each as a fixed reason and a bounded summary (see problems.go); a wrong identity, unreachable
// storage, a missing restorer or PostgreSQL, or a scratch server that ran out of resources are
// returned as errors and leave the previous verification in place.
func Verify(ctx context.Context, o VerifyOptions) (catalog.Backup, catalog.Verification, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	b, err := catalog.GetTrusted(ctx, o.Store, o.Tenant, o.Schedule, o.BackupID, o.Trust, o.Owners...)
	if err != nil {
		return catalog.Backup{}, catalog.Verification{}, err
	}
	start := now()
	v := catalog.Verification{FormatVersion: catalog.FormatVersion, BackupID: b.ID, Kind: catalog.KindChecksum}
	var problems []problem
	if len(o.Identities) == 0 {
		problems, v.ObjectSHA256, err = verifyChecksum(ctx, o.Store, b.Manifest)
	} else {
		v.Kind = catalog.KindRestoreDrill
		if o.Identities, err = identitiesFor(ctx, o.Store, b.Manifest, o.Identities); err != nil {
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
	v.Problems = problemStrings(problems)
	if !v.OK {
		v.Reason = problems[0].reason
	}
	if err := catalog.WriteVerification(ctx, o.Store, b.Tenant, b.Schedule, v); err != nil {
		return b, v, fmt.Errorf("record verification of %s: %w", b.ID, err)
	}
	b.Verification = &v
	if !v.OK {
		return b, v, &VerificationFailedError{ID: b.ID, Problems: v.Problems}
	}
	return b, v, nil
}

// verifyChecksum reads the whole object through the checksum gate.
func verifyChecksum(ctx context.Context, store storage.Store, m catalog.Manifest) ([]problem, string, error) {
	rc, err := store.Get(ctx, storage.Join(catalog.Dir(m.Tenant, m.Schedule, m.ID), m.Object.Name))
	if errors.Is(err, storage.ErrNotFound) {
		return []problem{missingProblem(m.Object.Name)}, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("fetch backup %s: %w", m.ID, err)
	}
	defer rc.Close()
	gate := newVerifyingReader(rc, m.Object.Size, m.Object.SHA256)
	_, err = io.Copy(io.Discard, gate)
	var mismatch *ChecksumMismatchError
	if errors.As(err, &mismatch) {
		return []problem{mismatchProblem(mismatch)}, mismatch.Got, nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read backup %s: %w", m.ID, err)
	}
	return nil, m.Object.SHA256, nil
}

func missingProblem(object string) problem {
	return newProblem(ReasonDataObjectMissing, "data object %s is missing", quoteName(object))
}

func mismatchProblem(e *ChecksumMismatchError) problem {
	return newProblem(ReasonChecksumMismatch, "stored object sha256 %s, manifest says %s", e.Got, e.Want)
}

// restorerWait is how long the agent waits for the restorer's socket: the sidecar starts with it.
const restorerWait = 2 * time.Minute

// drill has a restorer restore the backup and compares its row counts with the manifest.
func drill(ctx context.Context, o VerifyOptions, m catalog.Manifest) (problems []problem, version string, err error) {
	var conn net.Conn
	if o.DrillSocket != "" {
		logf(o.Log, "verify %s: connecting to the drill restorer at %s", m.ID, o.DrillSocket)
		conn, err = dialRestorer(ctx, o.DrillSocket, restorerWait)
	} else {
		var child *restorerChild
		child, err = startRestorer(o)
		if err == nil {
			conn = child.conn
			defer func() {
				if cerr := child.wait(); cerr != nil && err == nil {
					err = fmt.Errorf("restore drill: %w", cerr)
				}
			}()
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("restore drill: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	br := bufio.NewReaderSize(conn, 64<<10)
	if err := writeMessage(conn, drillRequest{Protocol: drillProtocol, PostgresMajor: m.PostgresMajor, Roles: o.DrillRoles}); err != nil {
		return nil, "", fmt.Errorf("restore drill: send the request to the restorer: %w", err)
	}
	var ready drillReady
	if err := readMessage(br, &ready, maxReadySize); err != nil {
		return nil, "", fmt.Errorf("restore drill: no answer from the restorer: %w", err)
	}
	if ready.Error != "" {
		return nil, "", fmt.Errorf("restore drill: the restorer: %s", ready.Error)
	}
	logf(o.Log, "verify %s: restoring into a scratch PostgreSQL %s", m.ID, ready.Version)

	fw := &frameWriter{w: conn}
	a, err := openArchive(ctx, o.Store, m, o.Identities)
	if err != nil {
		_ = fw.frame(frameAbort, nil)
		return archiveProblem(err, ready.Version)
	}
	defer a.Close()

	// The restorer may answer before the stream ends (a restore that failed early), so its report
	// is read while the stream is written.
	type answer struct {
		report drillReport
		err    error
	}
	answers := make(chan answer, 1)
	go func() {
		var r drillReport
		err := readMessage(br, &r, maxReportSize)
		answers <- answer{r, err}
	}()
	var got *answer
	buf := make([]byte, maxFrame)
	var readErr, writeErr error
stream:
	for {
		select {
		case ans := <-answers:
			// The restorer is done before the stream is: tell it nothing more comes.
			got = &ans
			_ = fw.frame(frameAbort, nil)
			break stream
		default:
		}
		n, rerr := a.Read(buf)
		if n > 0 {
			if _, writeErr = fw.Write(buf[:n]); writeErr != nil {
				break stream
			}
		}
		switch {
		case errors.Is(rerr, io.EOF):
			writeErr = fw.frame(frameEnd, nil)
			break stream
		case rerr != nil:
			readErr = rerr
			_ = fw.frame(frameAbort, nil)
			break stream
		}
	}
	if got == nil {
		select {
		case ans := <-answers:
			got = &ans
		case <-ctx.Done():
			return nil, "", ctx.Err()
		}
	}
	if readErr != nil {
		return archiveProblem(a.explain("read backup", readErr), ready.Version)
	}
	if got.err != nil {
		if writeErr != nil {
			return nil, "", fmt.Errorf("restore drill: the restorer went away: %w", writeErr)
		}
		return nil, "", fmt.Errorf("restore drill: no report from the restorer: %w", got.err)
	}
	r := got.report
	switch r.Outcome {
	case outcomeRestored:
		logf(o.Log, "verify %s: restored; comparing the row counts of %d tables", m.ID, len(r.Tables))
		return compareCounts(m, r.Tables, r.LargeObjects), ready.Version, nil
	case outcomeRestoreFailed:
		// A damaged object can show up as a failed restore before age notices; then the damage
		// is the finding.
		if derr := a.gate.drain(); derr != nil {
			return archiveProblem(a.explain("read backup", derr), ready.Version)
		}
		if scratchTrouble(r.SQLState) {
			return nil, "", fmt.Errorf("restore drill: the scratch server failed the restore for want of resources (SQLSTATE %s); see the restorer's log", r.SQLState)
		}
		return []problem{restoreFailedProblem(r)}, ready.Version, nil
	case outcomeCountFailed:
		if scratchTrouble(r.SQLState) || r.SQLState == "" {
			return nil, "", fmt.Errorf("restore drill: counting the restored rows failed (SQLSTATE %q); see the restorer's log", r.SQLState)
		}
		return []problem{newProblem(ReasonCountFailed, "counting the restored rows failed with SQLSTATE %s (%s)", r.SQLState, sqlStateMeaning(r.SQLState))}, ready.Version, nil
	case outcomeError:
		return nil, "", fmt.Errorf("restore drill: the restorer: %s", r.Error)
	}
	return nil, "", fmt.Errorf("restore drill: the restorer reported %q", r.Outcome)
}

// archiveProblem sorts a failure to stream the archive: damage is a finding about the backup,
// anything else (wrong key, storage, cancellation) an error.
func archiveProblem(err error, version string) ([]problem, string, error) {
	var mismatch *ChecksumMismatchError
	var missing *DataObjectMissingError
	var wrong *WrongIdentityError
	var unreachable *storage.UnreachableError
	switch {
	case errors.As(err, &mismatch):
		return []problem{mismatchProblem(mismatch)}, version, nil
	case errors.As(err, &missing):
		return []problem{missingProblem(missing.Object)}, version, nil
	case errors.As(err, &wrong), errors.As(err, &unreachable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return nil, "", err
	case strings.HasPrefix(err.Error(), "fetch backup"):
		return nil, "", err
	}
	// The object matched its manifest, yet does not decrypt or decompress: it was written wrong.
	return []problem{newProblem(ReasonArchiveUnreadable, "the stored object matches its manifest but does not decrypt and decompress")}, version, nil
}

// restoreFailedProblem summarizes a failed restore without any of the database's words.
func restoreFailedProblem(r drillReport) problem {
	var b strings.Builder
	b.WriteString("pg_restore failed")
	if sqlStateRE.MatchString(r.SQLState) {
		fmt.Fprintf(&b, " with SQLSTATE %s (%s)", r.SQLState, sqlStateMeaning(r.SQLState))
	}
	if r.ObjectType != "" && slices.Contains(tocTypes, r.ObjectType) {
		fmt.Fprintf(&b, " at %s %s", r.ObjectType, quoteName(r.ObjectName))
	}
	if r.SQLState == "42501" {
		b.WriteString("; the drill restores without superuser, which the backup needs")
	}
	b.WriteString("; nothing was restored")
	return problem{reason: ReasonRestoreFailed, summary: b.String()}
}

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

	"filippo.io/age"

	"github.com/tenantops/tenant-operator/internal/backup/pgcluster"
	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// ExportOptions for one export.
type ExportOptions struct {
	Store  storage.Store
	Tenant string
	// Schedule holds the backup; empty looks in every schedule of the tenant.
	Schedule string
	// BackupID is an id or catalog.Latest.
	BackupID string
	// Owners, when given, is catalog.WithTenantUIDs: only backups of these Tenant objects.
	Owners []catalog.ListOption
	// Trust is what the backup's signature must check against, as for a restore.
	Trust catalog.Trust
	// Identities read the backup: the platform's. They open a backup encrypted to them directly
	// (made before per-tenant keys) or unwrap the escrowed data key the backup was encrypted to.
	Identities []age.Identity
	// Recipients are the customer's age public keys, the only ones the archive is encrypted to.
	Recipients []string
	// PgBinDir holds pg_restore; see pgcluster.Find for the fallbacks.
	PgBinDir string
	Log      io.Writer
	Now      func() time.Time
}

// Export turns a stored backup into the archive a customer takes away and writes it to w:
// README.txt, dump.sql (the whole database as a plain SQL script), one CSV per table under tables/,
// manifest.json and SHA256SUMS, zipped and encrypted to the customer's recipients alone.
//
// The backup is checked as a restore checks it: its signature before anything is read, its
// stored object against the manifest's size and sha256 as it streams. pg_restore turns the
// custom-format archive into SQL without a server, twice: once whole for dump.sql, once data only,
// whose COPY blocks become the CSVs as they stream. Nothing is held whole and nothing in the clear
// touches a disk; memory is the pipes' and codecs' buffers whatever the database's size. What w
// receives is a whole archive only when Export returns nil: age authenticates its last chunk, so
// an export cut short by an error does not decrypt.
func Export(ctx context.Context, o ExportOptions, w io.Writer) (ExportManifest, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	recipients, fingerprints, err := ParseRecipients(o.Recipients)
	if err != nil {
		return ExportManifest{}, err
	}
	b, err := findExportedBackup(ctx, o)
	if err != nil {
		return ExportManifest{}, err
	}
	if len(o.Identities) == 0 {
		return ExportManifest{}, errors.New("no identity: pass --identity-file")
	}
	// As restore and verify do: a backup encrypted to the tenant's data key is opened through the
	// key's escrow copy, unwrapped with the platform identity; once the key is destroyed, this
	// fails with catalog.DataKeyDestroyedError before anything is downloaded.
	if o.Identities, err = identitiesFor(ctx, o.Store, b.Manifest, o.Identities); err != nil {
		return ExportManifest{}, err
	}
	pgRestore, err := pgcluster.Find(o.PgBinDir, b.PostgresMajor, "pg_restore")
	if err != nil {
		return ExportManifest{}, err
	}
	m := ExportManifest{
		FormatVersion: ExportFormatVersion, Tenant: b.Tenant, TenantUID: b.TenantUID, Schedule: b.Schedule, BackupID: b.ID,
		BackupStartedAt: b.StartedAt, BackupFinishedAt: b.FinishedAt, Database: b.Database,
		PostgresVersion: b.PostgresVersion, PgDumpVersion: b.PgDumpVersion, ExportedAt: now().UTC().Truncate(time.Second),
		CSV: exportCSVFormat, LargeObjects: b.LargeObjects, Recipients: fingerprints, Tables: []ExportTable{},
	}
	arch, err := newExportArchive(w, recipients, m.ExportedAt)
	if err != nil {
		return m, err
	}
	if err := writeEntry(arch, exportReadme, []byte(exportReadmeText)); err != nil {
		return m, err
	}

	logf(o.Log, "export %s of %s/%s: dump.sql", b.ID, b.Tenant, b.Schedule)
	start := time.Now()
	err = restorePass(ctx, o, b.Manifest, pgRestore, []string{"--no-owner", "--no-privileges"}, func(script io.Reader) error {
		entry, err := arch.create(exportDump)
		if err != nil {
			return err
		}
		if _, err := io.Copy(entry, script); err != nil {
			return fmt.Errorf("write %s: %w", exportDump, err)
		}
		return nil
	})
	if err != nil {
		return m, err
	}
	logf(o.Log, "export %s: dump.sql done in %s; tables", b.ID, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	err = restorePass(ctx, o, b.Manifest, pgRestore, []string{"--data-only"}, func(script io.Reader) error {
		var err error
		m.Tables, m.Encoding, err = writeTables(arch, script)
		return err
	})
	if err != nil {
		return m, err
	}
	if err := compareExportedRows(b.Manifest, m.Tables); err != nil {
		return m, err
	}
	logf(o.Log, "export %s: %d tables done in %s", b.ID, len(m.Tables), time.Since(start).Round(time.Millisecond))

	arch.finish()
	m.Files = append([]ExportFile(nil), arch.files...)
	manifest, err := m.encode()
	if err != nil {
		return m, err
	}
	if err := writeEntry(arch, exportManifest, manifest); err != nil {
		return m, err
	}
	arch.finish()
	if err := writeEntry(arch, exportSums, sha256Sums(arch.files)); err != nil {
		return m, err
	}
	return m, arch.close()
}

// findExportedBackup is catalog.GetTrusted, looking in every schedule of the tenant when none is
// named.
func findExportedBackup(ctx context.Context, o ExportOptions) (catalog.Backup, error) {
	schedule := o.Schedule
	if schedule == "" {
		if err := catalog.ValidateName("tenant", o.Tenant); err != nil {
			return catalog.Backup{}, err
		}
		entries, err := catalog.ListEntries(ctx, o.Store, o.Tenant, "", o.Owners...)
		if err != nil {
			return catalog.Backup{}, err
		}
		var found *catalog.Entry
		for i, e := range entries {
			switch {
			case o.BackupID == catalog.Latest && e.Physical != nil:
				// A physical base backup is no dump: the latest export is of the latest dump.
			case o.BackupID == catalog.Latest:
				if found == nil || e.StartedAt.After(found.StartedAt) {
					found = &entries[i]
				}
			case e.ID == o.BackupID && found != nil:
				return catalog.Backup{}, fmt.Errorf("backup %q exists in schedules %s and %s of tenant %s; name one with --schedule", o.BackupID, found.Schedule, e.Schedule, o.Tenant)
			case e.ID == o.BackupID:
				found = &entries[i]
			}
		}
		switch {
		case found == nil && o.BackupID == catalog.Latest:
			return catalog.Backup{}, fmt.Errorf("no logical backups (dumps) found for tenant %s in %s", o.Tenant, o.Store)
		case found == nil:
			return catalog.Backup{}, fmt.Errorf("backup %q not found for tenant %s in any schedule in %s", o.BackupID, o.Tenant, o.Store)
		}
		schedule = found.Schedule
		o.BackupID = found.ID
	}
	b, err := catalog.GetTrusted(ctx, o.Store, o.Tenant, schedule, o.BackupID, o.Trust, o.Owners...)
	if err == nil && b.Physical != nil {
		return b, fmt.Errorf("backup %s is a physical base backup; an export is made from a logical backup (a dump): name one, or restore this one with --data-dir and take a dump of it", b.ID)
	}
	return b, err
}

func writeEntry(arch *exportArchive, name string, data []byte) error {
	w, err := arch.create(name)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// writeTables writes one CSV entry per COPY block of a data-only script, and returns the tables
// and the script's encoding.
func writeTables(arch *exportArchive, script io.Reader) ([]ExportTable, string, error) {
	sc := newCopyScanner(script)
	tables := []ExportTable{}
	var names tableFileNames
	bw := bufio.NewWriterSize(nil, 64<<10)
	for {
		t, err := sc.next()
		if errors.Is(err, io.EOF) {
			return tables, sc.encoding, nil
		}
		if err != nil {
			return nil, "", fmt.Errorf("read pg_restore's script: %w", err)
		}
		name := names.name(t.Schema, t.Table)
		entry, err := arch.create(name)
		if err != nil {
			return nil, "", err
		}
		bw.Reset(entry)
		writeCSVHeader(bw, t.Columns)
		rows, err := sc.convert(bw, len(t.Columns))
		if err != nil {
			return nil, "", fmt.Errorf("table %s: %w", quoteName(t.Schema+"."+t.Table), err)
		}
		if err := bw.Flush(); err != nil {
			return nil, "", fmt.Errorf("write %s: %w", name, err)
		}
		tables = append(tables, ExportTable{Schema: t.Schema, Name: t.Table, File: name, Columns: orEmpty(t.Columns), Rows: rows})
	}
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// compareExportedRows holds the CSVs to the backup's manifest, whose counts were taken in the
// dump's own snapshot: every table it lists has a CSV with exactly its rows. A table outside the
// manifest (an extension's configuration table, whose rows pg_dump writes too) is exported as it is.
func compareExportedRows(m catalog.Manifest, tables []ExportTable) error {
	got := map[[2]string]int64{}
	for _, t := range tables {
		got[[2]string{t.Schema, t.Name}] = t.Rows
	}
	var problems []string
	for _, t := range m.Tables {
		n, ok := got[[2]string{t.Schema, t.Name}]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("table %s has no data in the backup", quoteName(t.QualifiedName())))
		case n != t.Rows:
			problems = append(problems, fmt.Sprintf("table %s has %d rows in its CSV, the backup's manifest says %d", quoteName(t.QualifiedName()), n, t.Rows))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("export of backup %s does not match its manifest: %s", m.ID, summary(problems))
	}
	return nil
}

// restorePass streams the backup (storage, checksum gate, age, zstd) into pg_restore, which writes
// an SQL script to its standard output without a server, and hands the script to consume. It
// returns nil only once consume is done and the whole stored object has matched its manifest.
func restorePass(ctx context.Context, o ExportOptions, m catalog.Manifest, pgRestore string, args []string, consume func(io.Reader) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a, err := openArchive(ctx, o.Store, m, o.Identities)
	if err != nil {
		return err
	}
	defer a.Close()

	cmd := exec.CommandContext(ctx, pgRestore, append(args, "--file=-")...)
	// pg_restore writes a script and connects to nothing: it gets no credential, and none of the
	// PG* variables that could change what it writes.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
	stderr := newTailBuffer(16 << 10)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("pg_restore: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("pg_restore: %w", err)
	}
	growPipe(stdin)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start pg_restore: %w", err)
	}
	fed := make(chan error, 1)
	go func() {
		w := &trackedWriter{w: stdin}
		_, err := io.Copy(w, a)
		_ = stdin.Close()
		if err != nil && !w.failed {
			cancel() // pg_restore must not take a cut-off archive for a whole one
			fed <- err
			return
		}
		fed <- nil // fed whole, or pg_restore stopped reading: it is done with what it needs
	}()
	consumeErr := consume(bufio.NewReaderSize(stdout, 64<<10))
	if consumeErr != nil {
		cancel()
	}
	_, _ = io.Copy(io.Discard, stdout) // what is left once consume has failed, so Wait can return
	waitErr := cmd.Wait()
	readErr := <-fed
	switch {
	case readErr != nil:
		return a.explain("read backup", readErr)
	case consumeErr != nil:
		return consumeErr
	case waitErr != nil:
		return a.explain("pg_restore failed", errors.New(stderrOr(stderr, waitErr)))
	}
	// pg_restore may stop reading before the archive's end; the rest must match the manifest too.
	if _, err := io.Copy(io.Discard, a); err != nil {
		return a.explain("read backup", err)
	}
	return nil
}

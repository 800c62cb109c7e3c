package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommand("export", "export --storage LOCATION --tenant T [--schedule S] --backup ID|latest --identity-file F --recipient AGE_PUBLIC_KEY... (-o FILE|- | --output-storage LOCATION [--export-id ID])", stderr)
	sel := fs.selectBackup()
	identityFile := fs.String("identity-file", "", "the platform's age identity file (AGE-SECRET-KEY-...): it reads a backup encrypted to it, or unwraps the escrowed tenant data key a backup is encrypted to")
	var recipients stringList
	fs.Var(&recipients, "recipient", "the customer's age public key (age1...) the export is encrypted to, and no one else's (repeatable)")
	output := fs.String("o", "", "write the encrypted archive to this file, or - for standard output")
	outputStorage := fs.String("output-storage", "", "store the encrypted archive in this location (see backup -h) as <tenant>/exports/<export-id>.age, with a record <export-id>.json written once it is whole; credentials from $"+storage.EnvOutputAccessKeyID+" and $"+storage.EnvOutputSecretAccessKey+" (the export job reads with one credential and writes with another), else the usual AWS variables")
	exportID := fs.String("export-id", "", "id of the export in --output-storage (default: a new one from the time)")
	pgBin := fs.String("pg-bin-dir", "", "directory holding pg_restore (default $PG_BIN_DIR, then /usr/lib/postgresql/<backup's major>/bin, then PATH)")
	tf := fs.trustBackups()
	verbose := fs.Bool("v", false, "print progress on stderr")
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := fs.required("storage", "tenant", "backup", "identity-file", "recipient"); err != nil {
		return err
	}
	if (*output == "") == (*outputStorage == "") {
		return usageError("export: pass either -o FILE (- for standard output) or --output-storage LOCATION (see tenant-operator export -h)")
	}
	if *exportID != "" && *outputStorage == "" {
		return usageError("export: --export-id goes with --output-storage")
	}
	if *sel.schedule != "" {
		if err := catalog.ValidateName("schedule", *sel.schedule); err != nil {
			return usageError("export: " + err.Error())
		}
	}
	if _, _, err := ParseRecipients(recipients); err != nil {
		return usageError("export: " + err.Error())
	}
	trust, err := tf.trust()
	if err != nil {
		return err
	}
	ids, err := ReadIdentities(*identityFile)
	if err != nil {
		return err
	}
	store, err := storage.Open(ctx, *sel.storage)
	if err != nil {
		return err
	}
	o := ExportOptions{Store: store, Tenant: *sel.tenant, Schedule: *sel.schedule, BackupID: *sel.id, Owners: sel.owners(),
		Trust: trust, Identities: ids, Recipients: recipients, PgBinDir: *pgBin, Log: progress(*verbose, stderr)}

	var m ExportManifest
	var where string
	var size int64
	var sum string
	switch {
	case *outputStorage != "":
		id := *exportID
		if id == "" {
			id = catalog.NewID(time.Now())
		}
		if err := catalog.ValidateName("export id", id); err != nil {
			return usageError("export: " + err.Error())
		}
		out, err := openOutputStore(ctx, *outputStorage)
		if err != nil {
			return err
		}
		var rec catalog.ExportRecord
		m, rec, err = exportToStore(ctx, o, out, id)
		if err != nil {
			return explainRefusal(err, trust)
		}
		where, size, sum = out.String()+" "+rec.Object, rec.Size, rec.SHA256
	case *output == "-":
		cw := &countingWriter{w: stdout, h: sha256.New()}
		if m, err = Export(ctx, o, cw); err != nil {
			return explainRefusal(err, trust)
		}
		where, size, sum = "standard output", cw.n, hex.EncodeToString(cw.h.Sum(nil))
		stdout = stderr // the summary must not end up in the archive
	default:
		if m, size, sum, err = exportToFile(ctx, o, *output); err != nil {
			return explainRefusal(err, trust)
		}
		where = *output
	}
	var rows int64
	for _, t := range m.Tables {
		rows += t.Rows
	}
	fmt.Fprintf(stdout, "export of backup %s (tenant %s, schedule %s): %d tables, %d rows, %s encrypted to the customer's %d recipient(s), sha256 %s, written to %s\n",
		m.BackupID, m.Tenant, m.Schedule, len(m.Tables), rows, humanBytes(size), len(m.Recipients), sum, where)
	return nil
}

// exportToFile writes the archive to a file beside path and renames it into place once whole, so
// that path never holds a cut-off export.
func exportToFile(ctx context.Context, o ExportOptions, path string) (ExportManifest, int64, string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return ExportManifest{}, 0, "", fmt.Errorf("export: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	cw := &countingWriter{w: f, h: sha256.New()}
	m, err := Export(ctx, o, cw)
	if err != nil {
		return m, 0, "", err
	}
	if err := f.Sync(); err != nil {
		return m, 0, "", fmt.Errorf("export: %w", err)
	}
	if err := f.Close(); err != nil {
		return m, 0, "", fmt.Errorf("export: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return m, 0, "", fmt.Errorf("export: %w", err)
	}
	done = true
	return m, cw.n, hex.EncodeToString(cw.h.Sum(nil)), nil
}

// exportToStore streams the archive into storage as it is made and records it once stored whole.
// The store shows the archive only once it is complete (storage.Store's Put), and the record
// comes after it: an export that failed leaves neither.
func exportToStore(ctx context.Context, o ExportOptions, out storage.Store, id string) (ExportManifest, catalog.ExportRecord, error) {
	pr, pw := io.Pipe()
	type result struct {
		m   ExportManifest
		sum string
		err error
	}
	done := make(chan result, 1)
	go func() {
		cw := &countingWriter{w: pw, h: sha256.New()}
		m, err := Export(ctx, o, cw)
		_ = pw.CloseWithError(err) // nil: the end of the archive
		done <- result{m, hex.EncodeToString(cw.h.Sum(nil)), err}
	}()
	key := catalog.ExportObject(o.Tenant, id)
	n, putErr := out.Put(ctx, key, pr)
	_ = pr.CloseWithError(errStorageStopped) // unblocks Export when Put failed
	res := <-done
	switch {
	case res.err != nil && !errors.Is(res.err, errStorageStopped):
		return res.m, catalog.ExportRecord{}, res.err // Put failed because Export did
	case putErr != nil:
		return res.m, catalog.ExportRecord{}, fmt.Errorf("store export %s: %w", key, putErr)
	case res.err != nil:
		return res.m, catalog.ExportRecord{}, res.err
	}
	rec := catalog.ExportRecord{FormatVersion: ExportFormatVersion, ID: id, Tenant: res.m.Tenant, TenantUID: res.m.TenantUID, Schedule: res.m.Schedule,
		BackupID: res.m.BackupID, ExportedAt: res.m.ExportedAt, Object: key, Size: n, SHA256: res.sum,
		Recipients: res.m.Recipients, Tables: len(res.m.Tables)}
	for _, t := range res.m.Tables {
		rec.Rows += t.Rows
	}
	if err := catalog.WriteExportRecord(ctx, out, rec); err != nil {
		return res.m, rec, err
	}
	return res.m, rec, nil
}

// errStorageStopped is what Export's writes get once the storage has stopped reading its stream.
var errStorageStopped = errors.New("the storage stopped reading the export")

// openOutputStore opens the export's destination with the output credential when one is set.
func openOutputStore(ctx context.Context, location string) (storage.Store, error) {
	loc, err := storage.ParseLocation(location)
	if err != nil {
		return nil, err
	}
	creds, ok := storage.OutputCredentialsFromEnv()
	if loc.Scheme != storage.SchemeS3 || !ok {
		return storage.Open(ctx, location)
	}
	return storage.OpenS3(ctx, loc, creds)
}

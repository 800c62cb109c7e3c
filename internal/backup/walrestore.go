package backup

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"filippo.io/age"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// WALRestoreOptions for restoring one file, as restore_command.
type WALRestoreOptions struct {
	Store  storage.Store
	Tenant string
	// SystemID names the cluster whose archive to read; empty reads it from DataDir's control
	// file, which during recovery is the base backup's.
	SystemID string
	// Name is the file wanted (restore_command's %f), Path where to write it (%p, relative to
	// DataDir).
	Name, Path string
	// DataDir is the data directory being recovered; empty is the working directory, where
	// PostgreSQL runs restore_command.
	DataDir    string
	Identities []age.Identity
	// Trust is what the file's description must be signed by.
	Trust catalog.Trust
	Log   io.Writer
}

// RestoreWAL fetches one archived file, checks it against its signed description (the stored
// object's size and sha256, then the plain file's), decrypts it and writes it to Path, which
// appears only once it is whole and checked. A file that is not archived (the normal end of
// recovery) is an error for which catalog.IsNotArchived is true.
func RestoreWAL(ctx context.Context, o WALRestoreOptions) (catalog.WALInfo, error) {
	if err := catalog.ValidateName("tenant", o.Tenant); err != nil {
		return catalog.WALInfo{}, err
	}
	n, err := catalog.ParseWALName(o.Name)
	if err != nil {
		return catalog.WALInfo{}, err
	}
	dataDir := o.DataDir
	if dataDir == "" {
		dataDir = "."
	}
	systemID := o.SystemID
	if systemID == "" {
		if systemID, err = SystemIDOf(dataDir); err != nil {
			return catalog.WALInfo{}, err
		}
	} else if err := catalog.ValidateSystemID(systemID); err != nil {
		return catalog.WALInfo{}, err
	}
	if len(o.Identities) == 0 {
		return catalog.WALInfo{}, fmt.Errorf("no identity: pass --identity-file")
	}
	start := time.Now()
	info, err := catalog.ReadWALInfo(ctx, o.Store, o.Tenant, systemID, n, o.Trust)
	if err != nil {
		return info, err
	}
	// A file encrypted to a tenant data key opens through the key's escrow copy, with the
	// platform identity, as backups do.
	ids, err := identitiesFor(ctx, o.Store, catalog.Manifest{ID: o.Name, Tenant: o.Tenant, TenantUID: info.TenantUID,
		DataKeyID: info.DataKeyID, Recipients: info.Recipients}, o.Identities)
	if err != nil {
		return info, err
	}
	a, err := openSealed(ctx, o.Store, o.Name, catalog.WALObjectKey(o.Tenant, systemID, n), info.Object, info.Recipients, ids)
	if err != nil {
		return info, fmt.Errorf("WAL file %s: %w", o.Name, err)
	}
	defer a.Close()

	dest := o.Path
	if !filepath.IsAbs(dest) {
		dest = filepath.Join(dataDir, dest)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tenantops-*")
	if err != nil {
		return info, fmt.Errorf("restore %s: %w", o.Name, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	h := sha256.New()
	written, err := io.Copy(io.MultiWriter(tmp, h), &holdLastByte{br: bufio.NewReaderSize(a, 256<<10)})
	if err != nil {
		tmp.Close()
		return info, fmt.Errorf("WAL file %s: %w", o.Name, a.explain("read", err))
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != info.SHA256 || written != info.Size {
		tmp.Close()
		return info, fmt.Errorf("WAL file %s decrypts to sha256 %s, %d bytes; its description says %s, %d bytes", o.Name, sum, written, info.SHA256, info.Size)
	}
	if err := tmp.Close(); err != nil {
		return info, fmt.Errorf("restore %s: %w", o.Name, err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return info, fmt.Errorf("restore %s: %w", o.Name, err)
	}
	logf(o.Log, "wal-restore: %s restored in %s", o.Name, time.Since(start).Round(time.Millisecond))
	return info, nil
}

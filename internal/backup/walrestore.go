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
	"sync"
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
	// Spool, when set, is the directory (relative to DataDir) where the restore that started
	// the server prefetches segments (see walPrefetcher): a segment found there, checked
	// already, is moved into place instead of fetched.
	Spool string
	Log   io.Writer
}

// RestoreWAL fetches one archived file, checks it against its signed description (the stored
// object's size and sha256, then the plain file's), decrypts it and writes it to Path, which
// appears only once it is whole and checked. A file that is not archived (the normal end of
// recovery) is an error for which catalog.IsNotArchived is true. With o.Spool, a segment the
// restore prefetched there is taken instead (RestoreSpooled); the WALInfo returned then holds only
// its name.
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
	if RestoreSpooled(o) {
		return catalog.WALInfo{Name: o.Name}, nil
	}
	start := time.Now()
	dest := resolve(dataDir, o.Path)
	info, err := fetchWAL(ctx, walSource{Store: o.Store, Tenant: o.Tenant, SystemID: systemID, Identities: o.Identities, Trust: o.Trust}, n, dest, nil)
	if err != nil {
		return info, err
	}
	logf(o.Log, "wal-restore: %s restored in %s", o.Name, time.Since(start).Round(time.Millisecond))
	return info, nil
}

// RestoreSpooled is RestoreWAL's first step when o.Spool is set, which needs neither storage nor
// keys (what is spooled was checked with them): it writes o.Name to o.Path from the prefetch spool
// and returns true, or returns false when the spool does not hold it (not prefetched, not yet,
// or the prefetch failed), and RestoreWAL must fetch it.
func RestoreSpooled(o WALRestoreOptions) bool {
	n, err := catalog.ParseWALName(o.Name)
	if err != nil || o.Spool == "" {
		return false
	}
	dataDir := o.DataDir
	if dataDir == "" {
		dataDir = "."
	}
	start := time.Now()
	served, err := takeSpooled(resolve(dataDir, o.Spool), n, resolve(dataDir, o.Path))
	if err != nil {
		// The spool is only a shortcut: fetch the file as if there were none.
		logf(o.Log, "wal-restore: %s: prefetched copy not used: %v", o.Name, err)
	}
	if served {
		logf(o.Log, "wal-restore: %s restored from the prefetch spool in %s", o.Name, time.Since(start).Round(time.Millisecond))
	}
	return served
}

// walSource is where archived WAL files come from and what they are checked against.
type walSource struct {
	Store            storage.Store
	Tenant, SystemID string
	Identities       []age.Identity
	Trust            catalog.Trust
	// keys, when set, keeps the identities opened for each data key, so that a run of files
	// encrypted to the same key reads and unwraps its escrow copy once.
	keys *keyCache
}

// fetchWAL fetches one archived file, checks it against its signed description (the stored
// object's size and sha256, then the plain file's), decrypts it and writes it to dest, which
// appears only once it is whole and checked: it is written beside it under a temporary name, and
// renamed. prepare, when set, runs on the temporary file once checked, before the rename (to hand
// it to the server's user). A file that is not archived is an error for which
// catalog.IsNotArchived is true.
func fetchWAL(ctx context.Context, src walSource, n catalog.WALName, dest string, prepare func(*os.File) error) (catalog.WALInfo, error) {
	info, err := catalog.ReadWALInfo(ctx, src.Store, src.Tenant, src.SystemID, n, src.Trust)
	if err != nil {
		return info, err
	}
	// A file encrypted to a tenant data key opens through the key's escrow copy, with the
	// platform identity, as backups do.
	ids, err := src.keys.identities(ctx, src.Store, catalog.Manifest{ID: n.Name, Tenant: src.Tenant, TenantUID: info.TenantUID,
		DataKeyID: info.DataKeyID, Recipients: info.Recipients}, src.Identities)
	if err != nil {
		return info, err
	}
	a, err := openSealed(ctx, src.Store, n.Name, catalog.WALObjectKey(src.Tenant, src.SystemID, n), info.Object, info.Recipients, ids)
	if err != nil {
		return info, fmt.Errorf("WAL file %s: %w", n.Name, err)
	}
	defer a.Close()

	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tenantops-*")
	if err != nil {
		return info, fmt.Errorf("restore %s: %w", n.Name, err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	h := sha256.New()
	written, err := io.Copy(io.MultiWriter(tmp, h), &holdLastByte{br: bufio.NewReaderSize(a, 256<<10)})
	if err != nil {
		tmp.Close()
		return info, fmt.Errorf("WAL file %s: %w", n.Name, a.explain("read", err))
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != info.SHA256 || written != info.Size {
		tmp.Close()
		return info, fmt.Errorf("WAL file %s decrypts to sha256 %s, %d bytes; its description says %s, %d bytes", n.Name, sum, written, info.SHA256, info.Size)
	}
	if prepare != nil {
		if err := prepare(tmp); err != nil {
			tmp.Close()
			return info, fmt.Errorf("restore %s: %w", n.Name, err)
		}
	}
	if err := tmp.Close(); err != nil {
		return info, fmt.Errorf("restore %s: %w", n.Name, err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return info, fmt.Errorf("restore %s: %w", n.Name, err)
	}
	return info, nil
}

// keyCache keeps the identities that open files encrypted to a tenant data key, by key id.
// A nil keyCache keeps nothing.
type keyCache struct {
	mu  sync.Mutex
	ids map[string][]age.Identity
}

func (c *keyCache) identities(ctx context.Context, store storage.Store, m catalog.Manifest, ids []age.Identity) ([]age.Identity, error) {
	if c == nil || m.DataKeyID == "" {
		return identitiesFor(ctx, store, m, ids)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if got, ok := c.ids[m.DataKeyID]; ok {
		return got, nil
	}
	got, err := identitiesFor(ctx, store, m, ids)
	if err != nil {
		return nil, err
	}
	if c.ids == nil {
		c.ids = map[string][]age.Identity{}
	}
	c.ids[m.DataKeyID] = got
	return got, nil
}

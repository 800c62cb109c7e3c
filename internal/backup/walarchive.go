package backup

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/tenantops/tenant-operator/internal/catalog"
	"github.com/tenantops/tenant-operator/internal/datakey"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// WALArchiveOptions for archiving one file, as archive_command.
type WALArchiveOptions struct {
	Store     storage.Store
	Tenant    string
	TenantUID string
	// Recipients are age public keys, as for backups; not with DataKey.
	Recipients []string
	// DataKey, when set, is the tenant's data key: the file is encrypted to it only, and its
	// wrapped copy is stored in the same location. Needs TenantUID.
	DataKey *datakey.Key
	// SigningKey signs the file's description; nil archives it unsigned, and restores refuse
	// it unless told to accept unsigned files.
	SigningKey ed25519.PrivateKey
	// Path is the file (archive_command's %p, relative to DataDir), Name its name (%f).
	Path, Name string
	// DataDir is the cluster's data directory; empty is the working directory, where PostgreSQL
	// runs archive_command.
	DataDir   string
	ZstdLevel zstd.EncoderLevel
	Log       io.Writer
	Now       func() time.Time
}

// WALConflictError refuses to archive a file whose name is archived already with other content.
// It never resolves itself: PostgreSQL keeps the file and retries, and someone must look.
type WALConflictError struct {
	Name, Key        string
	Have, Want       string
	HaveSize, Stored int64
}

func (e *WALConflictError) Error() string {
	return fmt.Sprintf("WAL file %s is archived already with other content (%s: sha256 %s, %d bytes; here sha256 %s, %d bytes); refusing to overwrite it: another server of the same system and timeline archives to this place, or the archive was copied from elsewhere",
		e.Name, e.Key, e.Have, e.HaveSize, e.Want, e.Stored)
}

// ArchiveWAL archives one WAL file: compressed, encrypted, uploaded, then described in a signed
// sidecar that makes it count (see catalog.WALDir). It is idempotent: a file archived already with
// the same content succeeds at once (PostgreSQL may ask again after a crash between our upload and
// its bookkeeping), with other content it fails (WALConflictError) and nothing is overwritten.
// Any failure leaves nothing that counts, and PostgreSQL, seeing a non-zero exit, keeps the file
// and tries again.
func ArchiveWAL(ctx context.Context, o WALArchiveOptions) (info catalog.WALInfo, already bool, err error) {
	if err := catalog.ValidateName("tenant", o.Tenant); err != nil {
		return info, false, err
	}
	if _, err := catalog.ParseWALName(o.Name); err != nil {
		return info, false, err
	}
	if filepath.Base(o.Path) != o.Name {
		return info, false, fmt.Errorf("path %q does not name WAL file %s (want archive_command's %%p %%f)", o.Path, o.Name)
	}
	dataDir := o.DataDir
	if dataDir == "" {
		dataDir = "."
	}
	systemID, err := SystemIDOf(dataDir)
	if err != nil {
		return info, false, err
	}
	path := o.Path
	if !filepath.IsAbs(path) {
		path = filepath.Join(dataDir, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return info, false, fmt.Errorf("open WAL file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return info, false, fmt.Errorf("open WAL file: %w", err)
	}
	return ArchiveWALContent(ctx, o, WALContent{SystemID: systemID, Data: f, Size: fi.Size(), WrittenAt: fi.ModTime(), origin: "the cluster in " + dataDir})
}

// WALContent is a WAL file's bytes from somewhere other than the data directory: a segment that
// wal-receive assembled in memory from the replication stream, or a timeline history the server
// sent. The replication connection, not a control file, says whose it is.
type WALContent struct {
	SystemID  string
	Data      io.ReaderAt
	Size      int64
	WrittenAt time.Time
	// origin names where SystemID came from, for the error about a segment of another system.
	origin string
}

// ArchiveWALContent is ArchiveWAL for content held in memory: o.Name names it, o.Path and
// o.DataDir are not used. Everything else (checks, idempotency, encryption, the signed
// description that makes it count) is ArchiveWAL's.
func ArchiveWALContent(ctx context.Context, o WALArchiveOptions, c WALContent) (info catalog.WALInfo, already bool, err error) {
	if err := catalog.ValidateName("tenant", o.Tenant); err != nil {
		return info, false, err
	}
	n, err := catalog.ParseWALName(o.Name)
	if err != nil {
		return info, false, err
	}
	if c.SystemID == "" || c.Data == nil {
		return info, false, fmt.Errorf("WAL file %s: no system identifier or no content", o.Name)
	}
	keys, err := encryptionKeys(o.Recipients, o.DataKey, o.TenantUID)
	if err != nil {
		return info, false, err
	}
	recipients, fingerprints, err := ParseRecipients(keys)
	if err != nil {
		return info, false, err
	}
	if c.origin == "" {
		c.origin = "the replication connection"
	}
	systemID := c.SystemID
	whole := func() io.Reader { return io.NewSectionReader(c.Data, 0, c.Size) }
	info = catalog.WALInfo{Tenant: o.Tenant, TenantUID: o.TenantUID, SystemID: systemID, Name: o.Name, Timeline: n.Timeline, Recipients: fingerprints}
	if n.Kind == catalog.WALSegment || n.Kind == catalog.WALPartial {
		h, err := readSegmentHeader(c.Data, o.Name)
		if err != nil {
			return info, false, err
		}
		if h.systemID != systemID {
			return info, false, fmt.Errorf("WAL file %s belongs to system %s, but %s is system %s", o.Name, h.systemID, c.origin, systemID)
		}
		if n.Kind == catalog.WALSegment && c.Size != h.segSize {
			return info, false, fmt.Errorf("WAL segment %s is %d bytes, but its header says segments are %d", o.Name, c.Size, h.segSize)
		}
		info.SegmentSize = h.segSize
	}
	if n.Kind == catalog.WALTimelineHistory {
		if info.History, err = readHistory(whole(), o.Name); err != nil {
			return info, false, err
		}
	}

	sidecarKey := catalog.WALSidecarKey(o.Tenant, systemID, n)
	// With a signing key, only a description it signed counts as archived: PostgreSQL deletes its
	// copy of a file this says is archived.
	existing, err := catalog.ReadWALInfo(ctx, o.Store, o.Tenant, systemID, n, catalog.Trust{AllowUnsigned: o.SigningKey == nil, Keys: trustedSelf(o.SigningKey)})
	switch {
	case err == nil:
		// So must its data be there, whole; a description whose data is gone or cut is archived
		// again, from the copy PostgreSQL still holds.
		obj, statErr := o.Store.Stat(ctx, catalog.WALObjectKey(o.Tenant, systemID, n))
		switch {
		case statErr == nil && obj.Size == existing.Object.Size:
			return sameAsArchived(whole(), existing, sidecarKey)
		case statErr != nil && !errors.Is(statErr, storage.ErrNotFound):
			return info, false, fmt.Errorf("check the archived data of %s: %w", o.Name, statErr)
		}
	case errors.Is(err, storage.ErrAccessDenied):
		return info, false, fmt.Errorf("%w; archiving reads back what it archived to stay idempotent, so its credential needs s3:GetObject on %s/*", err, catalog.WALPrefix(o.Tenant, ""))
	case !catalog.IsNotArchived(err):
		var se *catalog.WALSignatureError
		if errors.As(err, &se) {
			return info, false, fmt.Errorf("WAL file %s has a description here that this archiver's key did not sign; refusing to overwrite it: %w", o.Name, err)
		}
		return info, false, fmt.Errorf("check whether %s is archived: %w", o.Name, err)
	}

	if o.DataKey != nil {
		// Every location that holds WAL encrypted to a key holds that key (one HEAD once stored;
		// a rotated key is stored with the first file encrypted to it).
		if err := catalog.WriteDataKey(ctx, o.Store, o.Tenant, o.TenantUID, *o.DataKey); err != nil {
			return info, false, err
		}
		info.DataKeyID = o.DataKey.ID
	}
	start := time.Now()
	level := o.ZstdLevel
	if level == 0 {
		level = zstd.SpeedFastest
	}
	plain := sha256.New()
	src := io.TeeReader(bufio.NewReaderSize(whole(), 256<<10), plain)
	pr, pw := io.Pipe()
	var pl *dumpPipeline
	produced := make(chan error, 1)
	go func() {
		var err error
		if pl, err = newDumpPipeline(src, pw, recipients, level); err == nil {
			if _, err = io.Copy(pl.enc, pl.dumped); err == nil {
				err = pl.finish()
			}
		}
		if err != nil {
			_ = pw.CloseWithError(err)
		} else {
			_ = pw.Close()
		}
		produced <- err
	}()
	objectKey := catalog.WALObjectKey(o.Tenant, systemID, n)
	size, putErr := o.Store.Put(ctx, objectKey, pr)
	if putErr != nil {
		_ = pr.CloseWithError(putErr)
	}
	if prodErr := <-produced; prodErr != nil && putErr == nil {
		return info, false, fmt.Errorf("compress and encrypt %s: %w", o.Name, prodErr)
	}
	if putErr != nil {
		return info, false, fmt.Errorf("upload %s: %w", o.Name, putErr)
	}
	if pl.dumped.n != c.Size {
		// PostgreSQL does not change a file it has handed to archive_command; if something did,
		// this copy is not the file.
		return info, false, fmt.Errorf("WAL file %s changed while it was archived (%d bytes read, %d expected)", o.Name, pl.dumped.n, c.Size)
	}
	info.Size, info.SHA256 = pl.dumped.n, hex.EncodeToString(plain.Sum(nil))
	info.Object = catalog.ObjectInfo{Name: o.Name + ".zst.age", Size: size, SHA256: hex.EncodeToString(pl.stored.h.Sum(nil)), Compression: "zstd", Encryption: "age"}
	info.ArchivedAt, info.WrittenAt = o.now().UTC(), c.WrittenAt.UTC()
	if err := catalog.WriteWALSidecar(ctx, o.Store, info, o.SigningKey); err != nil {
		return info, false, fmt.Errorf("describe %s: %w", o.Name, err)
	}
	logf(o.Log, "wal-archive: %s archived: %s, %s stored, in %s", o.Name, humanBytes(info.Size), humanBytes(size), time.Since(start).Round(time.Millisecond))
	return info, false, nil
}

func (o WALArchiveOptions) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// trustedSelf is the key that signs this archiver's descriptions, which its idempotency check
// trusts: a description someone else signed is not taken as ours.
func trustedSelf(key ed25519.PrivateKey) []ed25519.PublicKey {
	if key == nil {
		return nil
	}
	return []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}
}

// sameAsArchived compares a file with what its archived description says.
func sameAsArchived(f io.Reader, archived catalog.WALInfo, key string) (catalog.WALInfo, bool, error) {
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return archived, false, fmt.Errorf("read WAL file: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if sum != archived.SHA256 || n != archived.Size {
		return archived, false, &WALConflictError{Name: archived.Name, Key: key, Have: archived.SHA256, HaveSize: archived.Size, Want: sum, Stored: n}
	}
	return archived, true, nil
}

// maxHistorySize bounds what is read of a timeline history file: a line per timeline switch.
const maxHistorySize = 1 << 20

// readHistory parses a timeline history file: "parent-timeline<TAB>switch-LSN<TAB>reason" per
// line, comments and blank lines allowed.
func readHistory(f io.Reader, name string) ([]catalog.TimelineSwitch, error) {
	data, err := io.ReadAll(io.LimitReader(f, maxHistorySize))
	if err != nil {
		return nil, fmt.Errorf("read timeline history %s: %w", name, err)
	}
	var out []catalog.TimelineSwitch
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		tli, err := strconv.ParseUint(fields[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("timeline history %s: %q is not a timeline", name, fields[0])
		}
		lsn, err := catalog.ParseLSN(fields[1])
		if err != nil {
			return nil, fmt.Errorf("timeline history %s: %w", name, err)
		}
		out = append(out, catalog.TimelineSwitch{Parent: uint32(tli), Switch: lsn})
	}
	return out, nil
}

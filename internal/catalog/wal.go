package catalog

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/tenantops/tenant-operator/internal/storage"
)

// The WAL archive of a tenant, under the location's prefix:
//
//	<tenant>/wal/<system id>/<timeline>/<file>.zst.age   the file, zstd-compressed, age-encrypted
//	<tenant>/wal/<system id>/<timeline>/<file>.json      its description, signed; written last: the
//	                                                     file is archived once this exists
//
// <file> is PostgreSQL's name for it (archive_command's %f), <timeline> its first eight hex
// digits. <system id> is the database system identifier that initdb chose (pg_controldata's
// "Database system identifier"): a Tenant deleted and made again under the same name gets a new
// cluster whose WAL files have the same names as its predecessor's, and must not collide with
// them. A restored cluster keeps its source's identifier and continues on a new timeline.
//
// Under the tenant's prefix, so that the per-tenant credentials of storage-credentials.md reach
// it; "wal" is therefore not a valid schedule name.
const WALDir = "wal"

// Suffixes of a WAL file's two objects.
const (
	walObjectSuffix  = ".zst.age"
	walSidecarSuffix = ".json"
)

// walFormatVersion is the format of a WAL description, which does not follow the manifest's.
const walFormatVersion = 1

// walSigned is what a WAL description's signature says it signs.
const walSigned = "wal"

// WALInfo describes one archived WAL file; it is what the sidecar object holds, signed.
type WALInfo struct {
	Tenant    string `json:"tenant"`
	TenantUID string `json:"tenantUID,omitempty"`
	// SystemID is the cluster's database system identifier, in decimal.
	SystemID string `json:"systemIdentifier"`
	Name     string `json:"name"`
	Timeline uint32 `json:"timeline"`
	// SegmentSize is the cluster's WAL segment size, read from a segment's own header; zero for
	// files that are not segments.
	SegmentSize int64 `json:"segmentSize,omitempty"`
	// Size and SHA256 are the plain file's, what a restore must write back.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Object is the stored object: the file, zstd, then age.
	Object     ObjectInfo `json:"object"`
	Recipients []string   `json:"recipients"`
	// DataKeyID names the tenant data key the file is encrypted to, and only to, as a backup's
	// manifest does (see Manifest.DataKeyID); empty when encrypted to Recipients directly.
	DataKeyID  string    `json:"dataKeyID,omitempty"`
	ArchivedAt time.Time `json:"archivedAt"`
	// WrittenAt is when PostgreSQL last wrote the file (its modification time): every record in a
	// segment is older, and the next segment's records are younger. A restore to a time up to
	// the last archived segment's WrittenAt finds all the WAL it needs in the archive.
	WrittenAt time.Time `json:"writtenAt"`
	// History is a timeline history file's content: the switch points that led to Timeline,
	// oldest first. Kept here in plain text (it holds no data) so that the recoverable window can
	// follow timelines without a key.
	History []TimelineSwitch `json:"history,omitempty"`
}

// TimelineSwitch is one line of a timeline history file: timeline Parent ended at LSN Switch.
type TimelineSwitch struct {
	Parent uint32 `json:"parent"`
	Switch LSN    `json:"switch"`
}

// walSidecar is the stored form of WALInfo: its exact bytes and their signature, in one object so
// that a WAL file costs two writes, not three.
type walSidecar struct {
	FormatVersion int             `json:"formatVersion"`
	WAL           json.RawMessage `json:"wal"`
	Signature     json.RawMessage `json:"signature,omitempty"`
}

// WALPrefix is where a tenant's WAL archive lives; with a system id, that cluster's.
func WALPrefix(tenant, systemID string) string {
	if systemID == "" {
		return storage.Join(tenant, WALDir)
	}
	return storage.Join(tenant, WALDir, systemID)
}

// WALObjectKey is where an archived file's data lives.
func WALObjectKey(tenant, systemID string, n WALName) string {
	return storage.Join(WALPrefix(tenant, systemID), timelineDir(n.Timeline), n.Name+walObjectSuffix)
}

// WALSidecarKey is where an archived file's signed description lives.
func WALSidecarKey(tenant, systemID string, n WALName) string {
	return storage.Join(WALPrefix(tenant, systemID), timelineDir(n.Timeline), n.Name+walSidecarSuffix)
}

// ValidateSystemID checks a database system identifier: the decimal uint64 PostgreSQL prints.
func ValidateSystemID(id string) error {
	if id == "" || len(id) > 20 || strings.Trim(id, "0123456789") != "" {
		return fmt.Errorf("invalid system identifier %q: want the decimal number pg_controldata prints", id)
	}
	return nil
}

// EncodeWALSidecar is the sidecar object for info, signed with key unless key is nil.
func EncodeWALSidecar(info WALInfo, key ed25519.PrivateKey) ([]byte, error) {
	body, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	sc := walSidecar{FormatVersion: walFormatVersion, WAL: body}
	if key != nil {
		if sc.Signature, err = sign(body, walSigned, key); err != nil {
			return nil, err
		}
	}
	out, err := json.Marshal(sc)
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// DecodeWALSidecar reads a sidecar object and checks its signature against trust. A description
// whose signature does not check is returned with an error: it must not be restored.
func DecodeWALSidecar(data []byte, trust Trust) (WALInfo, SignatureStatus, error) {
	return decodeWALSidecar(data, &trust)
}

// decodeWALSidecar is DecodeWALSidecar; a nil trust checks nothing (SignatureUnchecked).
func decodeWALSidecar(data []byte, trust *Trust) (WALInfo, SignatureStatus, error) {
	var sc walSidecar
	if err := json.Unmarshal(data, &sc); err != nil {
		return WALInfo{}, SignatureInvalid, fmt.Errorf("WAL description is not valid JSON: %w", err)
	}
	if sc.FormatVersion < 1 || sc.FormatVersion > walFormatVersion {
		return WALInfo{}, SignatureUnchecked, fmt.Errorf("WAL description format version %d is not supported by this agent (knows 1 to %d)", sc.FormatVersion, walFormatVersion)
	}
	var info WALInfo
	if err := json.Unmarshal(sc.WAL, &info); err != nil {
		return WALInfo{}, SignatureInvalid, fmt.Errorf("WAL description is not valid JSON: %w", err)
	}
	if trust == nil {
		return info, SignatureUnchecked, nil
	}
	var sig []byte
	if len(sc.Signature) > 0 {
		sig = sc.Signature
	}
	status, reason := trust.checkSigned(walSigned, sc.WAL, sig)
	if !status.Trusted() {
		return info, status, &WALSignatureError{Name: info.Name, Status: status, Reason: reason}
	}
	return info, status, nil
}

// WALSignatureError refuses an archived WAL file whose description's signature does not check.
type WALSignatureError struct {
	Name   string
	Status SignatureStatus
	Reason string
}

func (e *WALSignatureError) Error() string {
	return fmt.Sprintf("archived WAL file %s is refused: %s", e.Name, e.Reason)
}

// ReadWALInfo reads and checks the description of an archived file, and that it describes what
// was asked for (a description copied to another file's place is refused). A file that is not
// archived, or whose upload never finished, is storage.ErrNotFound.
func ReadWALInfo(ctx context.Context, store storage.Store, tenant, systemID string, n WALName, trust Trust) (WALInfo, error) {
	return readWALInfo(ctx, store, tenant, systemID, n, &trust)
}

func readWALInfo(ctx context.Context, store storage.Store, tenant, systemID string, n WALName, trust *Trust) (WALInfo, error) {
	data, err := readSmall(ctx, store, WALSidecarKey(tenant, systemID, n), maxMetadataSize)
	if err != nil {
		return WALInfo{}, fmt.Errorf("read description of WAL file %s: %w", n.Name, err)
	}
	info, _, err := decodeWALSidecar(data, trust)
	if err != nil {
		return WALInfo{}, err
	}
	if info.Tenant != tenant || info.SystemID != systemID || info.Name != n.Name || info.Timeline != n.Timeline {
		return WALInfo{}, fmt.Errorf("the description stored for WAL file %s of tenant %s system %s describes %s of tenant %s system %s; it was moved or tampered with",
			n.Name, tenant, systemID, info.Name, info.Tenant, info.SystemID)
	}
	return info, nil
}

// WriteWALSidecar stores the description that makes an uploaded WAL file archived: write it only
// once the data object is stored whole.
func WriteWALSidecar(ctx context.Context, store storage.Store, info WALInfo, key ed25519.PrivateKey) error {
	n, err := ParseWALName(info.Name)
	if err != nil {
		return err
	}
	data, err := EncodeWALSidecar(info, key)
	if err != nil {
		return err
	}
	_, err = store.Put(ctx, WALSidecarKey(info.Tenant, info.SystemID, n), bytes.NewReader(data))
	return err
}

// WALFile is an archived file as a listing finds it, without reading it.
type WALFile struct {
	WALName
	SystemID string
	// Archived says the description exists: the file is complete and may be restored. A data
	// object without one is a killed upload (or one still running), not archived.
	Archived bool
	// HasObject says the data object exists.
	HasObject bool
	// ArchivedAt is when the description was stored: the file's content is older.
	ArchivedAt time.Time
	// Size is the stored data object's size.
	Size int64
	// History is a timeline history file's switch points (read only for those, and only when
	// the listing was given a trust their signature checks against, or none).
	History []TimelineSwitch
}

// ListWAL lists a tenant's WAL archive, every system's, ordered by system, timeline and name.
// Timeline history files are read (they are few and small) so that their switch points can be
// followed; with WithTrust, one whose signature does not check is an error.
func ListWAL(ctx context.Context, store storage.Store, tenant string, opts ...ListOption) ([]WALFile, error) {
	if err := ValidateName("tenant", tenant); err != nil {
		return nil, err
	}
	o := listOpts(opts)
	prefix := WALPrefix(tenant, "")
	objs, err := store.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list WAL archive of tenant %s: %w", tenant, err)
	}
	byKey := map[string]*WALFile{}
	var order []string
	for _, obj := range objs {
		rest := strings.TrimPrefix(obj.Key, prefix+"/")
		parts := strings.Split(rest, "/")
		if len(parts) != 3 || ValidateSystemID(parts[0]) != nil {
			continue
		}
		file := parts[2]
		var name string
		sidecar := strings.HasSuffix(file, walSidecarSuffix)
		switch {
		case sidecar:
			name = strings.TrimSuffix(file, walSidecarSuffix)
		case strings.HasSuffix(file, walObjectSuffix):
			name = strings.TrimSuffix(file, walObjectSuffix)
		default:
			continue
		}
		n, err := ParseWALName(name)
		if err != nil || timelineDir(n.Timeline) != parts[1] {
			continue
		}
		k := parts[0] + "/" + name
		f := byKey[k]
		if f == nil {
			f = &WALFile{WALName: n, SystemID: parts[0]}
			byKey[k] = f
			order = append(order, k)
		}
		if sidecar {
			f.Archived, f.ArchivedAt = true, obj.ModTime
		} else {
			f.HasObject, f.Size = true, obj.Size
		}
	}
	out := make([]WALFile, 0, len(order))
	for _, k := range order {
		f := *byKey[k]
		if f.Archived && f.Kind == WALTimelineHistory {
			info, err := readWALInfo(ctx, store, tenant, f.SystemID, f.WALName, o.trust)
			if err != nil {
				return nil, err
			}
			f.History = info.History
		}
		out = append(out, f)
	}
	// The store lists in key order, which is system, timeline, then name: what callers expect.
	return out, nil
}

// DeleteWAL removes archived files, each description first so that an interrupted deletion
// leaves a data object nobody restores, never a description whose data is gone.
func DeleteWAL(ctx context.Context, store storage.Store, tenant string, files []WALFile) (deleted int, err error) {
	for _, f := range files {
		for _, key := range []string{WALSidecarKey(tenant, f.SystemID, f.WALName), WALObjectKey(tenant, f.SystemID, f.WALName)} {
			if err := store.Delete(ctx, key); err != nil {
				return deleted, fmt.Errorf("delete WAL file %s: %w", path.Base(key), err)
			}
		}
		deleted++
	}
	return deleted, nil
}

// IsNotArchived tells a WAL file that is not (or not completely) in the archive, which is the
// normal end of recovery, from a failure to find out.
func IsNotArchived(err error) bool { return errors.Is(err, storage.ErrNotFound) }

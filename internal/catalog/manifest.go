// Package catalog is the layout of backups in storage, shared by the agent that writes them and
// the operator that checks and prunes them: manifests and verifications, listing, reading and
// deleting backups, and carrying out a retention decision.
//
// Storage layout, under the location's prefix:
//
//	<tenant>/<schedule>/<id>/backup.dump.zst.age   pg_dump -Fc, zstd-compressed, age-encrypted
//	<tenant>/<schedule>/<id>/base.tar.zst.age      or, for a physical backup, pg_basebackup's tar
//	<tenant>/<schedule>/<id>/backup_manifest.zst.age  and its backup_manifest (for incrementals)
//	<tenant>/<schedule>/<id>/manifest.json.sig     Ed25519 signature of manifest.json's bytes
//	<tenant>/<schedule>/<id>/manifest.json         written last: the backup exists once this does
//	<tenant>/<schedule>/<id>/verification.json     the latest verify result, if any
//	<tenant>/wal/...                               the WAL archive (see WALDir)
//	<tenant>/.keys/<tenantUID>/<keyID>.age         a tenant data key, wrapped to the platform (escrow)
//	<tenant>/.ledger/<tenantUID>/<time>-<request UID>.json  an erasure request, sealed to the tenant key, signed (see ledger.go)
//	<tenant>/.prunes/<tenantUID>/<schedule>/<time>-<random>.json  what one pruning run deleted and why (see records.go)
//	<tenant>/.restores/<tenantUID>/<time>-<random>.json  one restore and the erasure requests it replayed (see records.go)
package catalog

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/tenantops/tenant-operator/internal/datakey"
	"github.com/tenantops/tenant-operator/internal/storage"
)

// FormatVersion is written into every manifest of a logical backup. Readers refuse manifests of
// a newer format, so an old agent never misreads a backup that a newer one made. Version 2 added
// DataKeyID: an agent that knew only 1 would try the platform identity on data encrypted to a
// tenant key and call it the wrong identity.
const FormatVersion = 2

// PhysicalFormatVersion is what a physical backup's manifest says: an agent that knows only dumps
// (formats 1 and 2) refuses it rather than hand a tar archive to pg_restore. Logical backups keep
// FormatVersion, so agents of before physical backups still read them. A physical backup may name
// a tenant data key (DataKeyID) as a logical one does.
const PhysicalFormatVersion = 3

// Methods of backup (Manifest.Method).
const (
	MethodLogical  = "logical"
	MethodPhysical = "physical"
)

// Object names inside a backup's directory.
const (
	DataObject         = "backup.dump.zst.age"
	ManifestObject     = "manifest.json"
	VerificationObject = "verification.json"
)

// Manifest describes one complete backup.
type Manifest struct {
	FormatVersion int    `json:"formatVersion"`
	ID            string `json:"id"`
	Tenant        string `json:"tenant"`
	// TenantUID is the UID of the Tenant object the backup was made for: a later Tenant of the
	// same name is another customer, whose listings leave this backup out unless it adopted the
	// data explicitly. Empty in backups made before it was recorded.
	TenantUID  string    `json:"tenantUID,omitempty"`
	Schedule   string    `json:"schedule"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
	// Database is the dumped database's name (never the connection string, which may hold a
	// password).
	Database string `json:"database"`
	// PostgresVersion is the server's server_version, e.g. "17.6"; PostgresMajor its major.
	PostgresVersion string `json:"postgresVersion"`
	PostgresMajor   int    `json:"postgresMajor"`
	PgDumpVersion   string `json:"pgDumpVersion"`
	// Object is the stored data object: pg_dump's custom format, zstd, then age.
	Object ObjectInfo `json:"object"`
	// DumpSize is the size of pg_dump's output before compression.
	DumpSize int64 `json:"dumpSize"`
	// CompressedSize is the size after zstd, before encryption.
	CompressedSize int64 `json:"compressedSize"`
	// Tables holds exact row counts of every table whose data the dump holds, counted in the
	// dump's own snapshot.
	Tables []TableRows `json:"tables"`
	// LargeObjects is the number of large objects, from the same snapshot.
	LargeObjects int64 `json:"largeObjects"`
	// Recipients are the fingerprints of the age recipients the data was encrypted to.
	Recipients []string `json:"recipients"`
	// DataKeyID, when set, names the tenant data key the data is encrypted to, and only to: its
	// identity is stored wrapped to the platform's recipients at DataKeyObject(Tenant, TenantUID,
	// DataKeyID), and once every copy of it is destroyed the backup cannot be decrypted. Empty in
	// backups encrypted to the platform's recipients directly (before per-tenant keys).
	DataKeyID string `json:"dataKeyID,omitempty"`
	// Method is MethodLogical or MethodPhysical; manifests written before physical backups have
	// none and are logical (see MethodOf).
	Method string `json:"method,omitempty"`
	// Physical describes a physical base backup; nil for a logical one.
	Physical *PhysicalInfo `json:"physical,omitempty"`
}

// MethodOf is the backup's method, logical for manifests that name none.
func (m Manifest) MethodOf() string {
	if m.Method == "" {
		return MethodLogical
	}
	return m.Method
}

// ObjectInfo is what the manifest records about the stored data object.
type ObjectInfo struct {
	Name        string `json:"name"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Format      string `json:"format"`
	Compression string `json:"compression"`
	Encryption  string `json:"encryption"`
}

// TableRows is one table's exact row count.
type TableRows struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	Rows   int64  `json:"rows"`
}

// QualifiedName is schema.name, for messages and for matching tables across databases.
func (t TableRows) QualifiedName() string { return t.Schema + "." + t.Name }

// Verification is the outcome of one verify run, stored next to the manifest.
type Verification struct {
	FormatVersion int       `json:"formatVersion"`
	BackupID      string    `json:"backupId"`
	CheckedAt     time.Time `json:"checkedAt"`
	// Kind is "checksum" (the stored object against the manifest, without a key) or
	// "restore-drill" (decrypted and restored into a scratch PostgreSQL, row counts compared).
	Kind string `json:"kind"`
	OK   bool   `json:"ok"`
	// Reason is the first problem's reason, one of a fixed set of CamelCase words (the agent's
	// backup.Reason... constants); empty when OK.
	Reason string `json:"reason,omitempty"`
	// Problems lists what did not match, each a reason, a colon and a summary the agent wrote,
	// bounded in number and length; empty when OK.
	Problems []string `json:"problems,omitempty"`
	// ObjectSHA256 is what the stored object hashed to.
	ObjectSHA256 string `json:"objectSha256,omitempty"`
	// ScratchPostgresVersion is the drill server's version.
	ScratchPostgresVersion string        `json:"scratchPostgresVersion,omitempty"`
	Duration               time.Duration `json:"durationNanos"`
}

// Verification kinds.
const (
	KindChecksum     = "checksum"
	KindRestoreDrill = "restore-drill"
)

// Dir is the storage directory of a backup, or of all backups of a tenant and schedule when id is
// empty, or of a tenant when schedule is empty too.
func Dir(tenant, schedule, id string) string {
	parts := []string{tenant}
	if schedule != "" {
		parts = append(parts, schedule)
		if id != "" {
			parts = append(parts, id)
		}
	}
	return storage.Join(parts...)
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$`)

// ValidateName checks a tenant, schedule or backup id: one path segment of safe characters, since
// each becomes a directory in the storage layout.
func ValidateName(kind, v string) error {
	if !nameRE.MatchString(v) {
		return fmt.Errorf("invalid %s %q: want letters, digits, '.', '_' or '-', starting with a letter or digit", kind, v)
	}
	if kind == "schedule" && v == WALDir {
		// A schedule's cleanup would take the WAL archive for leftovers of killed backups.
		return fmt.Errorf("invalid schedule %q: the name is taken by the tenant's WAL archive", v)
	}
	return nil
}

// NewID returns a backup id that sorts by time and does not collide between concurrent runs.
func NewID(now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%x", now.UTC().Format("20060102T150405Z"), b)
}

// DecodeManifest parses and checks a stored manifest.
func DecodeManifest(data []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, fmt.Errorf("manifest is not valid JSON: %w", err)
	}
	return m, m.check()
}

func (m Manifest) check() error {
	if m.FormatVersion < 1 || m.FormatVersion > PhysicalFormatVersion {
		return fmt.Errorf("manifest format version %d is not supported by this agent (knows 1 to %d)", m.FormatVersion, PhysicalFormatVersion)
	}
	if m.ID == "" || m.Object.Name == "" || m.Object.SHA256 == "" || m.Object.Size <= 0 {
		return fmt.Errorf("manifest lacks id, object name, size or checksum")
	}
	if m.DataKeyID != "" && (!datakey.ValidID(m.DataKeyID) || ValidateName("tenant UID", m.TenantUID) != nil) {
		return fmt.Errorf("manifest names data key %q of tenant UID %q: want a key ID and the UID it belongs to", m.DataKeyID, m.TenantUID)
	}
	switch m.MethodOf() {
	case MethodLogical:
		if m.Physical != nil {
			return fmt.Errorf("manifest of a logical backup describes a physical one")
		}
	case MethodPhysical:
		if m.FormatVersion < PhysicalFormatVersion {
			return fmt.Errorf("manifest of a physical backup has format version %d, want %d", m.FormatVersion, PhysicalFormatVersion)
		}
		if m.Physical == nil {
			return fmt.Errorf("manifest of a physical backup lacks its physical section")
		}
		return m.Physical.check()
	default:
		return fmt.Errorf("manifest names an unknown backup method %q", m.Method)
	}
	return nil
}

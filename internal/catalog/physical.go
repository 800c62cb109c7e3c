package catalog

import (
	"fmt"
	"time"
)

// Object names in a physical backup's directory.
const (
	// BaseObject is pg_basebackup's tar of the data directory (-D - -Ft), backup_manifest included
	// as its last member, zstd-compressed and age-encrypted.
	BaseObject = "base.tar.zst.age"
	// BaseObjectS2 is the same tar S2-compressed (--compression s2). Readers take the
	// object's name and codec from the manifest (ObjectInfo), never from these names.
	BaseObjectS2 = "base.tar.s2.age"
	// BackupManifestObject is the same backup_manifest on its own, zstd-compressed and
	// age-encrypted: what the next incremental backup is taken against, without downloading the
	// whole base backup.
	BackupManifestObject = "backup_manifest.zst.age"
)

// PhysicalInfo is what a physical base backup's manifest records beyond a dump's.
type PhysicalInfo struct {
	// SystemID is the cluster's database system identifier, in decimal: which WAL archive
	// (WALPrefix) the backup needs.
	SystemID string `json:"systemIdentifier"`
	// Timeline is the timeline the backup stopped on.
	Timeline uint32 `json:"timeline"`
	// StartLSN is where replay of the backup begins (backup_label's START WAL LOCATION): the WAL
	// archive must hold everything from its segment on.
	StartLSN LSN `json:"startLSN"`
	// StopLSN is where the backup is consistent: no recovery target before it can be reached.
	StopLSN LSN `json:"stopLSN"`
	// StopTime is the server's clock once the backup had finished, a moment after StopLSN: the
	// earliest recovery target time the backup reaches.
	StopTime time.Time `json:"stopTime"`
	// WALSegmentSize is the cluster's WAL segment size, which WAL file names depend on.
	WALSegmentSize int64 `json:"walSegmentSize"`
	// Parent is the id of the backup, of the same tenant and schedule, that this one is an
	// incremental backup of; empty for a full backup. Restoring it needs its whole chain.
	Parent string `json:"parent,omitempty"`
	// BackupManifest is the stored BackupManifestObject.
	BackupManifest ObjectInfo `json:"backupManifest"`
	// BackupManifestRecipients are the fingerprints of those who can decrypt the backup_manifest:
	// the data's recipients and those given for the manifest alone (what an incremental backup's
	// job holds, which cannot read the data).
	BackupManifestRecipients []string `json:"backupManifestRecipients"`
	// PgBasebackupVersion is the version of the pg_basebackup that took it.
	PgBasebackupVersion string `json:"pgBasebackupVersion"`
	// Superuser is the cluster's bootstrap superuser, whom a restore connects as to check the
	// restored server.
	Superuser string `json:"superuser,omitempty"`
}

func (p *PhysicalInfo) check() error {
	if err := ValidateSystemID(p.SystemID); err != nil {
		return fmt.Errorf("physical backup: %w", err)
	}
	if p.Timeline == 0 || p.StopLSN < p.StartLSN || p.StartLSN == 0 || p.StopTime.IsZero() {
		return fmt.Errorf("physical backup lacks its timeline, start and stop LSN or stop time")
	}
	if p.WALSegmentSize <= 0 || p.WALSegmentSize&(p.WALSegmentSize-1) != 0 {
		return fmt.Errorf("physical backup has an invalid WAL segment size %d", p.WALSegmentSize)
	}
	if p.Parent != "" {
		if err := ValidateName("parent backup id", p.Parent); err != nil {
			return err
		}
	}
	if p.BackupManifest.Name == "" || p.BackupManifest.Size <= 0 || p.BackupManifest.SHA256 == "" {
		return fmt.Errorf("physical backup lacks its backup_manifest's name, size or checksum")
	}
	return nil
}

// StartSegment is the first WAL segment the backup needs.
func (p *PhysicalInfo) StartSegment() uint64 { return SegmentOf(p.StartLSN, p.WALSegmentSize) }

// StopSegment is the segment holding StopLSN: the archive must reach it for the backup to be
// consistent.
func (p *PhysicalInfo) StopSegment() uint64 { return SegmentOf(p.StopLSN, p.WALSegmentSize) }

// Chain returns what restoring backup id of schedule takes: its full backup first, then each
// incremental up to id. backups are listed backups of its tenant (of any schedule). A parent is
// looked for in the same schedule and must be of the same database cluster: an id alone could
// name another schedule's backup. A parent that is missing (pruned, or left out of the listing
// because its signature does not check) is an error.
func Chain(backups []Backup, schedule, id string) ([]Backup, error) {
	type key struct{ schedule, id string }
	byKey := make(map[key]Backup, len(backups))
	for _, b := range backups {
		byKey[key{b.Schedule, b.ID}] = b
	}
	var chain []Backup
	for next := id; next != ""; {
		b, ok := byKey[key{schedule, next}]
		switch {
		case !ok && next == id:
			return nil, fmt.Errorf("backup %s is not listed in schedule %s", id, schedule)
		case !ok:
			return nil, fmt.Errorf("backup %s is incremental to %s, which is missing from schedule %s or not trusted", chain[len(chain)-1].ID, next, schedule)
		case b.Physical == nil:
			return nil, fmt.Errorf("backup %s is not a physical backup", next)
		case len(chain) > 0 && b.Physical.SystemID != chain[0].Physical.SystemID:
			return nil, fmt.Errorf("backup %s is incremental to %s, a backup of another database cluster (%s, not %s)", chain[len(chain)-1].ID, next, b.Physical.SystemID, chain[0].Physical.SystemID)
		case len(chain) > len(backups):
			return nil, fmt.Errorf("the incremental backups leading to %s form a loop", id)
		}
		chain = append(chain, b)
		next = b.Physical.Parent
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	return chain, nil
}

package builders

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/tenantops/tenant-operator/internal/catalog"
)

// An erasure is recorded in a ConfigMap in the operator's namespace that outlives the Tenant: what
// was destroyed, where and when, for the customer's and the auditor's questions. It holds names,
// IDs and fingerprints, never key material.
const (
	// ComponentErasureRecord is the LabelComponent value of erasure records.
	ComponentErasureRecord = "erasure-record"
	// ErasureRecordKey is the record's key in the ConfigMap.
	ErasureRecordKey = "record.json"

	// maxRecordedBackups bounds each list of backup IDs in a record; the counts stay exact. A
	// ConfigMap holds at most 1 MiB.
	maxRecordedBackups = 5000
)

// Erasure reasons.
const (
	// ErasureTenantDeleted: the Tenant was deleted with deletionPolicy Delete.
	ErasureTenantDeleted = "TenantDeleted"
)

// ErasureRecord is what an erasure destroyed.
type ErasureRecord struct {
	Tenant     string    `json:"tenant"`
	TenantUIDs []string  `json:"tenantUIDs"`
	Reason     string    `json:"reason"`
	ErasedAt   time.Time `json:"erasedAt"`
	// DataKeys are the IDs of the tenant's data keys destroyed: their Secret copies and every
	// escrow copy found in storage.
	DataKeys []string `json:"dataKeys"`
	// Secrets are the data key Secrets deleted from the operator's namespace.
	Secrets   []string         `json:"secrets"`
	Locations []ErasedLocation `json:"locations"`
}

// ErasedLocation is what an erasure destroyed in one storage location.
type ErasedLocation struct {
	Location  string   `json:"location"`
	Schedules []string `json:"schedules"`
	// DataKeysDestroyed are the escrow copies deleted here.
	DataKeysDestroyed []string `json:"dataKeysDestroyed"`
	// BackupsUnreadable were encrypted to a destroyed key, so nobody can decrypt any copy of
	// them; they were deleted besides.
	BackupsUnreadable      []catalog.BackupRef `json:"backupsUnreadable"`
	BackupsUnreadableCount int                 `json:"backupsUnreadableCount"`
	// BackupsDeleted were encrypted to the platform's recipients directly (made before per-tenant
	// keys): deleting them is all that erases them, and copies made elsewhere are not erased.
	BackupsDeleted      []catalog.BackupRef `json:"backupsDeleted"`
	BackupsDeletedCount int                 `json:"backupsDeletedCount"`
	// ManifestsUnreadable counts backup directories whose manifest could not be read: their owner
	// is unknown and they were left.
	ManifestsUnreadable int `json:"manifestsUnreadable,omitempty"`
	// PredecessorBackupsLeft counts backups that recorded no Tenant UID and began before this
	// Tenant existed: a predecessor's of the same name, another customer's, left in place.
	PredecessorBackupsLeft int `json:"predecessorBackupsLeft,omitempty"`
	// WALSystems are the database systems whose WAL archive was deleted.
	WALSystems []string `json:"walSystems,omitempty"`
	// ExportsDeleted are the IDs of the stored exports deleted.
	ExportsDeleted []string `json:"exportsDeleted,omitempty"`
	// LedgerEntriesDeleted counts the entries of the tenant's erasure ledger deleted (sealed to
	// the destroyed keys, so unreadable before they went).
	LedgerEntriesDeleted int `json:"ledgerEntriesDeleted,omitempty"`
	// RecordsDeleted counts the tenant's prune and restore records deleted (catalog records.go):
	// this record is the account that outlives them.
	RecordsDeleted int `json:"recordsDeleted,omitempty"`
}

// ErasedLocationOf records a carried-out erasure plan.
func ErasedLocationOf(location string, schedules []string, plan catalog.ErasurePlan) ErasedLocation {
	bound := func(refs []catalog.BackupRef) []catalog.BackupRef {
		refs = slices.Clone(refs)
		if refs == nil {
			refs = []catalog.BackupRef{}
		}
		return refs[:min(len(refs), maxRecordedBackups)]
	}
	keys := slices.Clone(plan.DataKeys)
	if keys == nil {
		keys = []string{}
	}
	return ErasedLocation{Location: location, Schedules: schedules, DataKeysDestroyed: keys,
		BackupsUnreadable: bound(plan.Unreadable), BackupsUnreadableCount: len(plan.Unreadable),
		BackupsDeleted: bound(plan.Plain), BackupsDeletedCount: len(plan.Plain), ManifestsUnreadable: plan.Unowned,
		PredecessorBackupsLeft: plan.LeftLegacy, WALSystems: plan.WALSystems, ExportsDeleted: plan.Exports,
		LedgerEntriesDeleted: plan.LedgerEntries, RecordsDeleted: plan.Records}
}

// ErasureRecordName is the record of erasing one Tenant object.
func ErasureRecordName(tenant, uid string) string { return boundedName("erasure-"+tenant+"-"+uid, 253) }

// ErasureRecordConfigMap is the record as a ConfigMap in the operator's namespace.
func ErasureRecordConfigMap(r ErasureRecord, opts Options) (*corev1ac.ConfigMapApplyConfiguration, error) {
	opts = opts.withDefaults()
	if len(r.TenantUIDs) == 0 {
		return nil, fmt.Errorf("erasure record of tenant %s names no Tenant object", r.Tenant)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode erasure record: %w", err)
	}
	return corev1ac.ConfigMap(ErasureRecordName(r.Tenant, r.TenantUIDs[0]), opts.OperatorNamespace).
		WithLabels(map[string]string{LabelManagedBy: ManagedByValue, LabelTenant: r.Tenant, LabelComponent: ComponentErasureRecord,
			LabelTenantUID: r.TenantUIDs[0]}).
		WithData(map[string]string{ErasureRecordKey: string(data) + "\n"}), nil
}

// A Tenant deleted with Retain leaves a kept-tenant record in the operator's namespace: what its
// backups are, under which policies, and since when they are kept. The operator prunes those
// backups by the RetentionPolicy as it did for the Tenant, and erases them (keys first) once the
// policy's longest period has passed since the deletion, or when the record is annotated
// tenancy.tenantops.io/erase: "true".
const (
	// ComponentKeptTenant is the LabelComponent value of kept-tenant records.
	ComponentKeptTenant = "kept-tenant"
	// KeptTenantKey is the record's key in the ConfigMap.
	KeptTenantKey = "kept.json"
)

// Erasure reasons of kept tenants.
const (
	// ErasureRetentionEnded: a kept tenant's backups outlived its RetentionPolicy's longest period.
	ErasureRetentionEnded = "RetentionEnded"
	// ErasureRequested: the kept-tenant record was annotated to erase.
	ErasureRequested = "ErasureRequested"
)

// KeptTenant is what a Tenant deleted with Retain left in storage.
type KeptTenant struct {
	Tenant string `json:"tenant"`
	// TenantUIDs are the deleted Tenant's UID first, then those whose data it had adopted.
	TenantUIDs []string `json:"tenantUIDs"`
	// CreatedAt is when the deleted Tenant was created: backups that recorded no UID and began
	// earlier are a predecessor's, not its.
	CreatedAt       time.Time `json:"createdAt"`
	DeletedAt       time.Time `json:"deletedAt"`
	BackupPolicy    string    `json:"backupPolicy"`
	RetentionPolicy string    `json:"retentionPolicy,omitempty"`
	// TimeZone is where retention cuts days, as it did for the Tenant.
	TimeZone string `json:"timeZone,omitempty"`
}

// KeptTenantName is the record of one kept Tenant object.
func KeptTenantName(tenant, uid string) string { return boundedName("kept-"+tenant+"-"+uid, 253) }

// KeptTenantConfigMap is the record as a ConfigMap in the operator's namespace.
func KeptTenantConfigMap(k KeptTenant, opts Options) (*corev1ac.ConfigMapApplyConfiguration, error) {
	opts = opts.withDefaults()
	if len(k.TenantUIDs) == 0 || k.BackupPolicy == "" {
		return nil, fmt.Errorf("kept-tenant record of tenant %s names no Tenant object or no BackupPolicy", k.Tenant)
	}
	data, err := json.MarshalIndent(k, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode kept-tenant record: %w", err)
	}
	return corev1ac.ConfigMap(KeptTenantName(k.Tenant, k.TenantUIDs[0]), opts.OperatorNamespace).
		WithLabels(map[string]string{LabelManagedBy: ManagedByValue, LabelTenant: k.Tenant, LabelComponent: ComponentKeptTenant,
			LabelTenantUID: k.TenantUIDs[0]}).
		WithData(map[string]string{KeptTenantKey: string(data) + "\n"}), nil
}

// KeptTenantOf reads a kept-tenant record.
func KeptTenantOf(cm *corev1.ConfigMap) (KeptTenant, error) {
	var k KeptTenant
	if err := json.Unmarshal([]byte(cm.Data[KeptTenantKey]), &k); err != nil {
		return KeptTenant{}, fmt.Errorf("kept-tenant record %s: %s is not valid: %w", cm.Name, KeptTenantKey, err)
	}
	if k.Tenant == "" || len(k.TenantUIDs) == 0 || k.BackupPolicy == "" || k.DeletedAt.IsZero() {
		return KeptTenant{}, fmt.Errorf("kept-tenant record %s lacks the tenant, its UIDs, its BackupPolicy or the deletion time", cm.Name)
	}
	return k, nil
}

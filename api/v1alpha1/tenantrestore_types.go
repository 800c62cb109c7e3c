package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TenantRestoreSpec says whose backups to restore, which one or to what moment, and into which
// tenant. A restore runs once: the spec cannot change after creation.
// +kubebuilder:validation:XValidation:rule="has(self.backup) != has(self.pointInTime)",message="spec: set exactly one of spec.backup (a logical backup) and spec.pointInTime (a moment, from physical backups and WAL)"
// +kubebuilder:validation:XValidation:rule="self.targetTenant != self.tenant || (has(self.confirmInPlace) && self.confirmInPlace == self.tenant)",message="spec.confirmInPlace must repeat spec.tenant to restore a tenant into itself: the objects the backup holds replace the live ones"
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: a TenantRestore runs once; create another to restore again"
type TenantRestoreSpec struct {
	// Tenant whose backups are restored. Its BackupPolicy says where they are and how to read them.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +required
	Tenant string `json:"tenant"`
	// TargetTenant receives the restore: its database gets the backup's objects and rows. It must
	// exist, and its database must be ready; a new tenant's database must be empty. The same name
	// as tenant restores in place, and needs confirmInPlace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +required
	TargetTenant string `json:"targetTenant"`
	// Schedule of the tenant's BackupPolicy whose storage holds the backups. Default: the first
	// schedule of the method needed (logical for backup, physical for pointInTime).
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Schedule string `json:"schedule,omitempty"`
	// Backup is a logical backup's id (as `tenant-operator list` shows it), or "latest".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^(latest|[0-9A-Za-z][-0-9A-Za-z_.]*)$`
	// +optional
	Backup string `json:"backup,omitempty"`
	// PointInTime recovers the newest physical base backup before the moment and replays the
	// archived WAL to it, then copies the database into the target in one transaction.
	// +optional
	PointInTime *PointInTimeTarget `json:"pointInTime,omitempty"`
	// ConfirmInPlace must repeat tenant's name when targetTenant is tenant: the restore then
	// replaces the live objects that the backup holds.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	ConfirmInPlace string `json:"confirmInPlace,omitempty"`
}

// PointInTimeTarget is one moment of a tenant's recoverable window (status.backups[].pointInTime
// of the Tenant shows it).
// +kubebuilder:validation:XValidation:rule="[has(self.time), has(self.lsn), has(self.latest) && self.latest].filter(x, x).size() == 1",message="spec.pointInTime: set exactly one of time, lsn and latest: true"
type PointInTimeTarget struct {
	// Time: every transaction committed until then, none after.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
	// LSN: a WAL position, as PostgreSQL prints it (0/3000028).
	// +kubebuilder:validation:Pattern=`^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$`
	// +optional
	LSN string `json:"lsn,omitempty"`
	// Latest: everything the WAL archive holds.
	// +optional
	Latest bool `json:"latest,omitempty"`
}

// TenantRestorePhase is where a restore is.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed
type TenantRestorePhase string

const (
	// RestorePending: waiting for what the restore needs (the tenants, their database, the policy).
	RestorePending TenantRestorePhase = "Pending"
	// RestoreRunning: the restore Job runs.
	RestoreRunning TenantRestorePhase = "Running"
	// RestoreSucceeded: the target holds the backup's data, its rows checked.
	RestoreSucceeded TenantRestorePhase = "Succeeded"
	// RestoreFailed: the restore Job failed; the target is as it was (one transaction).
	RestoreFailed TenantRestorePhase = "Failed"
)

// TenantRestoreStatus is what the restore did.
type TenantRestoreStatus struct {
	// Phase: Pending, Running, Succeeded or Failed.
	// +optional
	Phase TenantRestorePhase `json:"phase,omitempty"`
	// Conditions: Ready (True once Succeeded), Reconciling while Pending or Running, Stalled once
	// Failed or while the spec cannot be carried out.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// JobName is the restore Job, in the operator's namespace.
	// +optional
	JobName string `json:"jobName,omitempty"`
	// Schedule is the schedule whose storage was read.
	// +optional
	Schedule string `json:"schedule,omitempty"`
	// StartTime is when the Job started; CompletionTime when it succeeded or failed.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}

// TenantRestore restores a tenant's backup, or a moment of its WAL archive, into a tenant: a new
// environment, or the same one in place. The operator runs it as a Job and reports its phases.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=tr,categories=tenancy
// +kubebuilder:printcolumn:name="Tenant",type=string,JSONPath=`.spec.tenant`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.targetTenant`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TenantRestore struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   TenantRestoreSpec   `json:"spec"`
	Status TenantRestoreStatus `json:"status,omitempty"`
}

// TenantRestoreList is a list of TenantRestores.
// +kubebuilder:object:root=true
type TenantRestoreList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TenantRestore `json:"items"`
}

func init() {
	SchemeBuilder.Register(&TenantRestore{}, &TenantRestoreList{})
}

// Reasons of a TenantRestore's conditions.
const (
	// ReasonTenantNotFound: spec.tenant or spec.targetTenant names no Tenant (yet).
	ReasonTenantNotFound = "TenantNotFound"
	// ReasonTargetNotReady: the target tenant's database is not ready to receive the restore.
	ReasonTargetNotReady = "TargetNotReady"
	// ReasonRestoreRunning: the restore Job runs.
	ReasonRestoreRunning = "RestoreRunning"
	// ReasonRestoreFailed: the restore Job failed.
	ReasonRestoreFailed = "RestoreFailed"
)

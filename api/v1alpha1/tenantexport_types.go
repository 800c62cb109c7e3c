package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TenantExportSpec says whose backup to hand back, and to whose keys. An export runs once: the
// spec cannot change after creation.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: a TenantExport runs once; create another to export again"
type TenantExportSpec struct {
	// Tenant whose backup is exported. Its BackupPolicy says where the backup is and how to read it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +required
	Tenant string `json:"tenant"`
	// Schedule of the tenant's BackupPolicy whose storage holds the backup and receives the
	// archive. Default: the policy's first logical schedule.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Schedule string `json:"schedule,omitempty"`
	// Backup is a logical backup's id, or "latest" (the default).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^(latest|[0-9A-Za-z][-0-9A-Za-z_.]*)$`
	// +optional
	Backup string `json:"backup,omitempty"`
	// Recipients are the customer's own age public keys: the archive is encrypted to these only.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:Pattern=`^age1[0-9a-z]{58}$`
	// +required
	Recipients []string `json:"recipients"`
}

// TenantExportStatus is what the export did.
type TenantExportStatus struct {
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
	// JobName is the export Job, in the operator's namespace.
	// +optional
	JobName string `json:"jobName,omitempty"`
	// Schedule is the schedule whose storage was read and written.
	// +optional
	Schedule string `json:"schedule,omitempty"`
	// Archive is where the encrypted archive is, in that schedule's storage:
	// <tenant>/exports/<name>.age, with its record <name>.json beside it once it is whole.
	// +optional
	Archive string `json:"archive,omitempty"`
	// StartTime is when the Job started; CompletionTime when it succeeded or failed.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}

// TenantExport turns a tenant's backup into a portable archive for the customer (a plain SQL dump
// and a CSV per table, with a manifest and checksums), encrypted to the customer's own keys and
// stored beside the backups. The operator runs it as a Job and reports its phases.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=te,categories=tenancy
// +kubebuilder:printcolumn:name="Tenant",type=string,JSONPath=`.spec.tenant`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Archive",type=string,JSONPath=`.status.archive`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TenantExport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   TenantExportSpec   `json:"spec"`
	Status TenantExportStatus `json:"status,omitempty"`
}

// TenantExportList is a list of TenantExports.
// +kubebuilder:object:root=true
type TenantExportList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TenantExport `json:"items"`
}

func init() {
	SchemeBuilder.Register(&TenantExport{}, &TenantExportList{})
}

// ReasonExportFailed: the export Job failed.
const ReasonExportFailed = "ExportFailed"

// ReasonExportRunning: the export Job runs.
const ReasonExportRunning = "ExportRunning"

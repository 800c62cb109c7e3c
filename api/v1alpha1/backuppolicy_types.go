package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BackupPolicySpec says when, where and how tenants' databases are backed up.
// +kubebuilder:validation:XValidation:rule="!has(self.allowedRegions) || self.schedules.all(s, !has(s.storage.s3) || (has(s.storage.s3.region) && s.storage.s3.region in self.allowedRegions))",message="spec.schedules[].storage.s3.region must be one of spec.allowedRegions"
type BackupPolicySpec struct {
	// Schedules each write backups on a cron schedule to one storage location, e.g. a hot copy
	// every 12 hours and a cold daily copy in another location.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=10
	// +listType=map
	// +listMapKey=name
	// +required
	Schedules []BackupSchedule `json:"schedules"`

	// Encryption of every backup, on the client side, before it leaves the backup pod.
	// +required
	Encryption BackupEncryption `json:"encryption"`

	// Verification schedules restore drills of the newest backups.
	// +optional
	Verification *BackupVerification `json:"verification,omitempty"`

	// AllowedRegions restricts where S3 storage may be (data residency); any region when unset.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=64
	// +listType=set
	// +optional
	AllowedRegions []string `json:"allowedRegions,omitempty"`

	// Suspend pauses new backups and verifications for every tenant using this policy.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
}

// BackupSchedule is one cron schedule writing to one storage location.
type BackupSchedule struct {
	// Name of the schedule, e.g. hot or cold; part of job names and the storage path.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=20
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +required
	Name string `json:"name"`

	// Schedule in cron format ("0 */12 * * *") or a descriptor such as @daily.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=100
	// +required
	Schedule string `json:"schedule"`

	// Storage is where this schedule's backups go.
	// +required
	Storage BackupStorage `json:"storage"`

	// MaxAge is how old the newest backup may be before it counts as stale, e.g. 13h or 2d;
	// the schedule's interval plus a grace period when unset.
	// +kubebuilder:validation:MaxLength=16
	// +optional
	MaxAge string `json:"maxAge,omitempty"`
}

// BackupStorage is one storage location: S3-compatible object storage or a volume.
// +kubebuilder:validation:XValidation:rule="has(self.s3) != has(self.volume)",message="spec.schedules[].storage must set exactly one of s3 or volume"
type BackupStorage struct {
	// S3 is S3-compatible object storage.
	// +optional
	S3 *S3Storage `json:"s3,omitempty"`

	// Volume is a PersistentVolumeClaim in the operator's namespace.
	// +optional
	Volume *VolumeStorage `json:"volume,omitempty"`
}

// S3Storage is a bucket in S3-compatible object storage.
type S3Storage struct {
	// Endpoint is host[:port] of the S3 API, e.g. s3.eu-central-1.amazonaws.com.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9.-]+(:[0-9]{1,5})?$`
	// +required
	Endpoint string `json:"endpoint"`

	// Bucket name.
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`
	// +required
	Bucket string `json:"bucket"`

	// Region of the bucket.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Region string `json:"region,omitempty"`

	// Prefix under which backups are stored: <prefix>/<tenant>/<schedule>/<id>/.
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/') && !self.contains('..')",message="spec.schedules[].storage.s3.prefix must be relative and must not contain '..'"
	// +optional
	Prefix string `json:"prefix,omitempty"`

	// Insecure uses plain HTTP; only for storage on a trusted network.
	// +optional
	Insecure bool `json:"insecure,omitempty"`

	// CredentialsSecretRef names a Secret in the operator's namespace with the keys
	// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
	// +required
	CredentialsSecretRef SecretReference `json:"credentialsSecretRef"`
}

// VolumeStorage is a PersistentVolumeClaim in the operator's namespace.
type VolumeStorage struct {
	// ClaimName of the PersistentVolumeClaim.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	ClaimName string `json:"claimName"`
}

// BackupEncryption lists who can decrypt the backups. Backups are never stored unencrypted.
type BackupEncryption struct {
	// Recipients are age public keys (age1...); any of their identities decrypts a backup.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:MaxLength=128
	// +listType=set
	// +required
	Recipients []string `json:"recipients"`

	// IdentitySecretRef names a Secret in the operator's namespace holding an age identity, used
	// for restore drills.
	// +optional
	IdentitySecretRef *SecretKeyReference `json:"identitySecretRef,omitempty"`
}

// BackupVerification schedules restore drills.
type BackupVerification struct {
	// Schedule in cron format or a descriptor such as @weekly.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=100
	// +required
	Schedule string `json:"schedule"`
}

// BackupPolicyStatus is the observed state of a BackupPolicy.
type BackupPolicyStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready tells whether the policy is valid and its secrets exist.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Tenants is how many Tenants reference this policy.
	// +optional
	Tenants int32 `json:"tenants,omitempty"`

	// Schedules lists the schedules' names for the Schedules printer column, e.g. "hot,cold".
	// +optional
	Schedules string `json:"schedules,omitempty"`
}

// BackupPolicy is a set of backup schedules, their storage and encryption, shared by tenants.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=bp,categories=tenancy
// +kubebuilder:printcolumn:name="Schedules",type=string,JSONPath=`.status.schedules`
// +kubebuilder:printcolumn:name="Tenants",type=integer,JSONPath=`.status.tenants`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BackupPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   BackupPolicySpec   `json:"spec"`
	Status BackupPolicyStatus `json:"status,omitempty"`
}

// BackupPolicyList is a list of BackupPolicies.
// +kubebuilder:object:root=true
type BackupPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BackupPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&BackupPolicy{}, &BackupPolicyList{})
}

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

	// Signing says which backups are trusted besides those signed by the key the operator keeps
	// for this policy. Backup manifests are always signed (Ed25519) by that key; restore drills,
	// freshness and retention count only backups whose signature checks.
	// +optional
	Signing *BackupSigning `json:"signing,omitempty"`
}

// BackupSigning widens the trust in a policy's backups beyond the operator's own signing key.
type BackupSigning struct {
	// AdditionalPublicKeys are accepted besides the operator's keys for this policy (status.signing),
	// e.g. the key of backups copied from another cluster, or the old key after its Secret was lost.
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:Pattern=`^ed25519:[A-Za-z0-9+/]{43}=$`
	// +listType=set
	// +optional
	AdditionalPublicKeys []string `json:"additionalPublicKeys,omitempty"`

	// AllowUnsigned accepts backups without a signature, such as those made before signing was
	// enabled, in restore drills, freshness and retention. Off by default: anyone who can write
	// the bucket can write an unsigned backup. Turn it on for an upgrade, and off once the unsigned
	// backups have aged out.
	// +optional
	AllowUnsigned bool `json:"allowUnsigned,omitempty"`
}

// BackupMethod is how a schedule backs up a tenant's database.
// +kubebuilder:validation:Enum=logical;physical
type BackupMethod string

const (
	// BackupMethodLogical is a pg_dump of the tenant's database: portable across PostgreSQL
	// versions, restored to the moment it was taken.
	BackupMethodLogical BackupMethod = "logical"
	// BackupMethodPhysical is a pg_basebackup of the whole cluster, with the cluster's WAL
	// streamed to the same storage continuously: restored to any moment the WAL reaches.
	BackupMethodPhysical BackupMethod = "physical"
)

// BackupSchedule is one cron schedule writing to one storage location.
// +kubebuilder:validation:XValidation:rule="!has(self.fullEvery) || (has(self.method) && self.method == 'physical')",message="spec.schedules[].fullEvery needs method: physical (only physical backups are incremental)"
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

	// Method is logical (a pg_dump of the database, the default and the portable one) or
	// physical (a pg_basebackup of the cluster). A physical schedule also streams the cluster's
	// WAL to its storage without pause, so that the tenant can be restored to any second since
	// its oldest kept base backup (docs/backup-restore.md, point in time).
	// +kubebuilder:default=logical
	// +optional
	Method BackupMethod `json:"method,omitempty"`

	// FullEvery makes a physical schedule's backups incremental (PostgreSQL 17 and later): each
	// run backs up only what changed since the previous one, and a full backup starts a new chain
	// once the chain's full backup is this old, e.g. 30d with a daily schedule for "daily
	// incremental, monthly full". Every backup is full when unset, and on older servers.
	// +kubebuilder:validation:MaxLength=16
	// +optional
	FullEvery string `json:"fullEvery,omitempty"`
}

// IsPhysical says whether the schedule takes physical base backups and archives WAL.
func (s BackupSchedule) IsPhysical() bool { return s.Method == BackupMethodPhysical }

// ArchivesWAL says whether the policy's tenants stream their WAL: when a schedule is physical.
func (p *BackupPolicySpec) ArchivesWAL() bool {
	for _, s := range p.Schedules {
		if s.IsPhysical() {
			return true
		}
	}
	return false
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
//
// Credentials can be split by purpose, so that no pod holds more than its job needs: backup jobs
// write new objects under their tenant's prefix, verification jobs read it, and only the operator
// deletes (docs/storage-credentials.md has the policies). Each purpose uses its own Secret when
// one is named, else credentialsSecretRef.
// +kubebuilder:validation:XValidation:rule="!has(self.prunerCredentialsSecretRef) || (has(self.writerCredentialsSecretRef) ? ((has(self.writerCredentialsSecretRef.perTenant) && self.writerCredentialsSecretRef.perTenant) || self.writerCredentialsSecretRef.name != self.prunerCredentialsSecretRef.name) : self.credentialsSecretRef.name != self.prunerCredentialsSecretRef.name)",message="spec.schedules[].storage.s3: backup jobs must not get the pruner's credentials, which may delete: name a different writerCredentialsSecretRef"
// +kubebuilder:validation:XValidation:rule="!has(self.prunerCredentialsSecretRef) || (has(self.readerCredentialsSecretRef) ? ((has(self.readerCredentialsSecretRef.perTenant) && self.readerCredentialsSecretRef.perTenant) || self.readerCredentialsSecretRef.name != self.prunerCredentialsSecretRef.name) : self.credentialsSecretRef.name != self.prunerCredentialsSecretRef.name)",message="spec.schedules[].storage.s3: verification jobs must not get the pruner's credentials, which may delete: name a different readerCredentialsSecretRef"
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
	// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, used for every purpose below that names no
	// Secret of its own.
	// +required
	CredentialsSecretRef SecretReference `json:"credentialsSecretRef"`

	// WriterCredentialsSecretRef is what backup jobs use: put new objects under the tenant's
	// prefix, nothing else (no list, read or delete).
	// +optional
	WriterCredentialsSecretRef *StorageCredentialsReference `json:"writerCredentialsSecretRef,omitempty"`

	// ReaderCredentialsSecretRef is what verification jobs (and restores) use: list and read under
	// the tenant's prefix, and write verification.json there.
	// +optional
	ReaderCredentialsSecretRef *StorageCredentialsReference `json:"readerCredentialsSecretRef,omitempty"`

	// PrunerCredentialsSecretRef is what the operator lists, reads and deletes backups with when it
	// checks and prunes them. No job gets it.
	// +optional
	PrunerCredentialsSecretRef *SecretReference `json:"prunerCredentialsSecretRef,omitempty"`
}

// StorageCredentialsReference names the Secret, in the operator's namespace, of one purpose's S3
// credentials (keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).
// +kubebuilder:validation:XValidation:rule="!has(self.perTenant) || !self.perTenant || size(self.name) <= 196",message="name must be at most 196 characters with perTenant, to leave room for -<tenant>"
type StorageCredentialsReference struct {
	// Name of the Secret, or with perTenant the start of the name of each tenant's.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// PerTenant gives each tenant its own Secret, named <name>-<tenant>, holding a credential for
	// that tenant's prefix only: a tenant's jobs then cannot touch another tenant's backups.
	// +optional
	PerTenant bool `json:"perTenant,omitempty"`
}

// SecretName is the Secret a tenant's job gets.
func (r StorageCredentialsReference) SecretName(tenant string) string {
	if r.PerTenant {
		return r.Name + "-" + tenant
	}
	return r.Name
}

// WriterSecretName is the Secret of a tenant's backup jobs.
func (s *S3Storage) WriterSecretName(tenant string) string {
	if s.WriterCredentialsSecretRef != nil {
		return s.WriterCredentialsSecretRef.SecretName(tenant)
	}
	return s.CredentialsSecretRef.Name
}

// ReaderSecretName is the Secret of a tenant's verification jobs.
func (s *S3Storage) ReaderSecretName(tenant string) string {
	if s.ReaderCredentialsSecretRef != nil {
		return s.ReaderCredentialsSecretRef.SecretName(tenant)
	}
	return s.CredentialsSecretRef.Name
}

// PrunerSecretName is the Secret the operator lists and prunes with.
func (s *S3Storage) PrunerSecretName() string {
	if s.PrunerCredentialsSecretRef != nil {
		return s.PrunerCredentialsSecretRef.Name
	}
	return s.CredentialsSecretRef.Name
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

	// Signing publishes the keys that check this policy's backup manifests, for restores by hand
	// (tenant-operator restore --signing-public-key) and for the verification jobs.
	// +optional
	Signing *BackupSigningStatus `json:"signing,omitempty"`
}

// BackupSigningStatus is the public half of the key the operator signs a policy's backups with.
type BackupSigningStatus struct {
	// PublicKey signs new backups: "ed25519:" and the key in base64.
	// +optional
	PublicKey string `json:"publicKey,omitempty"`

	// KeyID is the key's fingerprint, SHA256 of its bytes, as messages name it.
	// +optional
	KeyID string `json:"keyID,omitempty"`

	// PreviousPublicKeys signed backups before a rotation; they are still trusted.
	// +kubebuilder:validation:MaxItems=10
	// +listType=atomic
	// +optional
	PreviousPublicKeys []string `json:"previousPublicKeys,omitempty"`

	// SecretName is the Secret in the operator's namespace that holds the private key; only
	// backup jobs mount it.
	// +optional
	SecretName string `json:"secretName,omitempty"`
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

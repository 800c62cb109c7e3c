package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TenantFinalizer holds a Tenant until the deletion policy has been carried out.
const TenantFinalizer = "tenancy.tenantops.io/finalizer"

// Annotations a person sets on a Tenant to confirm what would otherwise lose data.
const (
	// AnnotationAllowDelete "true" confirms spec.deletionPolicy Delete: without it admission
	// refuses the policy, and a deletion keeps the data as Retain would.
	AnnotationAllowDelete = "tenancy.tenantops.io/allow-delete"
	// AnnotationAdoptNamespace "true" lets a new Tenant take over the namespace, database and
	// backups that a deleted Tenant of the same name left with policy Retain.
	AnnotationAdoptNamespace = "tenancy.tenantops.io/adopt-namespace"
	// AnnotationRotateDataKey: each new value makes a new data key for the tenant's new backups;
	// older backups stay readable through their own keys until retention prunes them.
	AnnotationRotateDataKey = "tenancy.tenantops.io/rotate-data-key"
	// AnnotationErasureStarted is set by the operator, with the time, when it starts erasing a
	// deleted Tenant: from then on the erasure runs to its end whatever becomes of allow-delete,
	// since half an erasure would leave some keys destroyed, the rest of the data and no record.
	AnnotationErasureStarted = "tenancy.tenantops.io/erasure-started"
	// AnnotationErase "true" on the kept-tenant record a Tenant deleted with Retain left (ConfigMap
	// kept-<tenant>-<uid> in the operator's namespace) erases that tenant's backups and data keys
	// now instead of at the end of its retention.
	AnnotationErase = "tenancy.tenantops.io/erase"
)

// TenantSpec is the environment a customer gets: its own URL, database, firewall, certificate,
// backups, retention, uptime objective and roles.
type TenantSpec struct {
	// DisplayName is the customer's name as people read it.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	DisplayName string `json:"displayName,omitempty"`

	// Hostnames are the DNS names the tenant is served on; the first is its primary URL. A
	// wildcard such as *.example.com covers exactly one label: a.example.com, not example.com nor
	// a.b.example.com. Admission refuses, in the tenant's namespace, Ingresses, Gateway API routes
	// and cert-manager Certificates for any name these do not cover.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)+$`
	// +listType=set
	// +required
	Hostnames []string `json:"hostnames"`

	// TLS selects the cert-manager issuer for the tenant's certificate.
	// +optional
	TLS *TenantTLS `json:"tls,omitempty"`

	// Database is the tenant's own PostgreSQL.
	// +required
	Database DatabaseSpec `json:"database"`

	// Firewall is the tenant's network isolation: everything is denied except what is listed here.
	// +kubebuilder:default={}
	// +optional
	Firewall FirewallSpec `json:"firewall,omitempty"`

	// Access lists who administers, edits and views the tenant's environment.
	// +optional
	Access AccessSpec `json:"access,omitempty"`

	// Quota caps the resources of the tenant's namespace (a ResourceQuota). Each resource named
	// here replaces its default; the others keep theirs, so naming one never lifts another.
	// Defaults:
	//
	//   - compute: requests.cpu 4, requests.memory 8Gi, limits.cpu 8, limits.memory 16Gi;
	//   - local disk: requests.ephemeral-storage 10Gi, limits.ephemeral-storage 20Gi (containers
	//     that set none get 128Mi requested and a 1Gi limit from the LimitRange);
	//   - storage: requests.storage = the database volume + max(the volume, 10Gi), never less
	//     than the volume;
	//   - object counts: pods 50, persistentvolumeclaims 10, count/configmaps 50,
	//     count/secrets 50, count/services 20, count/jobs.batch 50, count/cronjobs.batch 20,
	//     count/ingresses.networking.k8s.io 20, count/certificates.cert-manager.io 20;
	//   - exposure: services.loadbalancers 0 and services.nodeports 0, unless
	//     spec.firewall.allowedServiceTypes allows them (then 5 each).
	//
	// The operator's own objects take 1 pod, 1 volume claim, 3 ConfigMaps (with kube-root-ca.crt,
	// which Kubernetes puts in every namespace), 5 Secrets, 2 Services, 1 Ingress and
	// 2 Certificates of these, plus the database pod's compute and 2Gi of ephemeral-storage limits.
	// +optional
	Quota corev1.ResourceList `json:"quota,omitempty"`

	// Route sends the tenant's hostnames to its application: an Ingress by default, a Gateway API
	// HTTPRoute when a Gateway is named, either serving the tenant's certificate.
	// +kubebuilder:default={}
	// +optional
	Route RouteSpec `json:"route,omitempty"`

	// BackupPolicyRef names the BackupPolicy whose schedules back up this tenant's database.
	// +optional
	BackupPolicyRef *LocalObjectReference `json:"backupPolicyRef,omitempty"`

	// RetentionPolicyRef names the RetentionPolicy that decides which backups are kept.
	// +optional
	RetentionPolicyRef *LocalObjectReference `json:"retentionPolicyRef,omitempty"`

	// Monitoring configures the uptime probes and the availability objective.
	// +optional
	Monitoring *MonitoringSpec `json:"monitoring,omitempty"`

	// DeletionPolicy says what happens to the tenant's data when the Tenant is deleted. Retain
	// keeps the namespace, database volume and credentials, for a Tenant of the same name to adopt
	// (annotated tenancy.tenantops.io/adopt-namespace: "true"), and the backups and data key under
	// a kept-tenant record that prunes them by the RetentionPolicy and erases them once its longest
	// period has passed since the deletion (docs/erasure.md). Delete erases the tenant: the namespace and everything in it, its data key
	// wherever it is kept (so that no backup of it can be decrypted by anyone), and its backups;
	// the erasure is recorded. Delete needs the annotation tenancy.tenantops.io/allow-delete: "true".
	// +kubebuilder:validation:Enum=Retain;Delete
	// +kubebuilder:default=Retain
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// DeletionPolicy is what happens to a tenant's data when its Tenant is deleted.
type DeletionPolicy string

const (
	// DeletionPolicyRetain keeps the namespace, the database volume and credentials.
	DeletionPolicyRetain DeletionPolicy = "Retain"
	// DeletionPolicyDelete erases the tenant: deletes the namespace and everything in it,
	// destroys the tenant's data key everywhere it is kept (crypto-erasure, so no backup of the
	// tenant can be decrypted by anyone), deletes its backups, and records the erasure.
	DeletionPolicyDelete DeletionPolicy = "Delete"
)

// RouteKind is the kind of object that routes the tenant's hostnames.
type RouteKind string

const (
	// RouteKindIngress routes with a networking.k8s.io/v1 Ingress of the operator's ingress class.
	RouteKindIngress RouteKind = "Ingress"
	// RouteKindHTTPRoute routes with a Gateway API HTTPRoute attached to spec.route.gatewayRef.
	RouteKindHTTPRoute RouteKind = "HTTPRoute"
	// RouteKindNone creates no route: the tenant's own Ingress or HTTPRoute serves the hostnames.
	RouteKindNone RouteKind = "None"
)

// RouteSpec is the route from the tenant's hostnames to one of its Services, with TLS from the
// tenant's certificate (the Secret tenant-tls).
// +kubebuilder:validation:XValidation:rule="(has(self.kind) && self.kind == 'HTTPRoute') == has(self.gatewayRef)",message="spec.route.gatewayRef is required when spec.route.kind is HTTPRoute, and allowed only then"
type RouteSpec struct {
	// Kind of the route: Ingress, HTTPRoute (needs gatewayRef) or None.
	// +kubebuilder:validation:Enum=Ingress;HTTPRoute;None
	// +kubebuilder:default=Ingress
	// +optional
	Kind RouteKind `json:"kind,omitempty"`

	// ServiceName is the tenant's Service that receives the traffic, in the tenant's namespace.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:default=web
	// +optional
	ServiceName string `json:"serviceName,omitempty"`

	// Port of that Service.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=80
	// +optional
	Port int32 `json:"port,omitempty"`

	// GatewayRef names the Gateway the HTTPRoute attaches to. Its HTTPS listeners may serve the
	// tenant's certificate: the operator grants the Gateway's namespace read of the Secret
	// tenant-tls with a ReferenceGrant.
	// +optional
	GatewayRef *GatewayReference `json:"gatewayRef,omitempty"`
}

// GatewayReference names a Gateway API Gateway.
type GatewayReference struct {
	// Name of the Gateway.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// Namespace of the Gateway.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +required
	Namespace string `json:"namespace"`

	// SectionName is the Gateway's listener to attach to; every listener that admits the route
	// when unset.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	SectionName string `json:"sectionName,omitempty"`
}

// TenantTLS selects the issuer of the tenant's certificate.
type TenantTLS struct {
	// IssuerRef names the cert-manager issuer. When unset, the manager's default issuer is used.
	// +optional
	IssuerRef *IssuerReference `json:"issuerRef,omitempty"`
}

// IssuerReference names a cert-manager Issuer (in the tenant's namespace) or ClusterIssuer.
type IssuerReference struct {
	// Name of the issuer.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// Kind of the issuer.
	// +kubebuilder:validation:Enum=Issuer;ClusterIssuer
	// +kubebuilder:default=ClusterIssuer
	// +optional
	Kind string `json:"kind,omitempty"`
}

// DatabaseSpec describes the tenant's PostgreSQL.
type DatabaseSpec struct {
	// Version is the PostgreSQL major version.
	// +kubebuilder:validation:Enum="15";"16";"17";"18"
	// +kubebuilder:default="17"
	// +kubebuilder:validation:XValidation:rule="self >= oldSelf",message="spec.database.version cannot be downgraded"
	// +optional
	Version string `json:"version,omitempty"`

	// Storage is the database volume.
	// +required
	Storage DatabaseStorage `json:"storage"`

	// Resources of the database container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
}

// DatabaseStorage is the persistent volume of the database.
type DatabaseStorage struct {
	// Size of the volume, e.g. 10Gi.
	// +kubebuilder:validation:XValidation:rule="quantity(string(self)).isGreaterThan(quantity('0'))",message="spec.database.storage.size must be greater than zero"
	// +required
	Size resource.Quantity `json:"size"`

	// StorageClassName of the volume; the cluster's default class when unset.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// FirewallSpec lists what may reach the tenant and what the tenant may reach. DNS is always allowed.
type FirewallSpec struct {
	// IngressPorts are the TCP ports of the tenant's pods reachable from the allowed sources.
	// +kubebuilder:default={80,443}
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=65535
	// +listType=set
	// +optional
	IngressPorts []int32 `json:"ingressPorts,omitempty"`

	// AllowedCIDRs may reach the ingress ports, e.g. an office network or a load balancer.
	// The cluster's own ranges (pods, services, nodes, link-local metadata; the operator's
	// options) are excepted from every CIDR that contains them, and a CIDR inside one of them is
	// refused: the ingress controller's namespace belongs in ingressNamespaces instead.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="spec.firewall.allowedCIDRs must contain CIDRs such as 203.0.113.0/24"
	// +kubebuilder:validation:XValidation:rule="self.all(c, !isCIDR(c) || !(cidr(c).ip().family() == 4 ? cidr('169.254.0.0/16').containsCIDR(c) : cidr('fe80::/10').containsCIDR(c) || cidr('fd00:ec2::254/128').containsCIDR(c)))",message="spec.firewall.allowedCIDRs must not lie inside the link-local ranges 169.254.0.0/16 and fe80::/10 or be fd00:ec2::254/128: they hold the cloud metadata service and node-local addresses"
	// +listType=set
	// +optional
	AllowedCIDRs []string `json:"allowedCIDRs,omitempty"`

	// AllowedServiceTypes lets the tenant create Services of these types, which expose its pods
	// on every node (NodePort) or on a cloud load balancer (LoadBalancer), past the ingress
	// controller. Admission refuses both when they are not listed, and the quota's default for
	// services.nodeports and services.loadbalancers is 0 then (5 when listed; a LoadBalancer
	// Service takes node ports too). Services with externalIPs or of type ExternalName are always
	// refused.
	// +kubebuilder:validation:MaxItems=2
	// +kubebuilder:validation:items:Enum=NodePort;LoadBalancer
	// +listType=set
	// +optional
	AllowedServiceTypes []corev1.ServiceType `json:"allowedServiceTypes,omitempty"`

	// IngressNamespaces may reach the ingress ports, e.g. the ingress controller's namespace.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +listType=set
	// +optional
	IngressNamespaces []string `json:"ingressNamespaces,omitempty"`

	// Egress lists the destinations the tenant's pods may reach outside the cluster.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	Egress []EgressRule `json:"egress,omitempty"`
}

// EgressRule allows traffic to some CIDRs, on some ports or all.
type EgressRule struct {
	// ToCIDRs are the destinations. The cluster's own ranges (pods, services, nodes, link-local
	// metadata; the operator's options) are excepted from every CIDR that contains them, so
	// 0.0.0.0/0 means the world outside the cluster, and a CIDR inside one of them is refused.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="self.all(c, isCIDR(c))",message="spec.firewall.egress[].toCIDRs must contain CIDRs such as 198.51.100.0/24"
	// +kubebuilder:validation:XValidation:rule="self.all(c, !isCIDR(c) || !(cidr(c).ip().family() == 4 ? cidr('169.254.0.0/16').containsCIDR(c) : cidr('fe80::/10').containsCIDR(c) || cidr('fd00:ec2::254/128').containsCIDR(c)))",message="spec.firewall.egress[].toCIDRs must not lie inside the link-local ranges 169.254.0.0/16 and fe80::/10 or be fd00:ec2::254/128: they hold the cloud metadata service and node-local addresses"
	// +listType=set
	// +required
	ToCIDRs []string `json:"toCIDRs"`

	// Ports are the TCP destination ports; all ports when empty.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=65535
	// +listType=set
	// +optional
	Ports []int32 `json:"ports,omitempty"`
}

// AccessSpec grants roles in the tenant's namespace. Nobody has access unless listed.
type AccessSpec struct {
	// Admins get the admin role: everything in the namespace except what the operator owns.
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:XValidation:rule="self.all(s, s.kind != 'ServiceAccount' || has(s.namespace))",message="spec.access.admins: a ServiceAccount subject needs a namespace"
	// +kubebuilder:validation:XValidation:rule="self.all(s, s.kind in ['User', 'Group', 'ServiceAccount'])",message="spec.access.admins[].kind must be User, Group or ServiceAccount"
	// +listType=atomic
	// +optional
	Admins []rbacv1.Subject `json:"admins,omitempty"`

	// Editors get the edit role.
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:XValidation:rule="self.all(s, s.kind != 'ServiceAccount' || has(s.namespace))",message="spec.access.editors: a ServiceAccount subject needs a namespace"
	// +kubebuilder:validation:XValidation:rule="self.all(s, s.kind in ['User', 'Group', 'ServiceAccount'])",message="spec.access.editors[].kind must be User, Group or ServiceAccount"
	// +listType=atomic
	// +optional
	Editors []rbacv1.Subject `json:"editors,omitempty"`

	// Viewers get the view role: read-only, no Secrets.
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:XValidation:rule="self.all(s, s.kind != 'ServiceAccount' || has(s.namespace))",message="spec.access.viewers: a ServiceAccount subject needs a namespace"
	// +kubebuilder:validation:XValidation:rule="self.all(s, s.kind in ['User', 'Group', 'ServiceAccount'])",message="spec.access.viewers[].kind must be User, Group or ServiceAccount"
	// +listType=atomic
	// +optional
	Viewers []rbacv1.Subject `json:"viewers,omitempty"`
}

// MonitoringSpec configures uptime probes and the availability objective.
type MonitoringSpec struct {
	// URL probed for uptime; https://<first hostname>/ when unset.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https' && url(self).getHostname() != ''",message="spec.monitoring.url must be an https URL such as https://app.example.com/healthz"
	// +optional
	URL string `json:"url,omitempty"`

	// Interval between probes. The default of 15s lets the TenantDown alert fire within 100 s of
	// an outage; a longer interval makes that longer (status.uptime.detectionSeconds says by how
	// much), and above 25s the promise of an alert within two minutes no longer holds.
	// +kubebuilder:default="15s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5s')",message="spec.monitoring.interval must be at least 5s"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('1h')",message="spec.monitoring.interval must be at most 1h"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`

	// Objective is the availability target in percent, e.g. "99.5".
	// +kubebuilder:validation:Pattern=`^[0-9]{1,3}(\.[0-9]{1,3})?$`
	// +kubebuilder:validation:XValidation:rule="double(self) > 0.0 && double(self) <= 100.0",message="spec.monitoring.objective must be a percentage above 0 and at most 100"
	// +kubebuilder:default="99.5"
	// +optional
	Objective string `json:"objective,omitempty"`

	// BusinessHours limits the objective to working hours; around the clock when unset.
	// +optional
	BusinessHours *BusinessHours `json:"businessHours,omitempty"`
}

// BusinessHours are the hours during which the availability objective applies.
// +kubebuilder:validation:XValidation:rule="self.start < self.end",message="spec.monitoring.businessHours.start must be before end"
type BusinessHours struct {
	// TimeZone is an IANA time zone name, e.g. Europe/Amsterdam.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +required
	TimeZone string `json:"timeZone"`

	// Days of the week the hours apply.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=7
	// +kubebuilder:validation:items:Enum=Monday;Tuesday;Wednesday;Thursday;Friday;Saturday;Sunday
	// +listType=set
	// +kubebuilder:default={Monday,Tuesday,Wednesday,Thursday,Friday}
	// +optional
	Days []string `json:"days,omitempty"`

	// Start of the working day, HH:MM in TimeZone.
	// +kubebuilder:validation:Pattern=`^([01][0-9]|2[0-3]):[0-5][0-9]$`
	// +required
	Start string `json:"start"`

	// End of the working day, HH:MM in TimeZone (24:00 for midnight).
	// +kubebuilder:validation:Pattern=`^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$`
	// +required
	End string `json:"end"`
}

// TenantPhase summarizes the tenant's state for people; conditions carry the detail.
// +kubebuilder:validation:Enum=Provisioning;Ready;Degraded;Deleting
type TenantPhase string

const (
	TenantPhaseProvisioning TenantPhase = "Provisioning"
	TenantPhaseReady        TenantPhase = "Ready"
	TenantPhaseDegraded     TenantPhase = "Degraded"
	TenantPhaseDeleting     TenantPhase = "Deleting"
)

// TenantStatus is what the operator observed of the tenant's environment.
type TenantStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase summarizes the conditions.
	// +optional
	Phase TenantPhase `json:"phase,omitempty"`

	// Namespace is the tenant's namespace.
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// DeletionPolicy is what deleting the Tenant now does: Delete only while spec.deletionPolicy
	// says so and the allow-delete annotation confirms it, else Retain.
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// Conditions: Ready, plus one per part of the environment.
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// Database is the observed state of the tenant's PostgreSQL.
	// +optional
	Database *DatabaseStatus `json:"database,omitempty"`

	// Certificate is the observed state of the tenant's TLS certificate.
	// +optional
	Certificate *CertificateStatus `json:"certificate,omitempty"`

	// Backups is what the operator found in backup storage.
	// +optional
	Backups *BackupsStatus `json:"backups,omitempty"`

	// Uptime is what the probes measured.
	// +optional
	Uptime *UptimeStatus `json:"uptime,omitempty"`

	// DataKey is the tenant's own backup key: new backups are encrypted to it only.
	// +optional
	DataKey *DataKeyStatus `json:"dataKey,omitempty"`
}

// DataKeyStatus names the tenant's current data key, never the key itself.
type DataKeyStatus struct {
	// ID is the key's fingerprint (128 bits of SHA-256 of its public half, in hex), as backup
	// manifests and erasure records name it.
	// +optional
	ID string `json:"id,omitempty"`
	// SecretName is the Secret in the operator's namespace that keeps the key's public half and
	// its identity wrapped to the BackupPolicy's recipients.
	// +optional
	SecretName string `json:"secretName,omitempty"`
	// CreatedAt is when the key was made.
	// +optional
	CreatedAt *metav1.Time `json:"createdAt,omitempty"`
}

// DatabaseStatus is the observed state of the tenant's PostgreSQL.
type DatabaseStatus struct {
	// Version is the running PostgreSQL major version.
	// +optional
	Version string `json:"version,omitempty"`
	// Host is the in-cluster DNS name of the database service.
	// +optional
	Host string `json:"host,omitempty"`
	// SecretName holds the generated credentials, in the tenant's namespace.
	// +optional
	SecretName string `json:"secretName,omitempty"`
	// ReadyReplicas of the database StatefulSet.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
}

// CertificateStatus is the observed state of the tenant's TLS certificate.
type CertificateStatus struct {
	// SecretName holds the issued certificate, in the tenant's namespace.
	// +optional
	SecretName string `json:"secretName,omitempty"`
	// NotAfter is when the issued certificate expires.
	// +optional
	NotAfter *metav1.Time `json:"notAfter,omitempty"`
}

// BackupsStatus is what the operator found in backup storage.
type BackupsStatus struct {
	// LastSuccessTime is the newest successful backup over all schedules.
	// +optional
	LastSuccessTime *metav1.Time `json:"lastSuccessTime,omitempty"`
	// Schedules has one entry per schedule of the tenant's BackupPolicy.
	// +listType=map
	// +listMapKey=name
	// +optional
	Schedules []ScheduleBackupStatus `json:"schedules,omitempty"`
	// LastVerificationTime is the newest successful verification over all schedules.
	// +optional
	LastVerificationTime *metav1.Time `json:"lastVerificationTime,omitempty"`
}

// ScheduleBackupStatus is the state of one backup schedule of a tenant.
type ScheduleBackupStatus struct {
	// Name of the schedule in the BackupPolicy.
	Name string `json:"name"`
	// LastSuccessTime is when the newest complete backup (manifest stored) finished. When the
	// backups found before have gone from storage, it keeps the last one seen (and count is 0).
	// +optional
	LastSuccessTime *metav1.Time `json:"lastSuccessTime,omitempty"`
	// LastBackupID is the id of that backup.
	// +optional
	LastBackupID string `json:"lastBackupID,omitempty"`
	// LastBackupSizeBytes is the stored size of that backup.
	// +optional
	LastBackupSizeBytes int64 `json:"lastBackupSizeBytes,omitempty"`
	// ExpectedInterval is how old the newest backup may be before it is stale: the longest gap
	// between two runs of the cron schedule plus a grace of a tenth of it (30 minutes to 6
	// hours), or the schedule's maxAge when set.
	// +optional
	ExpectedInterval *metav1.Duration `json:"expectedInterval,omitempty"`
	// LastVerificationTime is when this schedule's backups were last verified, whether the
	// verification passed or not; BackupVerified tells which.
	// +optional
	LastVerificationTime *metav1.Time `json:"lastVerificationTime,omitempty"`
	// Count of complete backups in storage.
	// +optional
	Count int32 `json:"count,omitempty"`
	// NextPrune lists the backup ids the retention policy will delete next.
	// +optional
	NextPrune []string `json:"nextPrune,omitempty"`
	// PointInTime is what a physical schedule's storage holds for point-in-time recovery.
	// +optional
	PointInTime *PointInTimeStatus `json:"pointInTime,omitempty"`
}

// PointInTimeStatus is the span a physical schedule's storage can restore the tenant to, and how
// far its WAL archive has come. It changes when a WAL segment or a base backup is stored, not with
// the passing of time: the archive's lag is the operator's metric
// tenantops_tenant_wal_archive_age_seconds.
type PointInTimeStatus struct {
	// EarliestTime is the oldest moment the tenant can be restored to: where the oldest base
	// backup the archive carries is consistent.
	// +optional
	EarliestTime *metav1.Time `json:"earliestTime,omitempty"`
	// LatestTime is the newest: everything committed before it is in the archive (the end of the
	// archived WAL that follows the newest base backup without a gap).
	// +optional
	LatestTime *metav1.Time `json:"latestTime,omitempty"`
	// BaseBackups is how many base backups can be restored within the window.
	// +optional
	BaseBackups int32 `json:"baseBackups,omitempty"`
	// LastArchivedSegment is the newest WAL segment in the archive, and LastArchivedTime when
	// it was stored.
	// +optional
	LastArchivedSegment string `json:"lastArchivedSegment,omitempty"`
	// +optional
	LastArchivedTime *metav1.Time `json:"lastArchivedTime,omitempty"`
	// WALFiles is how many WAL files the archive holds; retention deletes those no kept base
	// backup needs.
	// +optional
	WALFiles int32 `json:"walFiles,omitempty"`
}

// UptimeStatus is what the probes measured. It changes when the tenant goes down or comes back and
// when its figures are refreshed (at most every 10 minutes, and only when they read differently),
// never with every probe: probe counts and latencies are in the operator's metrics.
type UptimeStatus struct {
	// DownSince is when the tenant stopped answering (the first failed probe of the outage);
	// unset while it answers.
	// +optional
	DownSince *metav1.Time `json:"downSince,omitempty"`
	// DetectionSeconds is the worst case, in seconds, from the tenant going down to the
	// TenantDown alert firing, with this tenant's probe interval and Prometheus scraping and
	// evaluating every 30 s: two probe intervals, the probe timeout and 60 s. 100 with the
	// default interval of 15 s; above 120 the promise of an alert within two minutes does not
	// hold for this tenant.
	// +optional
	DetectionSeconds int32 `json:"detectionSeconds,omitempty"`
	// Ratio24h is the availability over the last 24 hours, in percent.
	// +optional
	Ratio24h string `json:"ratio24h,omitempty"`
	// Ratio7d is the availability over the last 7 days, in percent.
	// +optional
	Ratio7d string `json:"ratio7d,omitempty"`
	// Ratio30d is the availability over the last 30 days, in percent.
	// +optional
	Ratio30d string `json:"ratio30d,omitempty"`
	// ErrorBudgetRemaining is the share of the 30-day error budget left, in percent.
	// +optional
	ErrorBudgetRemaining string `json:"errorBudgetRemaining,omitempty"`
}

// Tenant is one customer's isolated environment.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=tn,categories=tenancy
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 56",message="metadata.name must be at most 56 characters: the namespace is tenant-<name>"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label (lowercase letters, digits and '-'): the namespace is tenant-<name>"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Database",type=string,JSONPath=`.status.conditions[?(@.type=="DatabaseReady")].reason`
// +kubebuilder:printcolumn:name="Certificate",type=string,JSONPath=`.status.conditions[?(@.type=="CertificateReady")].reason`
// +kubebuilder:printcolumn:name="Last Backup",type=date,JSONPath=`.status.backups.lastSuccessTime`
// +kubebuilder:printcolumn:name="Uptime",type=string,JSONPath=`.status.uptime.ratio30d`
// +kubebuilder:printcolumn:name="Down Since",type=date,JSONPath=`.status.uptime.downSince`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Tenant struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec   TenantSpec   `json:"spec"`
	Status TenantStatus `json:"status,omitempty"`
}

// TenantList is a list of Tenants.
// +kubebuilder:object:root=true
type TenantList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Tenant `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Tenant{}, &TenantList{})
}

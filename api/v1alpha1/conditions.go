package v1alpha1

// Condition types. Every kind has Ready, the summary that kstatus, Argo CD and Flux read; a Tenant
// has one more condition per part of its environment.
const (
	// ConditionReady is True when every part of the object is as its spec says.
	ConditionReady = "Ready"

	// ConditionReconciling is True while the tenant is being provisioned or changed, and absent
	// otherwise; kstatus reads it as InProgress.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True while the tenant cannot progress without a person (a failing part,
	// an invalid spec), and absent otherwise; kstatus reads it as Failed.
	ConditionStalled = "Stalled"

	// ConditionNamespaceReady: the tenant's namespace, quota and limits exist.
	ConditionNamespaceReady = "NamespaceReady"
	// ConditionAccessReady: the role bindings for admins, editors and viewers exist.
	ConditionAccessReady = "AccessReady"
	// ConditionDatabaseReady: the PostgreSQL StatefulSet is ready with its credentials and TLS.
	ConditionDatabaseReady = "DatabaseReady"
	// ConditionFirewallReady: the NetworkPolicies exist.
	ConditionFirewallReady = "FirewallReady"
	// ConditionCertificateReady: cert-manager has issued the tenant's certificate.
	ConditionCertificateReady = "CertificateReady"
	// ConditionRouteReady: the tenant's hostnames are routed to its Service (spec.route): the
	// Ingress exists, or the Gateway accepted the HTTPRoute.
	ConditionRouteReady = "RouteReady"
	// ConditionPoliciesResolved: the referenced BackupPolicy and RetentionPolicy exist and are valid.
	ConditionPoliciesResolved = "PoliciesResolved"
	// ConditionBackupsFresh: every schedule has a backup in storage younger than its interval allows.
	ConditionBackupsFresh = "BackupsFresh"
	// ConditionBackupVerified: the newest verification of the backups passed.
	ConditionBackupVerified = "BackupVerified"
	// ConditionWALArchiving: the database's WAL streams to every physical schedule's storage
	// (reasons Healthy, Lagging, Failing). Absent when no schedule is physical.
	ConditionWALArchiving = "WALArchiving"
	// ConditionAvailable: the tenant's URL answered the last probes.
	ConditionAvailable = "Available"
	// ConditionUptimeObjectiveMet: the measured availability meets spec.monitoring.objective.
	ConditionUptimeObjectiveMet = "UptimeObjectiveMet"
	// ConditionDeletionBlocked: something keeps the Tenant from being deleted; the message names it.
	ConditionDeletionBlocked = "DeletionBlocked"
)

// Condition reasons, CamelCase, shared by the kinds where their meaning is the same.
const (
	// ReasonSucceeded: the part is as its spec says.
	ReasonSucceeded = "Succeeded"
	// ReasonProgressing: the part is being created or changed; no action is needed yet.
	ReasonProgressing = "Progressing"
	// ReasonInvalidSpec: the spec has an error that admission did not catch (e.g. the webhook
	// was down); the message names the field. The user must fix the spec.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonApplyFailed: writing an owned object failed; the operator retries with back-off.
	ReasonApplyFailed = "ApplyFailed"
	// ReasonDependencyNotReady: another part this one needs is not ready yet.
	ReasonDependencyNotReady = "DependencyNotReady"
	// ReasonDeleting: the object is being deleted.
	ReasonDeleting = "Deleting"

	// ReasonNamespaceConflict: the namespace exists but belongs to something else.
	ReasonNamespaceConflict = "NamespaceConflict"
	// ReasonNamespaceTerminating: the namespace is still being deleted from before.
	ReasonNamespaceTerminating = "NamespaceTerminating"
	// ReasonRetainedNamespace: the namespace holds a deleted Tenant's data (same name, another
	// UID); the new Tenant adopts it only with the adopt-namespace annotation.
	ReasonRetainedNamespace = "RetainedNamespace"
	// ReasonNoSubjects: no admins, editors or viewers are listed; nobody has access.
	ReasonNoSubjects = "NoSubjects"
	// ReasonPVCPending: the database volume claim is not bound yet.
	ReasonPVCPending = "PVCPending"
	// ReasonQuotaExceeded: the namespace quota refuses the database pod.
	ReasonQuotaExceeded = "QuotaExceeded"
	// ReasonPodNotReady: the database pod exists but is not ready.
	ReasonPodNotReady = "PodNotReady"
	// ReasonIssuerNotFound: the certificate's issuer does not exist.
	ReasonIssuerNotFound = "IssuerNotFound"
	// ReasonIssuerNotReady: the certificate's issuer exists but is not ready.
	ReasonIssuerNotReady = "IssuerNotReady"
	// ReasonCertificateNotIssued: cert-manager has not issued the certificate yet.
	ReasonCertificateNotIssued = "CertificateNotIssued"
	// ReasonCertManagerMissing: cert-manager's CRDs are not installed in the cluster.
	ReasonCertManagerMissing = "CertManagerMissing"
	// ReasonNoRoute: spec.route.kind is None; the tenant routes its hostnames itself.
	ReasonNoRoute = "NoRoute"
	// ReasonGatewayAPIMissing: spec.route.kind is HTTPRoute and Gateway API's CRDs are not
	// installed in the cluster.
	ReasonGatewayAPIMissing = "GatewayAPIMissing"
	// ReasonRouteNotAccepted: the Gateway refused the tenant's HTTPRoute; the message says why.
	ReasonRouteNotAccepted = "RouteNotAccepted"
	// ReasonPolicyNotFound: a referenced BackupPolicy or RetentionPolicy does not exist.
	ReasonPolicyNotFound = "PolicyNotFound"
	// ReasonPolicyNotReady: a referenced policy exists but is not valid.
	ReasonPolicyNotReady = "PolicyNotReady"
	// ReasonNoPolicy: the tenant references no policy; nothing to do.
	ReasonNoPolicy = "NoPolicy"
	// ReasonSecretNotFound: a Secret a policy names does not exist in the operator's namespace.
	ReasonSecretNotFound = "SecretNotFound"

	// Backup freshness reasons.
	ReasonFresh = "Fresh"
	// ReasonHealthy: WAL reaches storage as fast as the database writes it.
	ReasonHealthy = "Healthy"
	// ReasonLagging: the WAL receiver runs, but the archive is behind (a base backup's WAL is not
	// stored yet long after it finished); the recovery point grows.
	ReasonLagging = "Lagging"
	// ReasonFailing: WAL does not reach storage (the receiver is not running or cannot store);
	// the database keeps the WAL it has not handed over, on its own volume, which fills.
	ReasonFailing = "Failing"
	// ReasonFirstBackupPending: no backup exists yet and none is due yet; nothing is wrong.
	ReasonFirstBackupPending = "FirstBackupPending"
	ReasonStale              = "Stale"
	ReasonMissing            = "Missing"
	ReasonStorageUnreachable = "StorageUnreachable"
	ReasonJobFailing         = "JobFailing"
	// ReasonUntrustedBackups: storage holds backups whose signature does not check against the
	// policy's keys; they are ignored, and someone who could write the bucket may have made them.
	ReasonUntrustedBackups   = "UntrustedBackups"
	ReasonSuspended          = "Suspended"
	ReasonVerified           = "Verified"
	ReasonVerificationFailed = "VerificationFailed"
	ReasonNotVerified        = "NotVerified"

	// ReasonProbeSucceeded: the tenant's URL and database answer their probes.
	ReasonProbeSucceeded = "ProbeSucceeded"
	// ReasonDown: the tenant's URL or database failed two probes in a row; the message says
	// since when and what the probe found.
	ReasonDown = "Down"
	// ReasonObjectiveMet: the measured availability meets the objective.
	ReasonObjectiveMet = "ObjectiveMet"
	// ReasonObjectiveMissed: the measured availability is below the objective.
	ReasonObjectiveMissed = "ObjectiveMissed"
	// ReasonNotMonitored: the tenant is not probed (probes are off, or nothing to probe).
	ReasonNotMonitored = "NotMonitored"

	// ReasonErasing: a tenant deleted with policy Delete waits for its backup jobs to stop and
	// for its data key and backups to be erased from storage.
	ReasonErasing = "Erasing"
	// ReasonErasureFailed: the erasure could not be carried out; the message says what failed.
	// It is tried again.
	ReasonErasureFailed = "ErasureFailed"
	// ReasonDeletionPolicyChanged: what deleting the Tenant does changed (an event).
	ReasonDeletionPolicyChanged = "DeletionPolicyChanged"

	// ReasonRetained: on deletion with policy Retain, the namespace and data are kept.
	ReasonRetained = "Retained"

	// Reasons of an ErasureRequest's Ready condition.
	// ReasonRequestPending: the request waits for what its Job needs (the BackupPolicy and its
	// signing key, the tenant's data key, database credentials) or for the Job to start.
	ReasonRequestPending = "Pending"
	// ReasonRequestRunning: the Job runs the function and appends the ledger entry.
	ReasonRequestRunning = "Running"
	// ReasonRequestSucceeded: the function committed and the request is in the ledger of every
	// storage location.
	ReasonRequestSucceeded = "Succeeded"
	// ReasonRequestFailed: the Job failed; the message says why. A failure after the commit means
	// the erasure stands in the live database but a restore could undo it: make the request again.
	ReasonRequestFailed = "Failed"
	// ReasonRequestNotPossible: the tenant has no BackupPolicy (no ledger to record it in) or does
	// not exist.
	ReasonRequestNotPossible = "NotPossible"
)

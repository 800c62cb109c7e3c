package controllers

import (
	"cmp"
	"fmt"
	"strings"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/backupcheck"
	"github.com/tenantops/tenant-operator/internal/uptime"
)

// One setter per condition. Each is computed from what its step observed in this pass, never from
// the status an earlier pass wrote, so the same observation always gives the same condition.

// Messages every part that waits for the namespace shows.
const waitingForNamespace = "Waiting for the namespace"

// namespaceObservation is what reconcileNamespace saw.
type namespaceObservation struct {
	name string
	// err is a failure to read or write the namespace, its quota or limits.
	err error
	// conflict: the namespace exists and is someone else's; terminating: an earlier tenant's is
	// still being deleted.
	conflict, terminating bool
	// predecessor is the UID of the deleted Tenant of the same name whose data the namespace
	// holds, when this Tenant may not adopt it.
	predecessor string
}

func setNamespaceReady(t *v1alpha1.Tenant, o namespaceObservation) {
	c := metav1.Condition{Type: v1alpha1.ConditionNamespaceReady, Status: metav1.ConditionFalse}
	switch {
	case o.conflict:
		c.Reason, c.Message = v1alpha1.ReasonNamespaceConflict, fmt.Sprintf("Namespace %s exists and does not belong to this tenant; delete or rename it", o.name)
	case o.terminating:
		c.Reason, c.Message = v1alpha1.ReasonNamespaceTerminating, fmt.Sprintf("Namespace %s from an earlier tenant is still being deleted", o.name)
	case o.predecessor != "":
		c.Reason = v1alpha1.ReasonRetainedNamespace
		c.Message = fmt.Sprintf("Namespace %s holds the database and backups of a deleted Tenant of the same name (uid %s): another customer's data. "+
			"Annotate this Tenant %s: \"true\" to take them over, or delete the namespace for a new, empty one", o.name, o.predecessor, v1alpha1.AnnotationAdoptNamespace)
	case o.err != nil:
		c.Reason, c.Message = v1alpha1.ReasonApplyFailed, o.err.Error()
	default:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonSucceeded
		c.Message = fmt.Sprintf("Namespace %s with Pod Security restricted, quota and limits", o.name)
	}
	setCondition(t, c)
}

// accessObservation is what reconcileAccess saw.
type accessObservation struct {
	blocked                 bool
	err                     error
	admins, editors, viewer int
}

func setAccessReady(t *v1alpha1.Tenant, o accessObservation) {
	c := partCondition(v1alpha1.ConditionAccessReady, o.blocked, o.err)
	switch {
	case c.Reason != "":
	case o.admins+o.editors+o.viewer == 0:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonNoSubjects
		c.Message = "No admins, editors or viewers listed: nobody has access to the tenant's namespace"
	default:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonSucceeded
		c.Message = fmt.Sprintf("%d admins, %d editors, %d viewers bound", o.admins, o.editors, o.viewer)
	}
	setCondition(t, c)
}

// databaseObservation is what reconcileDatabase saw.
type databaseObservation struct {
	blocked bool
	err     error
	// certManagerMissing: no server certificate can be issued, and PostgreSQL refuses to start
	// without one.
	certManagerMissing bool
	ready              bool
	// waitReason and waitMessage say what a database that is not ready waits for.
	waitReason, waitMessage string
	version, host           string
}

func setDatabaseReady(t *v1alpha1.Tenant, o databaseObservation) {
	c := partCondition(v1alpha1.ConditionDatabaseReady, o.blocked, o.err)
	switch {
	case c.Reason != "":
	case o.ready:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonSucceeded
		c.Message = fmt.Sprintf("PostgreSQL %s ready at %s", o.version, o.host)
	case o.certManagerMissing:
		c.Reason, c.Message = v1alpha1.ReasonCertManagerMissing, "cert-manager is not installed: the database's TLS certificate cannot be issued"
	default:
		c.Reason, c.Message = o.waitReason, o.waitMessage
	}
	setCondition(t, c)
}

// firewallObservation is what reconcileFirewall saw.
type firewallObservation struct {
	blocked  bool
	err      error
	policies int
}

func setFirewallReady(t *v1alpha1.Tenant, o firewallObservation) {
	c := partCondition(v1alpha1.ConditionFirewallReady, o.blocked, o.err)
	if c.Reason == "" {
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonSucceeded
		c.Message = fmt.Sprintf("%d network policies: default deny, with the listed allows", o.policies)
	}
	setCondition(t, c)
}

// certificateObservation is what reconcileCertificate saw.
type certificateObservation struct {
	blocked bool
	// issuer is the issuer the tenant's certificate needs; empty name when none is configured.
	issuer             v1alpha1.IssuerReference
	certManagerMissing bool
	issuerMissing      bool
	issuerReady        bool
	err                error
	issued             bool
	// pending is what cert-manager says of a certificate not issued yet.
	pending   string
	hostnames []string
}

func setCertificateReady(t *v1alpha1.Tenant, o certificateObservation) {
	c := partCondition(v1alpha1.ConditionCertificateReady, o.blocked, nil)
	kind, name := o.issuer.Kind, o.issuer.Name
	switch {
	case c.Reason != "":
	case name == "":
		c.Reason, c.Message = v1alpha1.ReasonIssuerNotFound, "No issuer: set spec.tls.issuerRef or start the operator with --default-issuer-name"
	case o.certManagerMissing:
		c.Reason, c.Message = v1alpha1.ReasonCertManagerMissing, "cert-manager is not installed in the cluster: its CRDs are missing"
	case o.issuerMissing:
		c.Reason, c.Message = v1alpha1.ReasonIssuerNotFound, fmt.Sprintf("%s %q not found; create it or change spec.tls.issuerRef", kind, name)
	case o.err != nil:
		c.Reason, c.Message = v1alpha1.ReasonApplyFailed, o.err.Error()
	case o.issued:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonSucceeded
		c.Message = fmt.Sprintf("Certificate for %s issued by %s %s", strings.Join(o.hostnames, ", "), kind, name)
	case !o.issuerReady:
		c.Reason, c.Message = v1alpha1.ReasonIssuerNotReady, fmt.Sprintf("%s %q is not ready", kind, name)
	default:
		c.Reason, c.Message = v1alpha1.ReasonCertificateNotIssued, "Waiting for cert-manager to issue the certificate: "+o.pending
	}
	setCondition(t, c)
}

// routeObservation is what reconcileRoute saw.
type routeObservation struct {
	blocked           bool
	err               error
	route             v1alpha1.RouteSpec
	hostnames         []string
	gatewayAPIMissing bool
	// accepted: every Gateway the HTTPRoute names accepted it; refused says why one did not.
	accepted bool
	refused  string
}

func setRouteReady(t *v1alpha1.Tenant, o routeObservation) {
	c := partCondition(v1alpha1.ConditionRouteReady, o.blocked, o.err)
	hosts := strings.Join(o.hostnames, ", ")
	switch {
	case c.Reason != "":
	case o.route.Kind == v1alpha1.RouteKindNone:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, v1alpha1.ReasonNoRoute, "spec.route.kind is None: the tenant routes its hostnames itself"
	case o.route.Kind == v1alpha1.RouteKindIngress:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonSucceeded
		c.Message = fmt.Sprintf("Ingress for %s to Service %s port %d", hosts, o.route.ServiceName, o.route.Port)
	case o.gatewayAPIMissing:
		c.Reason, c.Message = v1alpha1.ReasonGatewayAPIMissing, "Gateway API is not installed in the cluster: spec.route.kind HTTPRoute cannot be served"
	case o.accepted:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonSucceeded
		c.Message = fmt.Sprintf("HTTPRoute for %s accepted by Gateway %s/%s", hosts, o.route.GatewayRef.Namespace, o.route.GatewayRef.Name)
	case o.refused != "":
		c.Reason = v1alpha1.ReasonRouteNotAccepted
		c.Message = fmt.Sprintf("Gateway %s/%s does not accept the HTTPRoute: %s", o.route.GatewayRef.Namespace, o.route.GatewayRef.Name, o.refused)
	default:
		c.Reason = v1alpha1.ReasonProgressing
		c.Message = fmt.Sprintf("Waiting for Gateway %s/%s to accept the HTTPRoute", o.route.GatewayRef.Namespace, o.route.GatewayRef.Name)
	}
	setCondition(t, c)
}

// policiesObservation is what reconcilePolicies saw.
type policiesObservation struct {
	noBackupPolicy bool
	// err is a failure to read a policy.
	err error
	// reason and problems say why a referenced policy cannot be used.
	reason   string
	problems []string
}

func setPoliciesResolved(t *v1alpha1.Tenant, o policiesObservation) {
	c := metav1.Condition{Type: v1alpha1.ConditionPoliciesResolved, Status: metav1.ConditionTrue}
	switch {
	case o.err != nil:
		c.Status, c.Reason, c.Message = metav1.ConditionUnknown, v1alpha1.ReasonProgressing, "Cannot read the referenced policies: "+o.err.Error()
	case len(o.problems) > 0:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, o.reason, strings.Join(o.problems, "; ")
	case o.noBackupPolicy:
		c.Reason, c.Message = v1alpha1.ReasonNoPolicy, "No BackupPolicy referenced: this tenant's database is not backed up"
	default:
		c.Reason, c.Message = v1alpha1.ReasonSucceeded, "Referenced policies exist and are ready"
	}
	setCondition(t, c)
}

// backupsObservation is what reconcileBackups saw: the verdict on the storage, or why there is
// none.
type backupsObservation struct {
	noPolicy bool
	// unavailablePolicy names a referenced BackupPolicy that is missing or not ready.
	unavailablePolicy string
	blocked           bool
	err               error
	verdict           *backupcheck.Verdict
}

func setBackupsFresh(t *v1alpha1.Tenant, o backupsObservation) {
	c := metav1.Condition{Type: v1alpha1.ConditionBackupsFresh}
	switch {
	case o.noPolicy:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, v1alpha1.ReasonNoPolicy, "No BackupPolicy referenced: this tenant's database is not backed up"
	case o.unavailablePolicy != "":
		c.Status, c.Reason = metav1.ConditionUnknown, v1alpha1.ReasonDependencyNotReady
		c.Message = fmt.Sprintf("BackupPolicy %q is not available; see PoliciesResolved", o.unavailablePolicy)
	case o.blocked:
		c.Status, c.Reason, c.Message = metav1.ConditionUnknown, v1alpha1.ReasonDependencyNotReady, waitingForNamespace
	case o.err != nil:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, o.err.Error()
	default:
		c = o.verdict.Fresh
	}
	setCondition(t, c)
}

func setBackupVerified(t *v1alpha1.Tenant, o backupsObservation) {
	c := metav1.Condition{Type: v1alpha1.ConditionBackupVerified, Status: metav1.ConditionUnknown}
	switch {
	case o.noPolicy:
		c.Reason, c.Message = v1alpha1.ReasonNoPolicy, "No BackupPolicy referenced"
	case o.unavailablePolicy != "":
		c.Reason = v1alpha1.ReasonDependencyNotReady
		c.Message = fmt.Sprintf("BackupPolicy %q is not available; see PoliciesResolved", o.unavailablePolicy)
	case o.blocked || o.err != nil || o.verdict == nil:
		c.Reason, c.Message = v1alpha1.ReasonDependencyNotReady, "Waiting for the backup schedules to be in place"
	default:
		c = o.verdict.Verified
	}
	setCondition(t, c)
}

// monitoringObservation is what reconcileMonitoring saw.
type monitoringObservation struct {
	// notMonitored says why the tenant is not probed; empty when it is.
	notMonitored string
	// invalidObjective is a spec.monitoring the objective cannot be read from.
	invalidObjective error
	url              string
	report           uptime.Report
}

// setAvailable sets Available. It and UptimeObjectiveMet describe the tenant's own service, so
// they do not make the environment's Ready False: a tenant that has not deployed its application
// yet is not a broken environment. Alerts watch them instead.
func setAvailable(t *v1alpha1.Tenant, o monitoringObservation) {
	c := o.report.AvailableCondition(o.url)
	if o.notMonitored != "" {
		c = metav1.Condition{Type: v1alpha1.ConditionAvailable, Status: metav1.ConditionUnknown, Reason: v1alpha1.ReasonNotMonitored, Message: o.notMonitored}
	}
	setCondition(t, c)
}

func setUptimeObjectiveMet(t *v1alpha1.Tenant, o monitoringObservation) {
	c := metav1.Condition{Type: v1alpha1.ConditionUptimeObjectiveMet, Status: metav1.ConditionUnknown}
	switch {
	case o.invalidObjective != nil:
		// Admission refuses this; a spec that slipped by is the owner's to fix.
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, o.invalidObjective.Error()
	case o.notMonitored != "":
		c.Reason, c.Message = v1alpha1.ReasonNotMonitored, o.notMonitored
	case o.report.Figures == nil:
		c.Reason, c.Message = v1alpha1.ReasonProgressing, "Waiting for the first probes"
	default:
		c = o.report.Figures.Objective
	}
	setCondition(t, c)
}

// setDeletionBlocked says what keeps a deletion from finishing.
func setDeletionBlocked(t *v1alpha1.Tenant, reason, message string) {
	setCondition(t, metav1.Condition{Type: v1alpha1.ConditionDeletionBlocked, Status: metav1.ConditionTrue, Reason: reason, Message: message})
}

// setInvalidSpec marks the whole tenant as needing a fix by its owner.
func setInvalidSpec(t *v1alpha1.Tenant, message string) {
	t.Status.Phase = v1alpha1.TenantPhaseDegraded
	setCondition(t, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonInvalidSpec, Message: message})
	setCondition(t, metav1.Condition{Type: v1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonInvalidSpec, Message: message})
	meta.RemoveStatusCondition(&t.Status.Conditions, v1alpha1.ConditionReconciling)
}

// partCondition starts a part's condition: DependencyNotReady while the namespace is blocked,
// ApplyFailed after an error; with an empty Reason when the caller decides.
func partCondition(conditionType string, blocked bool, err error) metav1.Condition {
	c := metav1.Condition{Type: conditionType, Status: metav1.ConditionFalse}
	switch {
	case blocked:
		c.Reason, c.Message = v1alpha1.ReasonDependencyNotReady, waitingForNamespace
	case err != nil:
		c.Reason, c.Message = v1alpha1.ReasonApplyFailed, err.Error()
	}
	return c
}

// setCondition sets c with the tenant's generation. meta.SetStatusCondition keeps
// lastTransitionTime unless the status flips, so setting the same condition again writes nothing.
func setCondition(t *v1alpha1.Tenant, c metav1.Condition) {
	c.ObservedGeneration = t.Generation
	c.Message = bound(c.Message, maxConditionMessage)
	meta.SetStatusCondition(&t.Status.Conditions, c)
}

// maxConditionMessage bounds a condition's message: the API refuses a status whose messages pass
// 32 KiB, and a refused status patch would freeze the Tenant's status at its last value. Errors
// of several schedules, or long storage errors, must not get there.
const maxConditionMessage = 1024

// bound cuts a message to at most n bytes, at a character boundary.
func bound(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = " …"
	cut := n - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// tenantPartConditions are the conditions Ready summarizes, in the order the parts reconcile.
var tenantPartConditions = []string{
	v1alpha1.ConditionNamespaceReady,
	v1alpha1.ConditionAccessReady,
	v1alpha1.ConditionDatabaseReady,
	v1alpha1.ConditionFirewallReady,
	v1alpha1.ConditionCertificateReady,
	v1alpha1.ConditionRouteReady,
	v1alpha1.ConditionPoliciesResolved,
}

// tenantHealthConditions are summarized by Ready only when False: they judge an environment that
// exists (backups fresh and verified), and Unknown means not judged yet, which must not hold a
// new tenant in Provisioning until its first backup is due.
var tenantHealthConditions = []string{
	v1alpha1.ConditionBackupsFresh,
	v1alpha1.ConditionBackupVerified,
}

// waitingReasons are reasons that mean "not yet": the operator or the cluster is still working and
// no person needs to act. Any other False reason means something needs fixing.
var waitingReasons = map[string]bool{
	v1alpha1.ReasonProgressing:          true,
	v1alpha1.ReasonDependencyNotReady:   true,
	v1alpha1.ReasonPVCPending:           true,
	v1alpha1.ReasonPodNotReady:          true,
	v1alpha1.ReasonCertificateNotIssued: true,
	v1alpha1.ReasonNamespaceTerminating: true,
}

// summarizeTenant sets Ready, Reconciling, Stalled and the phase from the part conditions of
// this pass.
func summarizeTenant(t *v1alpha1.Tenant) {
	if !t.DeletionTimestamp.IsZero() {
		t.Status.Phase = v1alpha1.TenantPhaseDeleting
		setCondition(t, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonDeleting, Message: "The tenant is being deleted"})
		return
	}
	var waiting, failing []string
	failingReason := ""
	for _, conditionType := range tenantPartConditions {
		c := meta.FindStatusCondition(t.Status.Conditions, conditionType)
		switch {
		case c == nil:
			waiting = append(waiting, conditionType+": not reconciled yet")
		case c.Status == metav1.ConditionTrue:
		case waitingReasons[c.Reason]:
			waiting = append(waiting, fmt.Sprintf("%s: %s", conditionType, c.Message))
		default:
			failing = append(failing, fmt.Sprintf("%s: %s", conditionType, c.Message))
			failingReason = cmp.Or(failingReason, c.Reason)
		}
	}
	for _, conditionType := range tenantHealthConditions {
		if c := meta.FindStatusCondition(t.Status.Conditions, conditionType); c != nil && c.Status == metav1.ConditionFalse {
			failing = append(failing, fmt.Sprintf("%s: %s", conditionType, c.Message))
			failingReason = cmp.Or(failingReason, c.Reason)
		}
	}
	// Reconciling and Stalled are the abnormal-true conditions kstatus reads (as Flux's objects
	// carry them): InProgress while provisioning, Failed while something needs a person, Current
	// when neither is present. Argo CD's and Flux's health checks read them the same way.
	ready := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse}
	switch {
	case len(failing) > 0:
		t.Status.Phase = v1alpha1.TenantPhaseDegraded
		ready.Reason, ready.Message = failingReason, strings.Join(failing, "; ")
		setCondition(t, metav1.Condition{Type: v1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: ready.Reason, Message: ready.Message})
		meta.RemoveStatusCondition(&t.Status.Conditions, v1alpha1.ConditionReconciling)
	case len(waiting) > 0:
		t.Status.Phase = v1alpha1.TenantPhaseProvisioning
		ready.Reason, ready.Message = v1alpha1.ReasonProgressing, strings.Join(waiting, "; ")
		setCondition(t, metav1.Condition{Type: v1alpha1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: ready.Reason, Message: ready.Message})
		meta.RemoveStatusCondition(&t.Status.Conditions, v1alpha1.ConditionStalled)
	default:
		t.Status.Phase = v1alpha1.TenantPhaseReady
		ready.Status, ready.Reason, ready.Message = metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "Every part of the environment is ready"
		meta.RemoveStatusCondition(&t.Status.Conditions, v1alpha1.ConditionReconciling)
		meta.RemoveStatusCondition(&t.Status.Conditions, v1alpha1.ConditionStalled)
	}
	setCondition(t, ready)
}

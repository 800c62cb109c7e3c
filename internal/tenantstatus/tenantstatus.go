// Package tenantstatus computes a Tenant's conditions from what one reconcile pass observed: one
// setter per condition, each a pure function of its part's observation (never of the status an
// earlier pass wrote), and Summarize, which derives Ready, Reconciling, Stalled and the phase from
// them. The reconciler observes; this package judges. Messages are bounded, so a status always
// patches.
package tenantstatus

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/backupcheck"
	"github.com/tenantops/tenant-operator/internal/uptime"
)

// Messages every part that waits for the namespace shows.
const waitingForNamespace = "Waiting for the namespace"

// NamespaceObservation is what reconcileNamespace saw.
type NamespaceObservation struct {
	Name string
	// Err is a failure to read or write the namespace, its quota or limits.
	Err error
	// Conflict: the namespace exists and is someone else's; Terminating: an earlier tenant's is
	// still being deleted.
	Conflict, Terminating bool
	// Predecessor is the UID of the deleted Tenant of the same name whose data the namespace
	// holds, when this Tenant may not adopt it.
	Predecessor string
}

// SetNamespaceReady sets NamespaceReady from what its step observed.
func SetNamespaceReady(t *v1alpha1.Tenant, o NamespaceObservation) {
	c := metav1.Condition{Type: v1alpha1.ConditionNamespaceReady, Status: metav1.ConditionFalse}
	switch {
	case o.Conflict:
		c.Reason, c.Message = v1alpha1.ReasonNamespaceConflict, fmt.Sprintf("Namespace %s exists and does not belong to this tenant; delete or rename it", o.Name)
	case o.Terminating:
		c.Reason, c.Message = v1alpha1.ReasonNamespaceTerminating, fmt.Sprintf("Namespace %s from an earlier tenant is still being deleted", o.Name)
	case o.Predecessor != "":
		c.Reason = v1alpha1.ReasonRetainedNamespace
		c.Message = fmt.Sprintf("Namespace %s holds the database and backups of a deleted Tenant of the same name (uid %s): another customer's data. "+
			"Annotate this Tenant %s: \"true\" to take them over, or delete the namespace for a new, empty one", o.Name, o.Predecessor, v1alpha1.AnnotationAdoptNamespace)
	case o.Err != nil:
		c.Reason, c.Message = v1alpha1.ReasonApplyFailed, o.Err.Error()
	default:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonSucceeded
		c.Message = fmt.Sprintf("Namespace %s with Pod Security restricted, quota and limits", o.Name)
	}
	Set(t, c)
}

// AccessObservation is what reconcileAccess saw.
type AccessObservation struct {
	Blocked                  bool
	Err                      error
	Admins, Editors, Viewers int
}

// SetAccessReady sets AccessReady from what its step observed.
func SetAccessReady(t *v1alpha1.Tenant, o AccessObservation) {
	c := partCondition(v1alpha1.ConditionAccessReady, o.Blocked, o.Err)
	switch {
	case c.Reason != "":
	case o.Admins+o.Editors+o.Viewers == 0:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonNoSubjects
		c.Message = "No admins, editors or viewers listed: nobody has access to the tenant's namespace"
	default:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonSucceeded
		c.Message = fmt.Sprintf("%d admins, %d editors, %d viewers bound", o.Admins, o.Editors, o.Viewers)
	}
	Set(t, c)
}

// DatabaseObservation is what reconcileDatabase saw.
type DatabaseObservation struct {
	Blocked bool
	Err     error
	// CertManagerMissing: no server certificate can be issued, and PostgreSQL refuses to start
	// without one.
	CertManagerMissing bool
	Ready              bool
	// WaitReason and WaitMessage say what a database that is not ready waits for.
	WaitReason, WaitMessage string
	Version, Host           string
}

// SetDatabaseReady sets DatabaseReady from what its step observed.
func SetDatabaseReady(t *v1alpha1.Tenant, o DatabaseObservation) {
	c := partCondition(v1alpha1.ConditionDatabaseReady, o.Blocked, o.Err)
	switch {
	case c.Reason != "":
	case o.Ready:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonSucceeded
		c.Message = fmt.Sprintf("PostgreSQL %s ready at %s", o.Version, o.Host)
	case o.CertManagerMissing:
		c.Reason, c.Message = v1alpha1.ReasonCertManagerMissing, "cert-manager is not installed: the database's TLS certificate cannot be issued"
	default:
		c.Reason, c.Message = o.WaitReason, o.WaitMessage
	}
	Set(t, c)
}

// FirewallObservation is what reconcileFirewall saw.
type FirewallObservation struct {
	Blocked  bool
	Err      error
	Policies int
}

// SetFirewallReady sets FirewallReady from what its step observed.
func SetFirewallReady(t *v1alpha1.Tenant, o FirewallObservation) {
	c := partCondition(v1alpha1.ConditionFirewallReady, o.Blocked, o.Err)
	if c.Reason == "" {
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonSucceeded
		c.Message = fmt.Sprintf("%d network policies: default deny, with the listed allows", o.Policies)
	}
	Set(t, c)
}

// CertificateObservation is what reconcileCertificate saw.
type CertificateObservation struct {
	Blocked bool
	// Issuer is the issuer the tenant's certificate needs; empty name when none is configured.
	Issuer             v1alpha1.IssuerReference
	CertManagerMissing bool
	IssuerMissing      bool
	IssuerReady        bool
	Err                error
	Issued             bool
	// Pending is what cert-manager says of a certificate not issued yet.
	Pending   string
	Hostnames []string
}

// SetCertificateReady sets CertificateReady from what its step observed.
func SetCertificateReady(t *v1alpha1.Tenant, o CertificateObservation) {
	c := partCondition(v1alpha1.ConditionCertificateReady, o.Blocked, nil)
	kind, name := o.Issuer.Kind, o.Issuer.Name
	switch {
	case c.Reason != "":
	case name == "":
		c.Reason, c.Message = v1alpha1.ReasonIssuerNotFound, "No issuer: set spec.tls.issuerRef or start the operator with --default-issuer-name"
	case o.CertManagerMissing:
		c.Reason, c.Message = v1alpha1.ReasonCertManagerMissing, "cert-manager is not installed in the cluster: its CRDs are missing"
	case o.IssuerMissing:
		c.Reason, c.Message = v1alpha1.ReasonIssuerNotFound, fmt.Sprintf("%s %q not found; create it or change spec.tls.issuerRef", kind, name)
	case o.Err != nil:
		c.Reason, c.Message = v1alpha1.ReasonApplyFailed, o.Err.Error()
	case o.Issued:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonSucceeded
		c.Message = fmt.Sprintf("Certificate for %s issued by %s %s", strings.Join(o.Hostnames, ", "), kind, name)
	case !o.IssuerReady:
		c.Reason, c.Message = v1alpha1.ReasonIssuerNotReady, fmt.Sprintf("%s %q is not ready", kind, name)
	default:
		c.Reason, c.Message = v1alpha1.ReasonCertificateNotIssued, "Waiting for cert-manager to issue the certificate: "+o.Pending
	}
	Set(t, c)
}

// RouteObservation is what reconcileRoute saw.
type RouteObservation struct {
	Blocked           bool
	Err               error
	Route             v1alpha1.RouteSpec
	Hostnames         []string
	GatewayAPIMissing bool
	// accepted: every Gateway the HTTPRoute names accepted it; refused says why one did not.
	Accepted bool
	Refused  string
}

// SetRouteReady sets RouteReady from what its step observed.
func SetRouteReady(t *v1alpha1.Tenant, o RouteObservation) {
	c := partCondition(v1alpha1.ConditionRouteReady, o.Blocked, o.Err)
	hosts := strings.Join(o.Hostnames, ", ")
	switch {
	case c.Reason != "":
	case o.Route.Kind == v1alpha1.RouteKindNone:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, v1alpha1.ReasonNoRoute, "spec.route.kind is None: the tenant routes its hostnames itself"
	case o.Route.Kind == v1alpha1.RouteKindIngress:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonSucceeded
		c.Message = fmt.Sprintf("Ingress for %s to Service %s port %d", hosts, o.Route.ServiceName, o.Route.Port)
	case o.GatewayAPIMissing:
		c.Reason, c.Message = v1alpha1.ReasonGatewayAPIMissing, "Gateway API is not installed in the cluster: spec.route.kind HTTPRoute cannot be served"
	case o.Accepted:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonSucceeded
		c.Message = fmt.Sprintf("HTTPRoute for %s accepted by Gateway %s/%s", hosts, o.Route.GatewayRef.Namespace, o.Route.GatewayRef.Name)
	case o.Refused != "":
		c.Reason = v1alpha1.ReasonRouteNotAccepted
		c.Message = fmt.Sprintf("Gateway %s/%s does not accept the HTTPRoute: %s", o.Route.GatewayRef.Namespace, o.Route.GatewayRef.Name, o.Refused)
	default:
		c.Reason = v1alpha1.ReasonProgressing
		c.Message = fmt.Sprintf("Waiting for Gateway %s/%s to accept the HTTPRoute", o.Route.GatewayRef.Namespace, o.Route.GatewayRef.Name)
	}
	Set(t, c)
}

// PoliciesObservation is what reconcilePolicies saw.
type PoliciesObservation struct {
	NoBackupPolicy bool
	// err is a failure to read a policy.
	Err error
	// reason and problems say why a referenced policy cannot be used.
	Reason   string
	Problems []string
}

// SetPoliciesResolved sets PoliciesResolved from what its step observed.
func SetPoliciesResolved(t *v1alpha1.Tenant, o PoliciesObservation) {
	c := metav1.Condition{Type: v1alpha1.ConditionPoliciesResolved, Status: metav1.ConditionTrue}
	switch {
	case o.Err != nil:
		c.Status, c.Reason, c.Message = metav1.ConditionUnknown, v1alpha1.ReasonProgressing, "Cannot read the referenced policies: "+o.Err.Error()
	case len(o.Problems) > 0:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, o.Reason, strings.Join(o.Problems, "; ")
	case o.NoBackupPolicy:
		c.Reason, c.Message = v1alpha1.ReasonNoPolicy, "No BackupPolicy referenced: this tenant's database is not backed up"
	default:
		c.Reason, c.Message = v1alpha1.ReasonSucceeded, "Referenced policies exist and are ready"
	}
	Set(t, c)
}

// BackupsObservation is what reconcileBackups saw: the verdict on the storage, or why there is
// none.
type BackupsObservation struct {
	NoPolicy bool
	// unavailablePolicy names a referenced BackupPolicy that is missing or not ready.
	UnavailablePolicy string
	Blocked           bool
	Err               error
	Verdict           *backupcheck.Verdict
	// ArchivesWAL says the database streams its WAL (its StatefulSet was built so): WALArchiving
	// is then reported even while the policy cannot be read.
	ArchivesWAL bool
}

// SetBackupsFresh sets BackupsFresh from what its step observed.
func SetBackupsFresh(t *v1alpha1.Tenant, o BackupsObservation) {
	c := metav1.Condition{Type: v1alpha1.ConditionBackupsFresh}
	switch {
	case o.NoPolicy:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, v1alpha1.ReasonNoPolicy, "No BackupPolicy referenced: this tenant's database is not backed up"
	case o.UnavailablePolicy != "":
		c.Status, c.Reason = metav1.ConditionUnknown, v1alpha1.ReasonDependencyNotReady
		c.Message = fmt.Sprintf("BackupPolicy %q is not available; see PoliciesResolved", o.UnavailablePolicy)
	case o.Blocked:
		c.Status, c.Reason, c.Message = metav1.ConditionUnknown, v1alpha1.ReasonDependencyNotReady, waitingForNamespace
	case o.Err != nil:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonApplyFailed, o.Err.Error()
	default:
		c = o.Verdict.Fresh
	}
	Set(t, c)
}

// SetBackupVerified sets BackupVerified from what its step observed.
func SetBackupVerified(t *v1alpha1.Tenant, o BackupsObservation) {
	c := metav1.Condition{Type: v1alpha1.ConditionBackupVerified, Status: metav1.ConditionUnknown}
	switch {
	case o.NoPolicy:
		c.Reason, c.Message = v1alpha1.ReasonNoPolicy, "No BackupPolicy referenced"
	case o.UnavailablePolicy != "":
		c.Reason = v1alpha1.ReasonDependencyNotReady
		c.Message = fmt.Sprintf("BackupPolicy %q is not available; see PoliciesResolved", o.UnavailablePolicy)
	case o.Blocked || o.Err != nil || o.Verdict == nil:
		c.Reason, c.Message = v1alpha1.ReasonDependencyNotReady, "Waiting for the backup schedules to be in place"
	default:
		c = o.Verdict.Verified
	}
	Set(t, c)
}

// SetWALArchiving sets WALArchiving from what the backups step observed, and removes it when no
// schedule archives WAL.
func SetWALArchiving(t *v1alpha1.Tenant, o BackupsObservation) {
	c := metav1.Condition{Type: v1alpha1.ConditionWALArchiving, Status: metav1.ConditionUnknown}
	switch {
	case o.Verdict != nil && o.Verdict.WAL != nil && o.Err == nil:
		c = *o.Verdict.WAL
	case !o.ArchivesWAL || o.NoPolicy || (o.Verdict != nil && o.Err == nil):
		meta.RemoveStatusCondition(&t.Status.Conditions, v1alpha1.ConditionWALArchiving)
		return
	case o.UnavailablePolicy != "":
		c.Reason = v1alpha1.ReasonDependencyNotReady
		c.Message = fmt.Sprintf("BackupPolicy %q is not available; the WAL receivers keep running as they were; see PoliciesResolved", o.UnavailablePolicy)
	case o.Blocked:
		c.Reason, c.Message = v1alpha1.ReasonDependencyNotReady, waitingForNamespace
	default:
		c.Reason, c.Message = v1alpha1.ReasonDependencyNotReady, "Waiting for the WAL receivers to be in place"
	}
	Set(t, c)
}

// MonitoringObservation is what reconcileMonitoring saw.
type MonitoringObservation struct {
	// notMonitored says why the tenant is not probed; empty when it is.
	NotMonitored string
	// invalidObjective is a spec.monitoring the objective cannot be read from.
	InvalidObjective error
	URL              string
	Report           uptime.Report
}

// SetAvailable sets Available. It and UptimeObjectiveMet describe the tenant's own service, so
// they do not make the environment's Ready False: a tenant that has not deployed its application
// yet is not a broken environment. Alerts watch them instead.
func SetAvailable(t *v1alpha1.Tenant, o MonitoringObservation) {
	if KeepsAvailable(t, o) {
		return
	}
	c := o.Report.AvailableCondition(o.URL)
	if o.NotMonitored != "" {
		c = metav1.Condition{Type: v1alpha1.ConditionAvailable, Status: metav1.ConditionUnknown, Reason: v1alpha1.ReasonNotMonitored, Message: o.NotMonitored}
	}
	Set(t, c)
}

// SetUptimeObjectiveMet sets UptimeObjectiveMet from what its step observed.
func SetUptimeObjectiveMet(t *v1alpha1.Tenant, o MonitoringObservation) {
	if KeepsUptimeFigures(t, o) {
		return
	}
	c := metav1.Condition{Type: v1alpha1.ConditionUptimeObjectiveMet, Status: metav1.ConditionUnknown}
	switch {
	case o.InvalidObjective != nil:
		// Admission refuses this; a spec that slipped by is the owner's to fix.
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, o.InvalidObjective.Error()
	case o.NotMonitored != "":
		c.Reason, c.Message = v1alpha1.ReasonNotMonitored, o.NotMonitored
	case o.Report.Figures == nil:
		c.Reason, c.Message = v1alpha1.ReasonProgressing, "Waiting for the first probes"
	default:
		c = o.Report.Figures.Objective
	}
	Set(t, c)
}

// A restarted manager, or a new leader, knows nothing of a tenant's service until its own probes
// have judged it, while the tenant's status holds what the previous one observed of the same
// spec. That observation stands until this process learns better: a restart must not turn
// Available to Unknown and back (two status writes and two events per tenant, and a false
// "waiting" on a tenant that was up), nor shorten an outage it did not see begin.

// KeepsAvailable reports whether the Available condition an earlier process set for this
// generation still says all this process knows: the Monitor has no verdict yet; or it finds the
// tenant up, having seen no outage, where the condition (up) may tell of one; or it finds the
// tenant down where the condition already says down, since a time before this process probed.
func KeepsAvailable(t *v1alpha1.Tenant, o MonitoringObservation) bool {
	if o.NotMonitored != "" || o.InvalidObjective != nil {
		return false
	}
	prev := earlierVerdict(t, v1alpha1.ConditionAvailable, v1alpha1.ReasonProbeSucceeded, v1alpha1.ReasonDown)
	if prev == nil {
		return false
	}
	switch o.Report.State {
	case uptime.Up:
		return o.Report.LastOutage == 0 && prev.Reason == v1alpha1.ReasonProbeSucceeded
	case uptime.Down:
		return prev.Reason == v1alpha1.ReasonDown
	default:
		return true
	}
}

// KeepsUptimeFigures reports whether the uptime figures and UptimeObjectiveMet an earlier process
// published for this generation stand, because this one has published none yet. They come from
// the same saved history, so its first figures will read the same unless time moved them.
func KeepsUptimeFigures(t *v1alpha1.Tenant, o MonitoringObservation) bool {
	if o.NotMonitored != "" || o.InvalidObjective != nil || o.Report.Figures != nil || t.Status.Uptime == nil {
		return false
	}
	return earlierVerdict(t, v1alpha1.ConditionUptimeObjectiveMet, v1alpha1.ReasonObjectiveMet, v1alpha1.ReasonObjectiveMissed) != nil
}

// earlierVerdict is the tenant's condition of conditionType when it was set for the current
// generation with one of reasons; nil otherwise.
func earlierVerdict(t *v1alpha1.Tenant, conditionType string, reasons ...string) *metav1.Condition {
	c := meta.FindStatusCondition(t.Status.Conditions, conditionType)
	if c == nil || c.ObservedGeneration != t.Generation || !slices.Contains(reasons, c.Reason) {
		return nil
	}
	return c
}

// SetDeletionBlocked says what keeps a deletion from finishing.
func SetDeletionBlocked(t *v1alpha1.Tenant, reason, message string) {
	Set(t, metav1.Condition{Type: v1alpha1.ConditionDeletionBlocked, Status: metav1.ConditionTrue, Reason: reason, Message: message})
}

// SetInvalidSpec marks the whole tenant as needing a fix by its owner.
func SetInvalidSpec(t *v1alpha1.Tenant, message string) {
	t.Status.Phase = v1alpha1.TenantPhaseDegraded
	Set(t, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonInvalidSpec, Message: message})
	Set(t, metav1.Condition{Type: v1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonInvalidSpec, Message: message})
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

// Set sets c with the tenant's generation. meta.SetStatusCondition keeps
// lastTransitionTime unless the status flips, so setting the same condition again writes nothing.
func Set(t *v1alpha1.Tenant, c metav1.Condition) {
	c.ObservedGeneration = t.Generation
	c.Message = Bound(c.Message, MaxMessage)
	meta.SetStatusCondition(&t.Status.Conditions, c)
}

// MaxMessage bounds a condition's message: the API refuses a status whose messages pass
// 32 KiB, and a refused status patch would freeze the Tenant's status at its last value. Errors
// of several schedules, or long storage errors, must not get there.
const MaxMessage = 1024

// Bound cuts a message to at most n bytes, at a character boundary.
func Bound(s string, n int) string {
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

// PartConditions are the conditions Ready summarizes, in the order the parts reconcile.
var PartConditions = []string{
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
	v1alpha1.ConditionWALArchiving,
}

// IsWaiting tells whether a reason means "not yet": the operator or the cluster is still working
// and no person needs to act.
func IsWaiting(reason string) bool { return waitingReasons[reason] }

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

// Summarize sets Ready, Reconciling, Stalled and the phase from the part conditions of
// this pass.
func Summarize(t *v1alpha1.Tenant) {
	if !t.DeletionTimestamp.IsZero() {
		t.Status.Phase = v1alpha1.TenantPhaseDeleting
		Set(t, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonDeleting, Message: "The tenant is being deleted"})
		return
	}
	var waiting, failing []string
	failingReason := ""
	for _, conditionType := range PartConditions {
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
		Set(t, metav1.Condition{Type: v1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: ready.Reason, Message: ready.Message})
		meta.RemoveStatusCondition(&t.Status.Conditions, v1alpha1.ConditionReconciling)
	case len(waiting) > 0:
		t.Status.Phase = v1alpha1.TenantPhaseProvisioning
		ready.Reason, ready.Message = v1alpha1.ReasonProgressing, strings.Join(waiting, "; ")
		Set(t, metav1.Condition{Type: v1alpha1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: ready.Reason, Message: ready.Message})
		meta.RemoveStatusCondition(&t.Status.Conditions, v1alpha1.ConditionStalled)
	default:
		t.Status.Phase = v1alpha1.TenantPhaseReady
		ready.Status, ready.Reason, ready.Message = metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "Every part of the environment is ready"
		meta.RemoveStatusCondition(&t.Status.Conditions, v1alpha1.ConditionReconciling)
		meta.RemoveStatusCondition(&t.Status.Conditions, v1alpha1.ConditionStalled)
	}
	Set(t, ready)
}

// State is what a condition's events tell: its status and reason.
type State struct {
	Status metav1.ConditionStatus
	Reason string
}

// States are the conditions' states by type.
func States(conditions []metav1.Condition) map[string]State {
	out := make(map[string]State, len(conditions))
	for _, c := range conditions {
		out[c.Type] = State{c.Status, c.Reason}
	}
	return out
}

// Reported are, per tenant, the conditions as the manager last reported them in events: a pass
// that read the Tenant from a cache not yet showing the previous pass's status write would
// otherwise tell the same changes twice.
type Reported struct {
	mu       sync.Mutex
	byTenant map[string]map[string]State
}

// Swap records t's conditions as reported and returns those reported before, nil when none were.
// A tenant whose deletion is done is forgotten.
func (r *Reported) Swap(t *v1alpha1.Tenant) map[string]State {
	r.mu.Lock()
	defer r.mu.Unlock()
	previous := r.byTenant[t.Name]
	if !controllerutil.ContainsFinalizer(t, v1alpha1.TenantFinalizer) && !t.DeletionTimestamp.IsZero() {
		delete(r.byTenant, t.Name)
		return previous
	}
	if r.byTenant == nil {
		r.byTenant = map[string]map[string]State{}
	}
	r.byTenant[t.Name] = States(t.Status.Conditions)
	return previous
}

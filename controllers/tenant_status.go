package controllers

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// tenantPartConditions are the conditions Ready summarizes, in the order the parts reconcile.
var tenantPartConditions = []string{
	v1alpha1.ConditionNamespaceReady,
	v1alpha1.ConditionAccessReady,
	v1alpha1.ConditionDatabaseReady,
	v1alpha1.ConditionFirewallReady,
	v1alpha1.ConditionCertificateReady,
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

// summarizeTenant sets Ready and the phase from the part conditions of this pass.
func summarizeTenant(t *v1alpha1.Tenant) {
	if !t.DeletionTimestamp.IsZero() {
		t.Status.Phase = v1alpha1.TenantPhaseDeleting
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonDeleting, "The tenant is being deleted")
		return
	}
	var waiting, failing []string
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
		}
	}
	for _, conditionType := range tenantHealthConditions {
		if c := meta.FindStatusCondition(t.Status.Conditions, conditionType); c != nil && c.Status == metav1.ConditionFalse {
			failing = append(failing, fmt.Sprintf("%s: %s", conditionType, c.Message))
		}
	}
	// Reconciling and Stalled are the abnormal-true conditions kstatus reads (as Flux's objects
	// carry them): InProgress while provisioning, Failed while something needs a person, Current
	// when neither is present. Argo CD's and Flux's health checks read them the same way.
	switch {
	case len(failing) > 0:
		t.Status.Phase = v1alpha1.TenantPhaseDegraded
		reason, message := firstReason(t, failing), strings.Join(failing, "; ")
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionReady, metav1.ConditionFalse, reason, message)
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionStalled, metav1.ConditionTrue, reason, message)
		meta.RemoveStatusCondition(&t.Status.Conditions, v1alpha1.ConditionReconciling)
	case len(waiting) > 0:
		t.Status.Phase = v1alpha1.TenantPhaseProvisioning
		message := strings.Join(waiting, "; ")
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonProgressing, message)
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonProgressing, message)
		meta.RemoveStatusCondition(&t.Status.Conditions, v1alpha1.ConditionStalled)
	default:
		t.Status.Phase = v1alpha1.TenantPhaseReady
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "Every part of the environment is ready")
		meta.RemoveStatusCondition(&t.Status.Conditions, v1alpha1.ConditionReconciling)
		meta.RemoveStatusCondition(&t.Status.Conditions, v1alpha1.ConditionStalled)
	}
}

// firstReason is the reason of the first failing part, so Ready's reason says what to look at.
func firstReason(t *v1alpha1.Tenant, failing []string) string {
	first := strings.SplitN(failing[0], ":", 2)[0]
	if c := meta.FindStatusCondition(t.Status.Conditions, first); c != nil {
		return c.Reason
	}
	return v1alpha1.ReasonProgressing
}

// invalidSpec marks the whole tenant as needing a fix by its owner.
func invalidSpec(t *v1alpha1.Tenant, message string) {
	setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonInvalidSpec, message)
	setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonInvalidSpec, message)
	meta.RemoveStatusCondition(&t.Status.Conditions, v1alpha1.ConditionReconciling)
}

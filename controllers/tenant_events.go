package controllers

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/tenantstatus"
)

// recordConditionChanges emits one event per condition whose status or reason changed, with the
// condition's reason as the event's, so users see changes and a steady state stays quiet.
//
// The conditions compared with are those this manager last reported for the tenant, when it has:
// a pass that read the Tenant from a cache not yet showing the previous pass's status write would
// otherwise report the same changes twice. After a restart, the stored status serves.
func (r *TenantReconciler) recordConditionChanges(before, after *v1alpha1.Tenant) {
	if r.Recorder == nil {
		return
	}
	old := r.reported.Swap(after)
	if old == nil {
		old = tenantstatus.States(before.Status.Conditions)
	}
	for _, c := range after.Status.Conditions {
		if c.Type == v1alpha1.ConditionReconciling || c.Type == v1alpha1.ConditionStalled {
			continue // they repeat Ready's news for kstatus
		}
		o, existed := old[c.Type]
		if existed && o == (tenantstatus.State{Status: c.Status, Reason: c.Reason}) {
			continue
		}
		warning := c.Status == metav1.ConditionFalse && !tenantstatus.IsWaiting(c.Reason) && c.Reason != v1alpha1.ReasonDeleting
		// A condition appearing for the first time in a waiting state is not news (a new tenant
		// is on its way), nor is a part that appears good; a tenant that is Ready at once,
		// problems and changes of an existing condition are.
		if !existed && !warning && (c.Type != v1alpha1.ConditionReady || c.Status != metav1.ConditionTrue) {
			continue
		}
		eventType := corev1.EventTypeNormal
		if warning {
			eventType = corev1.EventTypeWarning
		}
		r.eventFor(after, eventType, c.Reason, c.Type, c.Type+" is "+string(c.Status)+": "+c.Message)
	}
}

// maxEventNote bounds an event's note: the events API refuses longer ones, and the events of a
// cluster-scoped Tenant land in the default namespace, so they say no more than the condition.
const maxEventNote = 1024

// event records what the operator did to a tenant (action and reason the same).
func (r *TenantReconciler) event(t *v1alpha1.Tenant, eventType, reason, message string) {
	r.eventFor(t, eventType, reason, reason, message)
}

// eventFor records an event whose action is, for a condition's change, the condition's type.
func (r *TenantReconciler) eventFor(t *v1alpha1.Tenant, eventType, reason, action, message string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(t, nil, eventType, reason, action, "%s", tenantstatus.Bound(message, maxEventNote))
	}
}

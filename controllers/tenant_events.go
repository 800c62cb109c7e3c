package controllers

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

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
	old := r.reported.swap(after)
	if old == nil {
		old = conditionStates(before.Status.Conditions)
	}
	for _, c := range after.Status.Conditions {
		if c.Type == v1alpha1.ConditionReconciling || c.Type == v1alpha1.ConditionStalled {
			continue // they repeat Ready's news for kstatus
		}
		o, existed := old[c.Type]
		if existed && o == (conditionState{c.Status, c.Reason}) {
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

// conditionState is what a condition's events tell: its status and reason.
type conditionState struct {
	status metav1.ConditionStatus
	reason string
}

func conditionStates(conditions []metav1.Condition) map[string]conditionState {
	out := make(map[string]conditionState, len(conditions))
	for _, c := range conditions {
		out[c.Type] = conditionState{c.Status, c.Reason}
	}
	return out
}

// reportedConditions are, per tenant, the conditions as this manager last reported them in
// events.
type reportedConditions struct {
	mu       sync.Mutex
	byTenant map[string]map[string]conditionState
}

// swap records t's conditions as reported and returns those reported before, nil when none were.
// A tenant whose deletion is done is forgotten.
func (rc *reportedConditions) swap(t *v1alpha1.Tenant) map[string]conditionState {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	previous := rc.byTenant[t.Name]
	if !controllerutil.ContainsFinalizer(t, v1alpha1.TenantFinalizer) && !t.DeletionTimestamp.IsZero() {
		delete(rc.byTenant, t.Name)
		return previous
	}
	if rc.byTenant == nil {
		rc.byTenant = map[string]map[string]conditionState{}
	}
	rc.byTenant[t.Name] = conditionStates(t.Status.Conditions)
	return previous
}

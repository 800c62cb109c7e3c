package controllers

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// reconcilePolicies resolves the BackupPolicy and RetentionPolicy the tenant references.
// It sets PoliciesResolved. A missing policy is a condition, not an error: the policy watch
// brings the tenant back when the policy appears, so there is no retry loop.
func (r *TenantReconciler) reconcilePolicies(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	var problems []string
	reason := v1alpha1.ReasonSucceeded
	if ref := t.Spec.BackupPolicyRef; ref != nil {
		policy := &v1alpha1.BackupPolicy{}
		switch err := r.Get(ctx, types.NamespacedName{Name: ref.Name}, policy); {
		case apierrors.IsNotFound(err):
			reason = v1alpha1.ReasonPolicyNotFound
			problems = append(problems, fmt.Sprintf("BackupPolicy %q not found", ref.Name))
		case err != nil:
			return ctrl.Result{}, fmt.Errorf("get backup policy %s: %w", ref.Name, err)
		case !policyReady(policy.Status.Conditions, policy.Generation, policy.Status.ObservedGeneration):
			reason = firstNonSuccess(reason, v1alpha1.ReasonPolicyNotReady)
			problems = append(problems, fmt.Sprintf("BackupPolicy %q is not ready: %s", ref.Name, readyMessage(policy.Status.Conditions)))
		default:
			s.backupPolicy = policy
		}
	}
	if ref := t.Spec.RetentionPolicyRef; ref != nil {
		policy := &v1alpha1.RetentionPolicy{}
		switch err := r.Get(ctx, types.NamespacedName{Name: ref.Name}, policy); {
		case apierrors.IsNotFound(err):
			reason = firstNonSuccess(reason, v1alpha1.ReasonPolicyNotFound)
			problems = append(problems, fmt.Sprintf("RetentionPolicy %q not found", ref.Name))
		case err != nil:
			return ctrl.Result{}, fmt.Errorf("get retention policy %s: %w", ref.Name, err)
		case !policyReady(policy.Status.Conditions, policy.Generation, policy.Status.ObservedGeneration):
			reason = firstNonSuccess(reason, v1alpha1.ReasonPolicyNotReady)
			problems = append(problems, fmt.Sprintf("RetentionPolicy %q is not ready: %s", ref.Name, readyMessage(policy.Status.Conditions)))
		default:
			s.retentionPolicy = policy
		}
	}
	switch {
	case len(problems) > 0:
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionPoliciesResolved, metav1.ConditionFalse, reason, strings.Join(problems, "; "))
	case t.Spec.BackupPolicyRef == nil:
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionPoliciesResolved, metav1.ConditionTrue, v1alpha1.ReasonNoPolicy,
			"No BackupPolicy referenced: this tenant's database is not backed up")
	default:
		setCondition(&t.Status.Conditions, t.Generation, v1alpha1.ConditionPoliciesResolved, metav1.ConditionTrue, v1alpha1.ReasonSucceeded, "Referenced policies exist and are ready")
	}
	return ctrl.Result{}, nil
}

func policyReady(conditions []metav1.Condition, generation, observed int64) bool {
	return observed == generation && meta.IsStatusConditionTrue(conditions, v1alpha1.ConditionReady)
}

func readyMessage(conditions []metav1.Condition) string {
	if c := meta.FindStatusCondition(conditions, v1alpha1.ConditionReady); c != nil {
		return c.Message
	}
	return "not reconciled yet"
}

func firstNonSuccess(current, next string) string {
	if current == v1alpha1.ReasonSucceeded {
		return next
	}
	return current
}

// tenantsForPolicy maps a policy to the tenants that reference it, through the field index.
func (r *TenantReconciler) tenantsForPolicy(index string) func(context.Context, client.Object) []ctrl.Request {
	return func(ctx context.Context, o client.Object) []ctrl.Request {
		tenants := &v1alpha1.TenantList{}
		if err := r.List(ctx, tenants, client.MatchingFields{index: o.GetName()}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "List tenants for policy", "policy", o.GetName())
			return nil
		}
		requests := make([]ctrl.Request, 0, len(tenants.Items))
		for _, t := range tenants.Items {
			requests = append(requests, ctrl.Request{NamespacedName: types.NamespacedName{Name: t.Name}})
		}
		return requests
	}
}

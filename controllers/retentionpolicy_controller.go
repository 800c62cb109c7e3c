package controllers

import (
	"context"
	"fmt"
	"strings"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/validation"
)

// RetentionPolicyReconciler checks that a RetentionPolicy is valid, summarizes its rules and
// counts the Tenants that use it. Pruning happens per tenant, where the backups are listed.
type RetentionPolicyReconciler struct {
	client.Client
}

// +kubebuilder:rbac:groups=tenancy.tenantops.io,resources=retentionpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=tenancy.tenantops.io,resources=retentionpolicies/status,verbs=patch

// Reconcile sets Ready, the rules summary and the tenant count of one RetentionPolicy.
func (r *RetentionPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	policy := &v1alpha1.RetentionPolicy{}
	if err := r.Get(ctx, req.NamespacedName, policy); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := policy.DeepCopy()
	defer func() {
		if err := patchStatus(ctx, r.Client, before, policy, func(p *v1alpha1.RetentionPolicy) any { return p.Status }); err != nil && retErr == nil {
			retErr = err
		}
	}()

	tenants := &v1alpha1.TenantList{}
	if err := r.List(ctx, tenants, client.MatchingFields{indexTenantRetentionPolicy: policy.Name}); err != nil {
		return ctrl.Result{}, fmt.Errorf("list tenants of retention policy %s: %w", policy.Name, err)
	}
	policy.Status.Tenants = int32(len(tenants.Items))
	policy.Status.Rules = RetentionRulesSummary(policy.Spec)
	policy.Status.ObservedGeneration = policy.Generation

	if errs := validation.RetentionPolicy(policy); len(errs) > 0 {
		setPolicyReady(&policy.Status.Conditions, policy.Generation, v1alpha1.ReasonInvalidSpec, errs.ToAggregate().Error())
		return ctrl.Result{}, reconcile.TerminalError(errs.ToAggregate())
	}
	setPolicyReady(&policy.Status.Conditions, policy.Generation, v1alpha1.ReasonSucceeded, "Rules valid: "+policy.Status.Rules)
	return ctrl.Result{}, nil
}

// RetentionRulesSummary describes the rules in one line for the Rules printer column.
func RetentionRulesSummary(spec v1alpha1.RetentionPolicySpec) string {
	var parts []string
	for _, rule := range []struct {
		name string
		n    *int32
	}{{"last", spec.KeepLast}, {"daily", spec.KeepDaily}, {"weekly", spec.KeepWeekly}, {"monthly", spec.KeepMonthly}, {"yearly", spec.KeepYearly}} {
		if rule.n != nil {
			parts = append(parts, fmt.Sprintf("%s=%d", rule.name, *rule.n))
		}
	}
	if spec.MaxAge != "" {
		parts = append(parts, "maxAge="+spec.MaxAge)
	}
	minKeep := int32(1)
	if spec.MinKeep != nil {
		minKeep = *spec.MinKeep
	}
	parts = append(parts, fmt.Sprintf("minKeep=%d", minKeep))
	return strings.Join(parts, " ")
}

// SetupWithManager watches RetentionPolicies and the Tenants that reference them.
func (r *RetentionPolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.RetentionPolicy{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.Tenant{}, enqueuePolicyOfTenant(func(t *v1alpha1.Tenant) *v1alpha1.LocalObjectReference { return t.Spec.RetentionPolicyRef })).
		Named("retentionpolicy").
		Complete(r)
}

package controllers

import (
	"context"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// One-shot kinds (TenantRestore, TenantExport) each run one Job for a tenant: they wait for the
// tenant and its BackupPolicy, then follow the Job to its end.

// watchTenantsAndPolicies brings back the one-shot objects of a tenant when the Tenant or its
// BackupPolicy changes; requestsOf lists those of one tenant that are not done.
func watchTenantsAndPolicies(b *builder.Builder, c client.Client, requestsOf func(ctx context.Context, tenant string) []reconcile.Request) *builder.Builder {
	return b.
		Watches(&v1alpha1.Tenant{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return requestsOf(ctx, o.GetName())
		})).
		Watches(&v1alpha1.BackupPolicy{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			tenants := &v1alpha1.TenantList{}
			if err := c.List(ctx, tenants, client.MatchingFields{indexTenantBackupPolicy: o.GetName()}); err != nil {
				return nil
			}
			var reqs []reconcile.Request
			for _, t := range tenants.Items {
				reqs = append(reqs, requestsOf(ctx, t.Name)...)
			}
			return reqs
		}))
}

// jobOutcome is the Job's Complete or Failed condition once it has one, else nil.
func jobOutcome(job *batchv1.Job) *batchv1.JobCondition {
	for i, c := range job.Status.Conditions {
		if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) {
			return &job.Status.Conditions[i]
		}
	}
	return nil
}

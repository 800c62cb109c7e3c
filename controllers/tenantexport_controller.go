package controllers

import (
	"context"
	"fmt"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/ssa"
)

// indexExportTenant maps a TenantExport to the tenant it exports.
const indexExportTenant = "spec.tenant"

// TenantExportReconciler runs a TenantExport: once the tenant and its policy are there, it runs the
// export Job (builders.ExportJob) in the operator's namespace and follows it to its end.
type TenantExportReconciler struct {
	client.Client
	Recorder recorder.EventRecorder
	Options  Options
	applier  *ssa.Applier
}

// +kubebuilder:rbac:groups=tenancy.tenantops.io,resources=tenantexports,verbs=get;list;watch
// +kubebuilder:rbac:groups=tenancy.tenantops.io,resources=tenantexports/status,verbs=patch

// Reconcile moves one TenantExport through Pending, Running, and Succeeded or Failed, on the shard
// of its tenant.
func (r *TenantExportReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	export := &v1alpha1.TenantExport{}
	if err := r.Get(ctx, req.NamespacedName, export); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !r.Options.Shard.Owns(export.Spec.Tenant) {
		// An export of another shard's tenant: that shard runs it.
		return ctrl.Result{}, nil
	}
	before := export.DeepCopy()
	defer func() {
		if err := patchStatus(ctx, r.Client, before, export, func(o *v1alpha1.TenantExport) any { return o.Status }); err != nil && retErr == nil {
			retErr = err
		}
	}()
	export.Status.ObservedGeneration = export.Generation
	if export.DeletionTimestamp != nil || done(export.Status.Phase) {
		return ctrl.Result{}, nil
	}

	tenant, policy := &v1alpha1.Tenant{}, &v1alpha1.BackupPolicy{}
	if err := r.Get(ctx, types.NamespacedName{Name: export.Spec.Tenant}, tenant); err != nil {
		r.setPhase(export, v1alpha1.RestorePending, v1alpha1.ReasonTenantNotFound, "spec.tenant: "+lookupFailure("Tenant", export.Spec.Tenant, err))
		return ctrl.Result{}, nil
	}
	if tenant.Spec.BackupPolicyRef == nil {
		r.setPhase(export, v1alpha1.RestorePending, v1alpha1.ReasonInvalidSpec, fmt.Sprintf("spec.tenant: Tenant %s has no spec.backupPolicyRef, so no backups to export", tenant.Name))
		return ctrl.Result{}, nil
	}
	if err := r.Get(ctx, types.NamespacedName{Name: tenant.Spec.BackupPolicyRef.Name}, policy); err != nil {
		r.setPhase(export, v1alpha1.RestorePending, v1alpha1.ReasonDependencyNotReady, "spec.tenant: "+lookupFailure("BackupPolicy", tenant.Spec.BackupPolicyRef.Name, err))
		return ctrl.Result{}, nil
	}
	exportReq, err := builders.TenantExportRequest(export, policy)
	if err != nil {
		r.setPhase(export, v1alpha1.RestorePending, v1alpha1.ReasonInvalidSpec, err.Error())
		return ctrl.Result{}, nil
	}
	jobName := builders.ExportJobName(tenant, exportReq.ID)
	job := &batchv1.Job{}
	switch err := r.Get(ctx, types.NamespacedName{Namespace: r.Options.OperatorNamespace, Name: jobName}, job); {
	case err == nil:
		r.follow(export, job, builders.ExportArchiveKey(tenant.Name, exportReq.ID))
		return ctrl.Result{}, nil
	case !apierrors.IsNotFound(err):
		return ctrl.Result{}, fmt.Errorf("get export job: %w", err)
	}
	jobAC, err := builders.ExportJob(tenant, policy, exportReq, r.Options.Options)
	if err != nil {
		r.setPhase(export, v1alpha1.RestorePending, v1alpha1.ReasonInvalidSpec, err.Error())
		return ctrl.Result{}, nil
	}
	if _, err := r.applier.Apply(ctx, jobAC.WithOwnerReferences(controllerReference("TenantExport", export)), nil); err != nil {
		return ctrl.Result{}, fmt.Errorf("apply export job %s: %w", jobName, err)
	}
	export.Status.JobName, export.Status.Schedule = jobName, exportReq.Schedule
	r.setPhase(export, v1alpha1.RestoreRunning, v1alpha1.ReasonExportRunning,
		fmt.Sprintf("Job %s/%s exports %s of tenant %s", r.Options.OperatorNamespace, jobName, backupOf(export), tenant.Name))
	r.Recorder.Eventf(export, nil, corev1.EventTypeNormal, "ExportStarted", "Export", "%s", export.Status.Conditions[0].Message)
	return ctrl.Result{}, nil
}

func backupOf(export *v1alpha1.TenantExport) string {
	if export.Spec.Backup == "" || export.Spec.Backup == "latest" {
		return "the latest backup"
	}
	return "backup " + export.Spec.Backup
}

// follow turns the Job's state into the export's phase.
func (r *TenantExportReconciler) follow(export *v1alpha1.TenantExport, job *batchv1.Job, archive string) {
	export.Status.JobName = job.Name
	if job.Status.StartTime != nil && export.Status.StartTime == nil {
		export.Status.StartTime = job.Status.StartTime
	}
	if c := jobOutcome(job); c != nil {
		export.Status.CompletionTime = completionOf(job, *c)
		switch c.Type {
		case batchv1.JobComplete:
			export.Status.Archive = archive
			r.setPhase(export, v1alpha1.RestoreSucceeded, v1alpha1.ReasonSucceeded,
				fmt.Sprintf("Exported %s of tenant %s to %s in schedule %s's storage, encrypted to the recipients given", backupOf(export), export.Spec.Tenant, archive, export.Status.Schedule))
			r.Recorder.Eventf(export, nil, corev1.EventTypeNormal, "ExportSucceeded", "Export", "%s", export.Status.Conditions[0].Message)
			return
		case batchv1.JobFailed:
			// The agent's words stay in the pod's log: they may quote the tenant's own objects.
			r.setPhase(export, v1alpha1.RestoreFailed, v1alpha1.ReasonExportFailed,
				fmt.Sprintf("Job %s/%s failed (%s); no archive is visible (its record is written only after a whole archive); its log says why: kubectl logs -n %s job/%s",
					job.Namespace, job.Name, c.Reason, job.Namespace, job.Name))
			r.Recorder.Eventf(export, nil, corev1.EventTypeWarning, "ExportFailed", "Export", "%s", export.Status.Conditions[0].Message)
			return
		}
	}
	if export.Status.Phase != v1alpha1.RestoreRunning {
		r.setPhase(export, v1alpha1.RestoreRunning, v1alpha1.ReasonExportRunning,
			fmt.Sprintf("Job %s/%s exports %s of tenant %s", job.Namespace, job.Name, backupOf(export), export.Spec.Tenant))
	}
}

// setPhase is the TenantExport's one setter of phase and conditions (setOneShotPhase).
func (r *TenantExportReconciler) setPhase(export *v1alpha1.TenantExport, phase v1alpha1.TenantRestorePhase, reason, message string) {
	setOneShotPhase(&export.Status.Phase, &export.Status.Conditions, export.Generation, phase, reason, message)
}

// SetupWithManager watches TenantExports, their Jobs, and the Tenants and BackupPolicies a waiting
// export needs: those of exports of this shard's tenants.
func (r *TenantExportReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.applier = &ssa.Applier{Client: r.Client, Owner: FieldOwner}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.TenantExport{}, indexExportTenant, func(o client.Object) []string {
		return []string{o.(*v1alpha1.TenantExport).Spec.Tenant}
	}); err != nil {
		return fmt.Errorf("index %s: %w", indexExportTenant, err)
	}
	exportsOf := func(ctx context.Context, tenant string) []reconcile.Request {
		list := &v1alpha1.TenantExportList{}
		if err := r.List(ctx, list, client.MatchingFields{indexExportTenant: tenant}); err != nil {
			return nil
		}
		var reqs []reconcile.Request
		for _, e := range list.Items {
			if !done(e.Status.Phase) && r.Options.Shard.Owns(e.Spec.Tenant) {
				reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Name: e.Name}})
			}
		}
		return reqs
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.TenantExport{}, builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool {
			return r.Options.Shard.Owns(o.(*v1alpha1.TenantExport).Spec.Tenant)
		}))).
		// The Job is labelled with the tenant.
		Owns(&batchv1.Job{}, builder.WithPredicates(ownLabelled(r.Options.Shard)))
	return watchTenantsAndPolicies(b, r.Client, exportsOf).
		Named("tenantexport").
		Complete(r)
}

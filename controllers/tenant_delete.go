package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/backupcheck"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/tenantstatus"
)

// reconcileDelete carries out the tenant's deletion policy, then releases the finalizer. It sets
// DeletionBlocked while something stands in the way, so a stuck deletion says why.
//
// Retain keeps the namespace with the database volume and credentials, marks it retained, stops
// the database and removes the tenant's users' access; a Tenant of the same name may adopt it.
// Delete, when the allow-delete annotation confirms it, first backs up every schedule once more
// (unless told to skip it), then deletes the namespace; the namespace controller removes its
// contents.
func (r *TenantReconciler) reconcileDelete(ctx context.Context, s *tenantScope) (ctrl.Result, error) {
	t := s.tenant
	if !controllerutil.ContainsFinalizer(t, v1alpha1.TenantFinalizer) {
		return ctrl.Result{}, nil
	}
	var err error
	if effectiveDeletionPolicy(t) == v1alpha1.DeletionPolicyDelete {
		var running []string
		if running, err = r.finalBackups(ctx, t); err == nil && len(running) > 0 {
			// The Jobs' watch brings the tenant back when they finish.
			tenantstatus.SetDeletionBlocked(t, v1alpha1.ReasonFinalBackupRunning, fmt.Sprintf("Waiting for the final backup before the data is deleted: Jobs %s in %s",
				strings.Join(running, ", "), r.Options.OperatorNamespace))
			return ctrl.Result{}, nil
		}
		if err == nil {
			err = r.deleteNamespace(ctx, t)
		}
	} else {
		err = r.retainNamespace(ctx, t)
	}
	if err == nil {
		err = r.deleteClusterScoped(ctx, t, nil)
	}
	if err == nil {
		// The backup CronJobs and their Secret in the operator's namespace go; the backups in
		// storage stay, whatever the deletion policy: they are the last copy of the data.
		err = r.deleteBackupJobs(ctx, t, nil)
	}
	if err == nil {
		// The probe role's password goes with the Tenant; a Tenant of the same name that adopts a
		// retained database makes a new one, which the database pod sets.
		err = r.deleteCached(ctx, &corev1.Secret{}, types.NamespacedName{Namespace: r.Options.OperatorNamespace, Name: builders.ProbeSecretName(t)})
	}
	if err != nil {
		reason := v1alpha1.ReasonDeleting
		if errors.Is(err, errFinalBackup) {
			reason = v1alpha1.ReasonFinalBackupFailed
		}
		tenantstatus.SetDeletionBlocked(t, reason, err.Error())
		return ctrl.Result{}, err
	}
	patch := client.MergeFrom(t.DeepCopy())
	controllerutil.RemoveFinalizer(t, v1alpha1.TenantFinalizer)
	if err := r.Patch(ctx, t, patch, FieldOwner); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("remove finalizer: %w", err)
	}
	r.backups.Forget(t.Name)
	if r.monitor != nil {
		r.monitor.Forget(t.Name)
	}
	r.Options.Metrics.DeleteTenant(t.Name)
	ctrl.LoggerFrom(ctx).Info("Tenant deleted", "deletionPolicy", t.Spec.DeletionPolicy, "namespace", builders.NamespaceName(t))
	return ctrl.Result{}, nil
}

// effectiveDeletionPolicy is what deleting the Tenant does now: Delete only while the allow-delete
// annotation confirms it. Admission refuses Delete without it; a Tenant that lost the annotation
// afterwards keeps its data.
func effectiveDeletionPolicy(t *v1alpha1.Tenant) v1alpha1.DeletionPolicy {
	if t.Spec.DeletionPolicy == v1alpha1.DeletionPolicyDelete && t.Annotations[v1alpha1.AnnotationAllowDelete] == "true" {
		return v1alpha1.DeletionPolicyDelete
	}
	return v1alpha1.DeletionPolicyRetain
}

// errFinalBackup marks what stops the final backup; the user decides: fix it, or skip the backup.
var errFinalBackup = errors.New("final backup")

// finalBackups runs one backup Job per schedule of the tenant's BackupPolicy, the last backup
// before its data is deleted, and returns those still running. A failed one is an error that
// names the way out: fixing what failed, or the skip-final-backup annotation.
func (r *TenantReconciler) finalBackups(ctx context.Context, t *v1alpha1.Tenant) ([]string, error) {
	if t.Spec.BackupPolicyRef == nil || t.Annotations[v1alpha1.AnnotationSkipFinalBackup] == "true" {
		return nil, nil
	}
	skip := fmt.Sprintf("annotate the Tenant %s: \"true\" to delete it without a final backup", v1alpha1.AnnotationSkipFinalBackup)
	policy := &v1alpha1.BackupPolicy{}
	if err := r.Get(ctx, types.NamespacedName{Name: t.Spec.BackupPolicyRef.Name}, policy); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("%w: BackupPolicy %s not found, so no final backup can be taken; %s", errFinalBackup, t.Spec.BackupPolicyRef.Name, skip)
		}
		return nil, fmt.Errorf("get backup policy %s: %w", t.Spec.BackupPolicyRef.Name, err)
	}
	var running []string
	for _, spec := range policy.Spec.Schedules {
		name := builders.FinalBackupJobName(t, spec.Name)
		job := &batchv1.Job{}
		err := r.Get(ctx, types.NamespacedName{Namespace: r.Options.OperatorNamespace, Name: name}, job)
		switch {
		case apierrors.IsNotFound(err):
			e, err := backupcheck.Expect(policy, spec)
			if err != nil {
				return nil, err
			}
			ac, err := builders.FinalBackupJob(t, policy, spec, e.ExpectedInterval, r.builderOptions())
			if err != nil {
				return nil, err
			}
			if err := r.apply(ctx, ownedObject{"job", name, ac}); err != nil {
				return nil, err
			}
			r.event(t, corev1.EventTypeNormal, v1alpha1.ReasonFinalBackupRunning, fmt.Sprintf("Started the final backup of schedule %s (Job %s) before deleting the data", spec.Name, name))
			running = append(running, name)
		case err != nil:
			return nil, fmt.Errorf("get job %s: %w", name, err)
		default:
			failed, complete := backupcheck.JobFinished(job)
			if failed != nil {
				return nil, fmt.Errorf("%w: Job %s failed (%s); fix it and delete the Job to try again, or %s", errFinalBackup, name, failed.Reason, skip)
			}
			if !complete {
				running = append(running, name)
			}
		}
	}
	return running, nil
}

func (r *TenantReconciler) deleteNamespace(ctx context.Context, t *v1alpha1.Tenant) error {
	ns := &corev1.Namespace{}
	name := builders.NamespaceName(t)
	if err := r.Get(ctx, types.NamespacedName{Name: name}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("get namespace %s: %w", name, err)
	}
	if !ownedByTenant(ns, t) {
		return nil // not ours (anymore): never delete someone else's namespace
	}
	if ns.DeletionTimestamp.IsZero() {
		if err := r.Delete(ctx, ns); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete namespace %s: %w", name, err)
		}
	}
	return nil
}

func (r *TenantReconciler) retainNamespace(ctx context.Context, t *v1alpha1.Tenant) error {
	ns := &corev1.Namespace{}
	name := builders.NamespaceName(t)
	if err := r.Get(ctx, types.NamespacedName{Name: name}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("get namespace %s: %w", name, err)
	}
	if !ownedByTenant(ns, t) || !ns.DeletionTimestamp.IsZero() {
		return nil
	}
	if ns.Labels[builders.LabelRetained] != "true" {
		patch := client.MergeFrom(ns.DeepCopy())
		ns.Labels[builders.LabelRetained] = "true"
		if err := r.Patch(ctx, ns, patch, FieldOwner); err != nil {
			return fmt.Errorf("label namespace %s as retained: %w", name, err)
		}
	}
	// The customer's users lose access with their Tenant; the data stays.
	if _, err := r.deleteUnwanted(ctx, t, "role binding", &rbacv1.RoleBindingList{}, name, nil); err != nil {
		return err
	}
	// Stop the database; its volume and credentials stay for a Tenant of the same name.
	sts := &appsv1.StatefulSet{}
	switch err := r.Get(ctx, types.NamespacedName{Namespace: name, Name: builders.DatabaseName(t)}, sts); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("get database statefulset: %w", err)
	case sts.Spec.Replicas == nil || *sts.Spec.Replicas != 0:
		patch := client.MergeFrom(sts.DeepCopy())
		zero := int32(0)
		sts.Spec.Replicas = &zero
		if err := r.Patch(ctx, sts, patch, FieldOwner); err != nil {
			return fmt.Errorf("stop database statefulset: %w", err)
		}
	}
	return nil
}
